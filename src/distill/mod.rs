//! Distillation: TRACT phases (Algorithms 1 and 2), the BTD baseline, and the short
//! fit of a student network to the exact teacher. One loop runs them all, sends events
//! to any front end, checkpoints the full state atomically, and resumes bit-for-bit.

pub mod optim;
pub mod recipe;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{ModelFile, ModelMeta, Reader, write_tensors};
use crate::data::Data;
use crate::data::gmm::ExactDenoiser;
use crate::diffusion::{Denoiser, Times, ddim_step, heun_step, target_coefs};
use crate::model::{Bound, MlpConfig, Net, NetConfig, flat_from_host, flat_to_host};
use crate::rng::{Rng, purpose};
use crate::schedule::{Coef, Grid, Param, Schedule, karras_sigma};
use crate::tensors::{from_vec2, scalar};
use crate::{Error, Result};
pub use optim::{Adam, AdamConfig, ema_update, ema_weight, inference_mu};
pub use recipe::Recipe;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Tract,
    Btd,
    /// Train a teacher on the data (ALGORITHM.md section 4): one `fit` phase, target x0.
    Teacher,
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tract" => Ok(Method::Tract),
            "btd" => Ok(Method::Btd),
            "teacher" => Ok(Method::Teacher),
            o => Err(Error::input(format!(
                "unknown method '{o}': expected tract or btd"
            ))),
        }
    }
}

/// Everything that defines a run; saved in every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DistillConfig {
    pub data: String,
    /// "exact" (closed-form mixture denoiser) or a model file path.
    pub teacher: String,
    /// Start the student from this model file instead of fitting one to the teacher.
    pub init: Option<String>,
    pub method: Method,
    pub schedule: String,
    pub param: Param,
    /// Distillation budget in samples, across all phases (fit not included).
    pub train_samples: u64,
    /// Samples for fitting a fresh network to the exact teacher (0 with --init or a model teacher).
    pub fit_samples: u64,
    pub batch: usize,
    pub seed: u64,
    pub adam: AdamConfig,
    pub mu_s: f64,
    pub ema_eps: f64,
    /// Fixed inference EMA momentum instead of eps^(1/N).
    pub mu_i: Option<f64>,
    /// Relative budget per phase ("auto": the paper's 1:5 for two phases, equal otherwise).
    pub phase_split: Option<Vec<f64>>,
    pub clip_x0: bool,
    pub net: NetConfig,
    pub ckpt_every: u64,
    /// Recipe switches (issue #18), all off by default; absent from older configs.
    #[serde(default, skip_serializing_if = "Recipe::is_default")]
    pub recipe: Recipe,
}

impl DistillConfig {
    /// Defaults for a data set: the paper's hyper-parameters, an MLP sized for 2-D data.
    pub fn new(data: &Data, param: Param) -> Self {
        DistillConfig {
            data: data.spec.clone(),
            teacher: "exact".into(),
            init: None,
            method: Method::Tract,
            schedule: if param == Param::Vp {
                "1024,32,1".into()
            } else {
                "40,8,1".into()
            },
            param,
            train_samples: 2_000_000,
            fit_samples: 1_000_000,
            // images: the paper's batch and learning rate for UNets; 2-D data: a small MLP
            batch: if data.is_images() { 64 } else { 512 },
            seed: 0,
            adam: AdamConfig {
                lr: if data.is_images() { 2e-4 } else { 1e-3 },
                ..Default::default()
            },
            mu_s: 0.5,
            ema_eps: 1e-4,
            mu_i: None,
            phase_split: None,
            clip_x0: data.is_images(),
            net: match &data.source {
                crate::data::Source::Images(s) => {
                    NetConfig::Unet(crate::model::UnetConfig::small(s.c, s.h, s.w, param))
                }
                crate::data::Source::Mixture(_) => {
                    NetConfig::Mlp(MlpConfig::new(data.dim(), param, data.sigma_data()))
                }
            },
            ckpt_every: 500,
            recipe: Recipe::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum PhaseKind {
    Fit,
    Tract { from: usize, to: usize },
    Btd { from: usize, to: usize },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub kind: PhaseKind,
    pub samples: u64,
    pub steps: u64,
}

impl Phase {
    pub fn name(&self) -> String {
        match self.kind {
            PhaseKind::Fit => "fit".into(),
            PhaseKind::Tract { from, to } => format!("tract-{from}to{to}"),
            PhaseKind::Btd { from, to } => format!("btd-{from}to{to}"),
        }
    }
    pub fn to_steps(&self) -> Option<usize> {
        match self.kind {
            PhaseKind::Fit => None,
            PhaseKind::Tract { to, .. } | PhaseKind::Btd { to, .. } => Some(to),
        }
    }
}

/// The largest batch a run takes.
pub const MAX_BATCH: usize = 65_536;

/// Split the budget and list the phases of a run.
pub fn plan(cfg: &DistillConfig) -> Result<Vec<Phase>> {
    let sched = Schedule::parse(&cfg.schedule)?;
    if cfg.batch == 0 {
        return Err(Error::input("--batch must be at least 1"));
    }
    let steps_of = |samples: u64| samples.div_ceil(cfg.batch as u64).max(1);
    if cfg.batch > MAX_BATCH {
        return Err(Error::input(format!(
            "--batch {} is more than {MAX_BATCH}",
            cfg.batch
        )));
    }
    if cfg.method != Method::Teacher && cfg.train_samples == 0 {
        return Err(Error::input(
            "--train-samples must be at least 1 (the distillation budget in samples, across all phases)",
        ));
    }
    let pairs = match cfg.method {
        Method::Tract => sched.tract_phases(),
        Method::Btd => sched.btd_phases()?,
        Method::Teacher => {
            if cfg.fit_samples == 0 {
                return Err(Error::input("training a teacher needs --train-samples > 0"));
            }
            return Ok(vec![Phase {
                kind: PhaseKind::Fit,
                samples: cfg.fit_samples,
                steps: steps_of(cfg.fit_samples),
            }]);
        }
    };
    let split: Vec<f64> = match (&cfg.phase_split, cfg.method) {
        (Some(s), _) => {
            if s.len() != pairs.len() || s.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
                return Err(Error::input(format!(
                    "--phase-split has {} positive weights but the run has {} phases",
                    s.iter().filter(|w| **w > 0.0).count(),
                    pairs.len()
                )));
            }
            s.clone()
        }
        (None, Method::Tract) if pairs.len() == 2 => vec![1.0, 5.0],
        _ => vec![1.0; pairs.len()],
    };
    let tot: f64 = split.iter().sum();
    let mut phases = vec![];
    if cfg.fit_samples > 0 {
        phases.push(Phase {
            kind: PhaseKind::Fit,
            samples: cfg.fit_samples,
            steps: steps_of(cfg.fit_samples),
        });
    }
    for (i, (from, to)) in pairs.into_iter().enumerate() {
        let samples = (cfg.train_samples as f64 * split[i] / tot).round() as u64;
        let kind = match cfg.method {
            Method::Btd => PhaseKind::Btd { from, to },
            _ => PhaseKind::Tract { from, to },
        };
        phases.push(Phase {
            kind,
            samples,
            steps: steps_of(samples),
        });
    }
    Ok(phases)
}

/// What the loop tells a front end.
#[derive(Clone, Debug)]
pub enum Event {
    PhaseStart {
        index: usize,
        count: usize,
        name: String,
        steps: u64,
    },
    Step {
        phase: usize,
        step: u64,
        steps: u64,
        samples_done: u64,
        samples_total: u64,
        loss: f32,
    },
    Checkpoint {
        path: PathBuf,
        global_step: u64,
    },
    PhaseEnd {
        index: usize,
        path: PathBuf,
    },
    /// Samples of the current inference-EMA student from the preview noise, at `steps` steps.
    Preview {
        phase: usize,
        step: u64,
        steps: usize,
        samples: Vec<f32>,
    },
}

/// Live samples during training: every `every` steps, from fixed noise [n, dim].
#[derive(Clone, Debug)]
pub struct PreviewSpec {
    pub every: u64,
    pub noise: Vec<f32>,
}

/// A front end: receives events; returning false asks the loop to stop (after a checkpoint).
pub trait Observer {
    fn event(&mut self, e: &Event) -> bool;
}

impl<F: FnMut(&Event) -> bool> Observer for F {
    fn event(&mut self, e: &Event) -> bool {
        self(e)
    }
}

/// How a run ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Finished { student: PathBuf },
    Stopped { global_step: u64 },
}

/// The teacher of a phase.
enum TeacherNet {
    Exact(ExactDenoiser),
    Net(Tensor<1>),
    /// Teacher training: the target is the clean sample itself.
    Data,
}

/// The full mutable training state.
struct RunState {
    phase: usize,
    step: u64,
    global_step: u64,
    student: Tensor<1>,
    self_teacher: Tensor<1>,
    ema: Tensor<1>,
    /// The learned teacher of the current phase (None: the original teacher).
    teacher: Option<Tensor<1>>,
    adam: Adam,
    rng: Rng,
}

#[derive(Serialize, Deserialize)]
struct StateMeta {
    format: String,
    config: DistillConfig,
    phase: usize,
    step: u64,
    global_step: u64,
    adam_t: u64,
    rng: [String; 4],
}

pub const STATE_FILE: &str = "state.safetensors";
pub const LOSS_FILE: &str = "loss.csv";

/// A distillation run bound to a directory.
pub struct Run {
    pub cfg: DistillConfig,
    pub dir: PathBuf,
    pub phases: Vec<Phase>,
    data: Data,
    net: Net,
    grid: Grid,
    device: Device,
    original: TeacherNet,
    /// The starting network of the first phase (fit: random init).
    init: Vec<f32>,
    pending_losses: Vec<String>,
    pub preview: Option<PreviewSpec>,
}

impl Run {
    /// Validate everything before any file is written.
    pub fn new(mut cfg: DistillConfig, dir: &Path, device: &Device) -> Result<Run> {
        let data = Data::parse(&cfg.data)?;
        let sched = Schedule::parse(&cfg.schedule)?;
        let mut init_rng = Rng::stream(cfg.seed, purpose::INIT);
        let original;
        let mut init: Option<Vec<f32>> = None;
        if cfg.method == Method::Teacher || cfg.teacher == "data" {
            cfg.method = Method::Teacher;
            cfg.teacher = "data".into();
            original = TeacherNet::Data;
        } else if cfg.teacher == "exact" {
            original = TeacherNet::Exact(data.exact()?.exact_denoiser(device));
        } else {
            let m = ModelFile::load(Path::new(&cfg.teacher))?;
            check_model_fits(&m, &data, cfg.param, &cfg.teacher)?;
            cfg.net = m.meta.net().expect("validated on load");
            cfg.fit_samples = 0;
            init = Some(m.flat.clone());
            original = TeacherNet::Net(flat_from_host(m.flat, device));
        }
        if let Some(p) = &cfg.init {
            let m = ModelFile::load(Path::new(p))?;
            check_model_fits(&m, &data, cfg.param, p)?;
            cfg.net = m.meta.net().expect("validated on load");
            cfg.fit_samples = 0;
            init = Some(m.flat);
        }
        if cfg.net.dim() != data.dim() {
            return Err(Error::input(format!(
                "model dimension {} does not match data dimension {}",
                cfg.net.dim(),
                data.dim()
            )));
        }
        let net = Net::new(&cfg.net);
        let init = match init {
            Some(v) => v,
            None => {
                if cfg.fit_samples == 0 {
                    return Err(Error::input(
                        "a fresh student needs --fit-samples > 0 (or --init MODEL)",
                    ));
                }
                net.init(&mut init_rng)
            }
        };
        if !(0.0..1.0).contains(&cfg.mu_s) {
            return Err(Error::input(format!(
                "--mu-s {} is outside [0, 1)",
                cfg.mu_s
            )));
        }
        if let Some(m) = cfg.mu_i {
            if !(0.0..1.0).contains(&m) {
                return Err(Error::input(format!("--mu-i {m} is outside [0, 1)")));
            }
        }
        if !(cfg.ema_eps > 0.0 && cfg.ema_eps < 1.0) {
            return Err(Error::input(format!(
                "--ema-eps {} is outside (0, 1)",
                cfg.ema_eps
            )));
        }
        if let NetConfig::Mlp(m) = &cfg.net {
            if m.hidden == 0 || m.hidden > 8192 {
                return Err(Error::input(format!(
                    "--hidden {}: expected 1 to 8192",
                    m.hidden
                )));
            }
        }
        if cfg.ckpt_every == 0 {
            return Err(Error::input("--ckpt-every must be at least 1"));
        }
        if !(cfg.adam.lr.is_finite() && cfg.adam.lr > 0.0) {
            return Err(Error::input(format!(
                "--lr {} must be a positive number",
                cfg.adam.lr
            )));
        }
        cfg.recipe.validate()?;
        let phases = plan(&cfg)?;
        let grid = Grid::new(cfg.param, sched.teacher_steps());
        Ok(Run {
            cfg,
            dir: dir.to_path_buf(),
            phases,
            data,
            net,
            grid,
            device: device.clone(),
            original,
            init,
            pending_losses: vec![],
            preview: None,
        })
    }

    /// Open a run directory to resume it: the config comes from its state file.
    pub fn open(dir: &Path, device: &Device) -> Result<Run> {
        let path = dir.join(STATE_FILE);
        if !path.exists() {
            return Err(Error::file(
                &path,
                "nothing to resume: no training state here (start without --resume)",
            ));
        }
        let r = Reader::open(&path)?;
        let meta: StateMeta = serde_json::from_str(&r.meta)
            .map_err(|e| Error::file(&path, format!("not a training state: {e}")))?;
        Run::new(meta.config, dir, device)
    }

    /// Resume a teacher run with another budget (in samples): longer to keep training, or
    /// shorter to finish now with what it has (a checkpoint at or past the new end ends the
    /// run at once). The inference EMA's momentum eps^(1/N) follows the new N from here on, so
    /// the result is not bit-identical to a run started with that budget.
    pub fn open_with_budget(dir: &Path, device: &Device, samples: u64) -> Result<Run> {
        let mut run = Run::open(dir, device)?;
        if run.cfg.method != Method::Teacher {
            return Err(Error::input(
                "only a teacher run's budget can change on resume (a distillation's phases depend on its budget)",
            ));
        }
        if samples == 0 {
            return Err(Error::input("--train-samples must be at least 1"));
        }
        let mut cfg = run.cfg.clone();
        cfg.fit_samples = samples;
        run = Run::new(cfg, dir, device)?;
        Ok(run)
    }

    /// Run a fresh run to its end and return the final model; an observer's stop is an error.
    pub fn run_to_end(&mut self, observer: &mut dyn Observer) -> Result<PathBuf> {
        match self.run(false, observer, None)? {
            Outcome::Finished { student } => Ok(student),
            Outcome::Stopped { .. } => Err(Error::input("stopped by the user")),
        }
    }

    pub fn total_samples(&self) -> u64 {
        self.phases.iter().map(|p| p.samples).sum()
    }

    fn fresh_state(&self) -> RunState {
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

    fn load_state(&self) -> Result<RunState> {
        let path = self.dir.join(STATE_FILE);
        let r = Reader::open(&path)?;
        let meta: StateMeta = serde_json::from_str(&r.meta)
            .map_err(|e| Error::file(&path, format!("not a training state: {e}")))?;
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
            },
            rng: Rng::from_state([rng[0], rng[1], rng[2], rng[3]]),
        })
    }

    fn save_state(&mut self, st: &RunState) -> Result<PathBuf> {
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
        let path = self.dir.join(STATE_FILE);
        write_tensors(
            &path,
            &ts,
            &serde_json::to_string(&meta).expect("serializes"),
        )?;
        Ok(path)
    }

    fn flush_losses(&mut self) -> Result<()> {
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
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some((_, pid)) = name.rsplit_once(".tmp") {
                if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Truncate the loss log to the lines written up to `global_step` (for resume).
    fn trim_losses(&self, global_step: u64) -> Result<()> {
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
        crate::error::write_atomic(&path, keep.as_bytes())
    }

    fn model_meta(&self, kind: &str, steps: usize, samples: u64) -> ModelMeta {
        let mut meta = ModelMeta {
            format: "tract-studio-model/1".into(),
            mlp: None,
            unet: None,
            param: self.cfg.param,
            grid_steps: self.grid.steps,
            steps,
            data: self.cfg.data.clone(),
            kind: kind.into(),
            schedule: self.cfg.schedule.clone(),
            train_samples: samples,
            clip_x0: self.cfg.clip_x0,
        };
        meta.set_net(&self.cfg.net);
        meta
    }

    pub fn phase_file(&self, i: usize) -> PathBuf {
        self.dir
            .join(format!("phase{}-{}.safetensors", i, self.phases[i].name()))
    }

    /// Run (or resume) to the end. `max_global_steps` interrupts after that many optimizer
    /// steps with a checkpoint, as a kill would (used by tests and the app's pause).
    pub fn run(
        &mut self,
        resume: bool,
        observer: &mut dyn Observer,
        max_global_steps: Option<u64>,
    ) -> Result<Outcome> {
        let mut st = if resume {
            let st = self.load_state()?;
            self.remove_stale_temp_files();
            self.trim_losses(st.global_step)?;
            st
        } else {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
            self.remove_stale_temp_files();
            let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
            crate::error::write_atomic(
                &self.dir.join(LOSS_FILE),
                b"phase,step,global_step,loss\n",
            )?;
            crate::error::write_atomic(
                &self.dir.join("config.json"),
                serde_json::to_string_pretty(&self.cfg)
                    .expect("serializes")
                    .as_bytes(),
            )?;
            self.fresh_state()
        };
        let samples_total = self.total_samples();
        let mut samples_done: u64 = self.phases[..st.phase]
            .iter()
            .map(|p| p.samples)
            .sum::<u64>()
            + st.step * self.cfg.batch as u64;
        let mut last_good = self.dir.join(STATE_FILE);
        while st.phase < self.phases.len() {
            let phase = self.phases[st.phase].clone();
            if !observer.event(&Event::PhaseStart {
                index: st.phase,
                count: self.phases.len(),
                name: phase.name(),
                steps: phase.steps,
            }) {
                return Ok(Outcome::Stopped {
                    global_step: st.global_step,
                });
            }
            let mu_i = self
                .cfg
                .mu_i
                .unwrap_or_else(|| inference_mu(self.cfg.ema_eps, phase.steps));
            while st.step < phase.steps {
                let loss_t = self.train_step(&phase, &mut st)?;
                let loss = scalar(loss_t);
                if !loss.is_finite() {
                    return Err(Error::Diverged(format!(
                        "loss is {loss} at phase {} ({}), step {}; the weights were not saved. {}",
                        st.phase,
                        phase.name(),
                        st.step + 1,
                        last_good_note(&last_good)
                    )));
                }
                st.step += 1;
                st.global_step += 1;
                // EMAs after the optimizer step (Algorithm 1 line 21, A.7)
                let (ws, wi) = (
                    ema_weight(self.cfg.mu_s, st.step),
                    ema_weight(mu_i, st.step),
                );
                let (s, i) = crate::kernels::ema2(
                    &st.student,
                    st.self_teacher.clone(),
                    st.ema.clone(),
                    ws,
                    wi,
                );
                st.self_teacher = s;
                st.ema = i;
                samples_done += self.cfg.batch as u64;
                self.pending_losses.push(format!(
                    "{},{},{},{}",
                    st.phase, st.step, st.global_step, loss
                ));
                let go = observer.event(&Event::Step {
                    phase: st.phase,
                    step: st.step,
                    steps: phase.steps,
                    samples_done: samples_done.min(samples_total),
                    samples_total,
                    loss,
                });
                let go = go && self.emit_preview(&phase, &st, observer);
                let interrupted = !go || max_global_steps.is_some_and(|m| st.global_step >= m);
                if (st.step % self.cfg.ckpt_every == 0 && st.step < phase.steps) || interrupted {
                    self.ensure_finite(&st, &phase, &last_good)?;
                    last_good = self.save_state(&st)?;
                    observer.event(&Event::Checkpoint {
                        path: last_good.clone(),
                        global_step: st.global_step,
                    });
                }
                if interrupted {
                    return Ok(Outcome::Stopped {
                        global_step: st.global_step,
                    });
                }
            }
            // phase end: save its inference-EMA model, then set up the next phase
            let (kind, steps) = match phase.kind {
                PhaseKind::Fit if self.cfg.method == Method::Teacher => {
                    ("teacher", self.grid.steps)
                }
                PhaseKind::Fit => ("fit", self.grid.steps),
                PhaseKind::Tract { to, .. } => ("tract", to),
                PhaseKind::Btd { to, .. } => ("btd", to),
            };
            let done: u64 = self.phases[..=st.phase]
                .iter()
                .filter(|p| p.kind != PhaseKind::Fit)
                .map(|p| p.samples)
                .sum();
            self.ensure_finite(&st, &phase, &last_good)?;
            let mf = ModelFile {
                meta: self.model_meta(kind, steps, done),
                flat: flat_to_host(&st.ema),
            };
            let pf = self.phase_file(st.phase);
            mf.save(&pf)?;
            observer.event(&Event::PhaseEnd {
                index: st.phase,
                path: pf,
            });
            let was_fit = phase.kind == PhaseKind::Fit;
            let result = st.ema.clone();
            st.phase += 1;
            st.step = 0;
            // the next phase: teacher = this phase's EMA (except after the fit, where the
            // original teacher stays); student and self-teacher start as copies; Adam restarts
            if !was_fit {
                st.teacher = Some(result.clone());
            }
            st.student = result.clone();
            st.self_teacher = result.clone();
            st.ema = result;
            if !(self.cfg.recipe.keep_adam && !was_fit) {
                st.adam = Adam::new(&st.student);
            }
            last_good = self.save_state(&st)?;
        }
        let last = self.phases.len() - 1;
        let name = if self.cfg.method == Method::Teacher {
            "teacher.safetensors"
        } else {
            "student.safetensors"
        };
        let student = self.dir.join(name);
        // atomically, as every other file: a kill never leaves a half-copied model
        let bytes = crate::error::read_file(&self.phase_file(last))?;
        crate::error::write_atomic(&student, &bytes)?;
        Ok(Outcome::Finished { student })
    }

    /// Whether the state in the run directory is past its last phase (the run has finished).
    pub fn is_finished(&self) -> Result<bool> {
        Ok(self.load_state()?.phase >= self.phases.len())
    }

    /// Stop with `Diverged` when the weights about to be saved are not finite (a loss can
    /// still be finite at the step whose update overflowed): a checkpoint never holds them.
    fn ensure_finite(&self, st: &RunState, phase: &Phase, last_good: &Path) -> Result<()> {
        let sum = scalar(st.student.clone().sum() + st.ema.clone().sum());
        if sum.is_finite() {
            return Ok(());
        }
        Err(Error::Diverged(format!(
            "the weights are NaN or infinite after phase {} ({}), step {}; they were not saved. {}",
            st.phase,
            phase.name(),
            st.step,
            last_good_note(last_good)
        )))
    }

    fn emit_preview(&self, phase: &Phase, st: &RunState, observer: &mut dyn Observer) -> bool {
        let Some(p) = &self.preview else { return true };
        if st.step % p.every != 0 && st.step != phase.steps {
            return true;
        }
        let d = self.data.dim();
        let n = p.noise.len() / d;
        let steps = phase.to_steps().unwrap_or(64).min(self.grid.steps);
        let eps = from_vec2(p.noise.clone(), [n, d], &self.device);
        let x = crate::diffusion::sample(
            &Bound {
                model: &self.net,
                params: &st.ema,
            },
            eps,
            &self.grid,
            steps,
            crate::diffusion::Solver::Ddim,
            self.cfg.clip_x0,
        );
        observer.event(&Event::Preview {
            phase: st.phase,
            step: st.step,
            steps,
            samples: crate::tensors::to_vec(x),
        })
    }

    fn teacher_den<'a>(&'a self, st: &'a RunState) -> Box<dyn Denoiser + 'a> {
        match (&st.teacher, &self.original) {
            (Some(t), _) => Box::new(Bound {
                model: &self.net,
                params: t,
            }),
            (None, TeacherNet::Exact(e)) => Box::new(e.clone()),
            (None, TeacherNet::Net(t)) => Box::new(Bound {
                model: &self.net,
                params: t,
            }),
            (None, TeacherNet::Data) => {
                unreachable!("a data teacher has no denoiser; train_step uses x0")
            }
        }
    }

    /// Teacher step t -> t-1: DDIM for VP, Heun for VE (Algorithms 1 and 2).
    fn teacher_step(
        &self,
        den: &dyn Denoiser,
        x: Tensor<2>,
        from: &[Coef],
        to: &[Coef],
    ) -> Tensor<2> {
        match self.cfg.param {
            Param::Vp => ddim_step(den, x, from, to, self.cfg.clip_x0),
            Param::Ve => heun_step(den, x, from, to, self.cfg.clip_x0),
        }
    }

    fn loss_weight(&self, c: &Coef) -> f64 {
        match self.cfg.param {
            Param::Vp => c.snr().max(1.0),
            Param::Ve => {
                let sd = self.cfg.net.sigma_data();
                (c.sigma * c.sigma + sd * sd) / (c.sigma * sd).powi(2)
            }
        }
    }

    /// One optimizer step; returns the (device) loss.
    fn train_step(&self, phase: &Phase, st: &mut RunState) -> Result<Tensor<1>> {
        let (b, d) = (self.cfg.batch, self.data.dim());
        let dev = &self.device;
        let x0 = from_vec2(self.data.sample(&mut st.rng, b), [b, d], dev);
        let eps = from_vec2(st.rng.normals(b * d), [b, d], dev);
        let (ct, target) = match phase.kind {
            PhaseKind::Fit => {
                let ct: Vec<Coef> = (0..b).map(|_| self.random_level(&mut st.rng)).collect();
                let times = Times::new(ct.clone(), dev);
                let xt = noisify(x0.clone(), eps, &ct);
                let target = match self.original {
                    TeacherNet::Data => x0,
                    _ => self.teacher_den(st).denoise(xt.clone(), &times),
                };
                (ct, (xt.clone(), target, xt, vec![1.0; b], vec![0.0; b]))
            }
            PhaseKind::Tract { from, to } | PhaseKind::Btd { from, to } => {
                let stride = self.grid.steps / from;
                let group = from / to;
                let btd = matches!(phase.kind, PhaseKind::Btd { .. });
                let mut idx = Vec::with_capacity(b);
                for _ in 0..b {
                    let s = group * st.rng.below(to);
                    let t = if btd {
                        s + 2
                    } else {
                        s + 1 + st.rng.below(group)
                    };
                    idx.push((t, s));
                }
                let c = |i: usize| self.grid.coef(i * stride);
                let ct: Vec<Coef> = idx.iter().map(|&(t, _)| c(t)).collect();
                let ct1: Vec<Coef> = idx.iter().map(|&(t, _)| c(t - 1)).collect();
                let cs: Vec<Coef> = idx.iter().map(|&(_, s)| c(s)).collect();
                let xt = noisify(x0, eps, &ct);
                let teacher_box = self.teacher_den(st);
                let selft = Bound {
                    model: &self.net,
                    params: &st.self_teacher,
                };
                let clip_range = self.cfg.recipe.clip_x0_range;
                let (tc, sc);
                let (teacher, selft): (&dyn Denoiser, &dyn Denoiser) = match clip_range {
                    Some(c) => {
                        tc = recipe::Clipped {
                            inner: teacher_box.as_ref(),
                            c,
                        };
                        sc = recipe::Clipped { inner: &selft, c };
                        (&tc, &sc)
                    }
                    None => (teacher_box.as_ref(), &selft),
                };
                let xt1 = self.teacher_step(teacher, xt.clone(), &ct, &ct1);
                let xs = if btd {
                    self.teacher_step(teacher, xt1, &ct1, &cs)
                } else if idx.iter().all(|&(t, s)| t - 1 == s) {
                    xt1
                } else {
                    ddim_step(selft, xt1, &ct1, &cs, self.cfg.clip_x0)
                };
                let (a, bb): (Vec<f64>, Vec<f64>) =
                    ct.iter().zip(&cs).map(|(t, s)| target_coefs(t, s)).unzip();
                (ct, (xt.clone(), xs, xt, a, bb))
            }
        };
        // the target is a xs + b xt (the fit phase: xs = the teacher's x0, a = 1, b = 0)
        let (xt, xs, xt_t, a, bb) = target;
        let w: Vec<f64> = ct.iter().map(|c| self.loss_weight(c)).collect();
        // the recipe switches act on distillation phases only (a fit or a teacher is as before)
        let distilling = phase.kind != PhaseKind::Fit;
        let w = if self.cfg.recipe.is_default() || !distilling {
            w
        } else {
            let top = self.grid.coef(self.grid.steps);
            let at_top: Vec<bool> = ct.iter().map(|c| *c == top).collect();
            let last = st.phase + 1 == self.phases.len();
            self.cfg.recipe.weights(&w, &at_top, last, d)
        };
        let times = Times::new(ct, dev);
        let leaf = st.student.clone().autodiff().require_grad();
        let g = self.net.forward(&leaf, xt, &times);
        let loss = crate::kernels::tract_loss(g, xs, xt_t, &a, &bb, &w);
        #[cfg(feature = "train")]
        let grad = leaf
            .grad(&loss.backward())
            .ok_or_else(|| Error::Diverged("no gradient for the student".into()))?;
        #[cfg(not(feature = "train"))]
        let grad: Tensor<1> = Err(Error::input("built without training (the `train` feature)"))?;
        let adam = AdamConfig {
            lr: if distilling {
                self.cfg
                    .recipe
                    .lr_at(self.cfg.adam.lr, st.step, phase.steps)
            } else {
                self.cfg.adam.lr
            },
            ..self.cfg.adam.clone()
        };
        st.student = st.adam.step(&adam, st.student.clone(), grad);
        Ok(loss.inner())
    }

    /// A continuous noise level for the fit phase: u ~ U(0, 1] (VP), or a uniform position
    /// on the Karras curve (VE).
    fn random_level(&self, rng: &mut Rng) -> Coef {
        match self.cfg.param {
            Param::Vp => crate::schedule::vp_coef(1.0 - rng.uniform()),
            Param::Ve => {
                let (lo, hi) = (
                    crate::schedule::KARRAS_SIGMA_MIN.powf(1.0 / 7.0),
                    crate::schedule::KARRAS_SIGMA_MAX.powf(1.0 / 7.0),
                );
                let _ = karras_sigma;
                crate::schedule::ve_coef_sigma((lo + rng.uniform() * (hi - lo)).powf(7.0))
            }
        }
    }
}

/// What a diverged run says about where to go on from.
fn last_good_note(last_good: &Path) -> String {
    if last_good.exists() {
        format!(
            "The last good checkpoint is {} (continue from it with --resume, perhaps with a lower --lr)",
            last_good.display()
        )
    } else {
        "There is no last good checkpoint yet: none was written before it (start again, perhaps with a lower --lr)".into()
    }
}

/// x_t = alpha x0 + sigma eps per sample (eq 1; VE: alpha = 1).
fn noisify(x0: Tensor<2>, eps: Tensor<2>, c: &[Coef]) -> Tensor<2> {
    let (a, s): (Vec<f64>, Vec<f64>) = c.iter().map(|c| (c.alpha, c.sigma)).unzip();
    crate::kernels::row_axpby(x0, eps, &a, &s, false)
}

fn check_model_fits(m: &ModelFile, data: &Data, param: Param, what: &str) -> Result<()> {
    if m.meta.dim() != data.dim() {
        return Err(Error::file(
            what,
            format!(
                "the model is for {}-dimensional data but {} is {}-dimensional",
                m.meta.dim(),
                data.spec,
                data.dim()
            ),
        ));
    }
    if m.meta.param != param {
        return Err(Error::file(
            what,
            format!(
                "the model is {:?} but the run is {:?} (--param)",
                m.meta.param, param
            ),
        ));
    }
    Ok(())
}
