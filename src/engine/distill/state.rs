//! The full training state and its file: everything `--resume` needs to continue
//! bit-for-bit (student, self-teacher EMA, inference EMA, the current phase's teacher, Adam's
//! moments and step, the RNG, phase and step), written atomically with the loss log never
//! behind it; and the tidy-up a resume does after a kill (stale temp files, a cut log line).

use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{DistillConfig, Run};
use crate::engine::checkpoint::{Reader, write_tensors};
use crate::engine::model::{flat_from_host, flat_to_host};
use crate::engine::optim::Adam;
use crate::engine::rng::{Rng, purpose};
use crate::{Error, Result};

pub const STATE_FILE: &str = "state.safetensors";

/// The final model a finished run leaves: a distillation's student, a teacher run's teacher.
pub const STUDENT_FILE: &str = "student.safetensors";
pub const TEACHER_FILE: &str = "teacher.safetensors";

pub const LOSS_FILE: &str = "loss.csv";

/// The full mutable training state.
pub(super) struct RunState {
    pub(super) phase: usize,
    pub(super) step: u64,
    pub(super) global_step: u64,
    pub(super) student: Tensor<1>,
    pub(super) self_teacher: Tensor<1>,
    pub(super) ema: Tensor<1>,
    /// The learned teacher of the current phase (None: the original teacher).
    pub(super) teacher: Option<Tensor<1>>,
    pub(super) adam: Adam,
    pub(super) rng: Rng,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StateMeta {
    format: String,
    pub(super) config: DistillConfig,
    phase: usize,
    step: u64,
    global_step: u64,
    adam_t: u64,
    rng: [String; 4],
}

/// A state file and its metadata (the run's config among it).
pub(super) fn read_state(path: &Path) -> Result<(Reader, StateMeta)> {
    let r = Reader::open(path)?;
    let meta: StateMeta = serde_json::from_str(&r.meta)
        .map_err(|e| Error::file(path, format!("not a training state: {e}")))?;
    Ok((r, meta))
}

impl Run {
    pub(super) fn fresh_state(&self) -> RunState {
        let student = flat_from_host(self.init.clone(), &self.device);
        RunState {
            phase: 0,
            step: 0,
            global_step: 0,
            self_teacher: student.clone(),
            ema: student.clone(),
            adam: Adam::new(&student),
            student,
            teacher: None,
            rng: Rng::stream(self.cfg.seed, purpose::TRAIN),
        }
    }

    pub(super) fn load_state(&self) -> Result<RunState> {
        let path = self.dir.join(STATE_FILE);
        let (r, meta) = read_state(&path)?;
        // a state names its place in the run; one past the run's phases (or a phase's steps)
        // is not this run's, or is damaged: the loop would index past its plan
        let damaged = "the state does not belong to this run or is damaged (start again without --resume, or into another --out)";
        let count = self.phases.len();
        if meta.phase > count {
            return Err(Error::file(
                &path,
                format!(
                    "the state is at phase {} but the run has {count} phases; {damaged}",
                    meta.phase
                ),
            ));
        }
        if let Some(p) = self.phases.get(meta.phase)
            && meta.step > p.steps
        {
            return Err(Error::file(
                &path,
                format!(
                    "the state is at step {} of phase {} ({}), which has {} steps; {damaged}",
                    meta.step,
                    meta.phase,
                    p.name(),
                    p.steps
                ),
            ));
        }
        let n = self.net.layout().total;
        let get = |name: &str| -> Result<Tensor<1>> {
            Ok(flat_from_host(r.tensor(name, &[n])?, &self.device))
        };
        let rng: Vec<u64> = meta
            .rng
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| Error::file(&path, "corrupt RNG state"))
            })
            .collect::<Result<_>>()?;
        Ok(RunState {
            phase: meta.phase,
            step: meta.step,
            global_step: meta.global_step,
            student: get("student")?,
            self_teacher: get("self_teacher")?,
            ema: get("ema")?,
            teacher: if r.has("teacher") {
                Some(get("teacher")?)
            } else {
                None
            },
            adam: Adam {
                m: get("adam_m")?,
                v: get("adam_v")?,
                t: meta.adam_t,
                burn_ops: false,
            },
            rng: Rng::from_state([rng[0], rng[1], rng[2], rng[3]]),
        })
    }

    pub(super) fn save_state(&mut self, st: &RunState) -> Result<PathBuf> {
        let path = self.dir.join(STATE_FILE);
        // data-parallel: rank 0 alone writes (every rank holds the same state)
        if !self.writes() {
            self.pending_losses.clear();
            return Ok(path);
        }
        let n = self.net.layout().total;
        let mut ts = vec![
            ("student".to_string(), vec![n], flat_to_host(&st.student)),
            (
                "self_teacher".to_string(),
                vec![n],
                flat_to_host(&st.self_teacher),
            ),
            ("ema".to_string(), vec![n], flat_to_host(&st.ema)),
            ("adam_m".to_string(), vec![n], flat_to_host(&st.adam.m)),
            ("adam_v".to_string(), vec![n], flat_to_host(&st.adam.v)),
        ];
        if let Some(t) = &st.teacher {
            ts.push(("teacher".to_string(), vec![n], flat_to_host(t)));
        }
        let meta = StateMeta {
            format: "tract-studio-state/1".into(),
            config: self.cfg.clone(),
            phase: st.phase,
            step: st.step,
            global_step: st.global_step,
            adam_t: st.adam.t,
            rng: st.rng.state().map(|w| w.to_string()),
        };
        // the loss log first, so the log never lags behind a saved state
        self.flush_losses()?;
        write_tensors(
            &path,
            &ts,
            &serde_json::to_string(&meta).expect("serializes"),
        )?;
        Ok(path)
    }

    pub(super) fn flush_losses(&mut self) -> Result<()> {
        use std::io::Write;
        let path = self.dir.join(LOSS_FILE);
        if self.pending_losses.is_empty() {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        // one write: a kill leaves at most one partial last line, which resume drops
        let mut text = String::new();
        for l in self.pending_losses.drain(..) {
            text.push_str(&l);
            text.push('\n');
        }
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(())
    }

    /// Temp files of atomic writes that a killed process left behind (`NAME.tmpPID`).
    pub(super) fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some((_, pid)) = name.rsplit_once(".tmp")
                && !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Truncate the loss log to the lines written up to `global_step` (for resume).
    pub(super) fn trim_losses(&self, global_step: u64) -> Result<()> {
        let path = self.dir.join(LOSS_FILE);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut keep = String::from("phase,step,global_step,loss\n");
        // whole lines only (a kill mid-write can leave a cut last line), each well formed
        for line in text.split_inclusive('\n').skip(1) {
            let Some(line) = line.strip_suffix('\n') else {
                continue;
            };
            let f: Vec<&str> = line.split(',').collect();
            let ok = f.len() == 4
                && f[0].parse::<usize>().is_ok()
                && f[1].parse::<u64>().is_ok()
                && f[3].parse::<f32>().is_ok();
            let gs: Option<u64> = f.get(2).and_then(|v| v.parse().ok());
            if ok && gs.is_some_and(|g| g <= global_step) {
                keep.push_str(line);
                keep.push('\n');
            }
        }
        crate::engine::error::write_atomic(&path, keep.as_bytes())
    }
}
