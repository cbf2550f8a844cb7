//! A run bound to a directory: validation before any file is written, the loop over the
//! phases with events, checkpoints and previews, the phase hand-over (the next teacher is
//! this phase's inference EMA), divergence checks, and resume (the state in `state.rs`).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{Device, Tensor};

use super::RankSpan;
use super::state::{LOSS_FILE, RunState, STATE_FILE, STUDENT_FILE, TEACHER_FILE, read_state};
use super::step::TeacherNet;
use super::{DistillConfig, Event, Method, Observer, Outcome, Phase, PhaseKind, PreviewSpec, plan};
use crate::engine::checkpoint::{ModelFile, ModelMeta};
use crate::engine::collective::{Collective, Single, check_batch};
use crate::engine::data::{Data, FASHION_MNIST_DIR};
use crate::engine::diffusion::{self, Solver};
use crate::engine::error;
use crate::engine::model::{Bound, Net, NetConfig, Prediction, flat_from_host, flat_to_host};
use crate::engine::optim::{Adam, inference_mu};
use crate::engine::rng::{Rng, purpose};
use crate::engine::schedule::{Grid, Param, Schedule};
use crate::engine::tensors::{from_vec2, scalar, to_vec};
use crate::{Error, Result};

/// A distillation run bound to a directory.
pub struct Run {
    pub cfg: DistillConfig,
    pub dir: PathBuf,
    pub phases: Vec<Phase>,
    pub(super) data: Data,
    pub(super) net: Net,
    pub(super) grid: Grid,
    pub(super) device: Device,
    pub(super) original: TeacherNet,
    /// The starting network of the first phase (fit: random init).
    pub(super) init: Vec<f32>,
    pub(super) pending_losses: Vec<String>,
    pub preview: Option<PreviewSpec>,
    /// Read the steps' losses back to the host every this many steps of a phase (and at
    /// every checkpoint, preview, phase end and interruption), all in one transfer: on a GPU
    /// each read is a pipeline stall. Step events come when their losses are read.
    pub loss_every: u64,
    /// What the front end should tell the user before the run starts: choices the run
    /// accepted that may not be what was meant (a teacher of other data, a fit as the teacher).
    pub warnings: Vec<String>,
    /// The processes of a data-parallel run ([`Single`] by default; set with
    /// [`Run::set_collective`]): rank 0 alone writes the run's files.
    pub(super) collective: Arc<dyn Collective>,
    /// Seconds of the last step's gradient all-reduce.
    pub(super) last_allreduce_s: Cell<f64>,
}

/// The default of [`Run::loss_every`].
pub const LOSS_READ_EVERY: u64 = 16;

/// A step whose loss is still on the device.
struct PendingStep {
    loss: Tensor<1>,
    step: u64,
    global_step: u64,
    samples_done: u64,
    step_s: f64,
    allreduce_s: f64,
}

/// The losses of the pending steps, read back in one transfer.
fn read_losses(pending: &[PendingStep]) -> Vec<f32> {
    if pending.is_empty() {
        return vec![];
    }
    to_vec(Tensor::cat(
        pending.iter().map(|p| p.loss.clone()).collect(),
        0,
    ))
}

/// Opens the model files a run names (`--teacher`, `--init`) from their spec: a path for
/// `Run::new`; a front end may resolve more (the CLI: `asset:NAME`, a shipped model).
pub type ModelLoader<'a> = &'a dyn Fn(&str) -> Result<ModelFile>;

/// A model file by path, or a diffusers pipeline folder (`diffusers:DIR`).
fn load_path(spec: &str) -> Result<ModelFile> {
    crate::engine::pipeline::open(spec)
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

/// Whether a model was trained on the run's data: the same spec (up to a trailing slash or
/// the default Fashion-MNIST folder), or two mixture specs of equal mixtures; `None` where it
/// cannot tell (two image specs that differ may be the same images in another folder, a
/// mixture spec that no longer opens).
fn same_data(model: &str, run: &Data) -> Option<bool> {
    let norm = |s: &str| {
        if s == "fashion-mnist" {
            format!("fashion-mnist:{FASHION_MNIST_DIR}")
        } else {
            s.trim_end_matches('/').to_string()
        }
    };
    if norm(model) == norm(&run.spec) {
        return Some(true);
    }
    match (Data::is_mixture_spec(model), run.mixture()) {
        (true, Some(g)) => Data::parse(model).ok().map(|d| d.mixture() == Some(g)),
        (false, None) => None,
        _ => Some(false),
    }
}

/// Whether a model's recorded data is only the diffusers pipeline it was read from (a
/// pipeline folder does not say what it was trained on; `convert --data` records it).
fn data_unknown(model_data: &str) -> bool {
    model_data.starts_with("diffusers:")
}

/// A teacher file: refuse a student that cannot take the run's first step count on its
/// grid, and other data; say so where the user may mean it (a fit, images elsewhere).
/// Returns whether it is a distilled student (it takes DDIM steps), and the warnings.
fn check_teacher(
    m: &ModelFile,
    data: &Data,
    sched: &Schedule,
    what: &str,
) -> Result<(bool, Vec<String>)> {
    let (meta, t) = (&m.meta, sched.teacher_steps());
    let mut warnings = vec![];
    let distilled = match meta.kind.as_str() {
        "tract" | "btd" => {
            if meta.steps != t {
                return Err(Error::file(
                    what,
                    format!(
                        "a {}-step {} student (of a {}-step grid) cannot be the teacher of schedule {}, which starts at {t} steps; expected a teacher (kind teacher or fit) or a student distilled for {t} steps",
                        meta.steps, meta.kind, meta.grid_steps, sched
                    ),
                ));
            }
            // its steps must be the run's grid: t_k = k G / t on a VP grid (any G that t
            // divides); a Karras grid of t points is no subset of a finer one
            let fits = match meta.param {
                Param::Vp => meta.grid_steps % t == 0,
                Param::Ve => meta.grid_steps == t,
            };
            if !fits {
                return Err(Error::file(
                    what,
                    format!(
                        "a {t}-step {} student of a {}-step {:?} grid: its steps are not the {t}-step grid of schedule {}; expected a teacher (kind teacher or fit) or a student whose steps are that grid",
                        meta.kind, meta.grid_steps, meta.param, sched
                    ),
                ));
            }
            true
        }
        "fit" => {
            warnings.push(format!(
                "{what} is a fit (a network fit to the exact teacher of {}, the start of a distillation), used as the teacher; --teacher exact is the teacher it approximates",
                meta.data
            ));
            false
        }
        _ => false,
    };
    match same_data(&meta.data, data) {
        Some(true) => {}
        Some(false) => {
            return Err(Error::file(
                what,
                format!(
                    "the model was trained on {}, a different mixture (or data) from {}, the run's data; expected a teacher of {}",
                    meta.data, data.spec, data.spec
                ),
            ));
        }
        None if data_unknown(&meta.data) => warnings.push(format!(
            "{what}: a diffusers pipeline does not say what data it was trained on; using it as the teacher of {}, the run's data (same shape; `convert --data` records it in a model file)",
            data.spec
        )),
        None => warnings.push(format!(
            "{what} was trained on {}, the run's data is {}: using it as the teacher (same shape)",
            meta.data, data.spec
        )),
    }
    Ok((distilled, warnings))
}

/// A starting model (`--init`) of other data is allowed (the user may mean it), with a word.
fn init_warnings(m: &ModelFile, data: &Data, what: &str) -> Vec<String> {
    match same_data(&m.meta.data, data) {
        Some(true) => vec![],
        None if data_unknown(&m.meta.data) => vec![format!(
            "--init {what}: a diffusers pipeline does not say what data it was trained on; starting from it for {}, the run's data",
            data.spec
        )],
        _ => vec![format!(
            "--init {what} was trained on {}, the run's data is {}: starting from it anyway",
            m.meta.data, data.spec
        )],
    }
}

impl Run {
    /// Validate everything before any file is written.
    pub fn new(cfg: DistillConfig, dir: &Path, device: &Device) -> Result<Run> {
        Self::new_with(cfg, dir, device, &load_path)
    }

    /// `new`, opening `--teacher` and `--init` with `load` (e.g. one that knows `asset:NAME`).
    pub fn new_with(
        mut cfg: DistillConfig,
        dir: &Path,
        device: &Device,
        load: ModelLoader,
    ) -> Result<Run> {
        let data = Data::parse(&cfg.data)?;
        let sched = Schedule::parse(&cfg.schedule)?;
        let mut init_rng = Rng::stream(cfg.seed, purpose::INIT);
        let original;
        let mut init: Option<Vec<f32>> = None;
        let mut warnings = vec![];
        // the file the network's configuration came from (None: the data's defaults)
        let mut net_file: Option<String> = None;
        // a diffusers teacher's discrete grid (its scheduler's), which the run distills on
        let mut ddpm = None;
        if cfg.method == Method::Teacher || cfg.teacher == "data" {
            cfg.method = Method::Teacher;
            cfg.teacher = "data".into();
            original = TeacherNet::Data;
        } else if cfg.teacher == "exact" {
            original = TeacherNet::Exact(data.exact()?.exact_denoiser(device));
        } else {
            let m = load(&cfg.teacher)?;
            check_model_fits(&m, &data, cfg.param, &cfg.teacher)?;
            let (distilled, w) = check_teacher(&m, &data, &sched, &cfg.teacher)?;
            warnings.extend(w);
            cfg.net = m.meta.net().expect("validated on load");
            let teacher_net = Net::new(&cfg.net);
            // a diffusers student may predict another quantity than its teacher: the same
            // weights at the start, read as the student's prediction type, first re-fitted to
            // the teacher's own x0 for --fit-samples samples (a fit phase with this teacher)
            let mut refit = false;
            if let NetConfig::Diffusers(c) = &cfg.net
                && c.prediction == Prediction::Epsilon
                && cfg.student_prediction.is_none()
                && sched.final_steps() <= 2
            {
                warnings.push(format!(
                    "an epsilon student at {} step(s) multiplies its error by 1/alpha at the first step (157 for linear betas); the v student did far better on the end-to-end test (FID 23 against 203): --student-prediction v_prediction --fit-samples 8000 (docs/diffusers.md)",
                    sched.final_steps()
                ));
            }
            match (&mut cfg.net, cfg.student_prediction) {
                (NetConfig::Diffusers(c), Some(p)) => {
                    refit = c.prediction != p;
                    c.prediction = p;
                }
                (_, Some(_)) => {
                    return Err(Error::input(
                        "--student-prediction applies to diffusers teachers (diffusers:DIR) only",
                    ));
                }
                _ => {}
            }
            ddpm = m.meta.ddpm;
            net_file = Some(cfg.teacher.clone());
            if !refit {
                cfg.fit_samples = 0;
            }
            init = Some(m.flat.clone());
            original = TeacherNet::Net {
                params: flat_from_host(m.flat, device),
                distilled,
                net: teacher_net,
            };
        }
        if let Some(p) = &cfg.init {
            let m = load(p)?;
            check_model_fits(&m, &data, cfg.param, p)?;
            warnings.extend(init_warnings(&m, &data, p));
            cfg.net = m.meta.net().expect("validated on load");
            ddpm = ddpm.or(m.meta.ddpm);
            net_file = Some(p.clone());
            cfg.fit_samples = 0;
            init = Some(m.flat);
        }
        // a network the run cannot take (image sizes its UNet cannot halve, GroupNorm groups
        // that do not divide the channels) is refused here, before anything runs
        if let NetConfig::Unet(u) = &cfg.net {
            u.validate().map_err(|e| match &net_file {
                Some(f) => Error::file(f, e.to_string()),
                None => Error::input(format!(
                    "{}: {e} (images:DIR,SIZE scales a folder of images to SIZE; --size tiny and small halve twice)",
                    data.spec
                )),
            })?;
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
        if let Some(m) = cfg.mu_i
            && !(0.0..1.0).contains(&m)
        {
            return Err(Error::input(format!("--mu-i {m} is outside [0, 1)")));
        }
        if !(cfg.ema_eps > 0.0 && cfg.ema_eps < 1.0) {
            return Err(Error::input(format!(
                "--ema-eps {} is outside (0, 1)",
                cfg.ema_eps
            )));
        }
        if let NetConfig::Mlp(m) = &cfg.net
            && (m.hidden == 0 || m.hidden > 8192)
        {
            return Err(Error::input(format!(
                "--hidden {}: expected 1 to 8192",
                m.hidden
            )));
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
        let grid = match ddpm {
            Some(mut d) => {
                // the teacher's own timesteps: the schedule starts at num_train_timesteps
                if sched.teacher_steps() != d.train_steps {
                    return Err(Error::input(format!(
                        "--schedule {}: a diffusers teacher's grid has num_train_timesteps {} steps; expected a schedule that starts at {} (e.g. {},{},1), each count dividing the one before",
                        cfg.schedule,
                        d.train_steps,
                        d.train_steps,
                        d.train_steps,
                        (1..=d.train_steps.min(64))
                            .rev()
                            .find(|k| d.train_steps % k == 0 && *k < d.train_steps)
                            .unwrap_or(1)
                    )));
                }
                // the teacher's steps clip x0 where its scheduler does (clip_sample)
                cfg.clip_x0 = d.clip.is_some();
                // students sample on the grid's own points: trailing spacing
                d.spacing = crate::engine::schedule::Spacing::Trailing;
                d.steps_offset = 0;
                Grid::ddpm(d)
            }
            None => Grid::new(cfg.param, sched.teacher_steps()),
        };
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
            loss_every: LOSS_READ_EVERY,
            warnings,
            collective: Arc::new(Single),
            last_allreduce_s: Cell::new(0.0),
        })
    }

    /// Run data-parallel over `c`'s processes (every rank calls it with the same run): the
    /// global batch must split evenly over them. Rank 0 alone writes the run's files.
    pub fn set_collective(&mut self, c: Arc<dyn Collective>) -> Result<()> {
        check_batch(self.cfg.batch, c.size())?;
        self.collective = c;
        Ok(())
    }

    /// This process's rank and the number of ranks.
    pub fn ranks(&self) -> (usize, usize) {
        (self.collective.rank(), self.collective.size())
    }

    /// Whether this process writes the run's files (rank 0, or the only process).
    pub fn writes(&self) -> bool {
        self.collective.rank() == 0
    }

    /// Record the rank count from global step `step` on in the config (data-parallel runs,
    /// and single-process continuations of them); true when it changed.
    fn note_ranks(&mut self, step: u64) -> bool {
        let ranks = self.collective.size();
        let last = self.cfg.ranks.last().map(|r| r.ranks);
        if (ranks > 1 || last.is_some()) && last != Some(ranks) {
            self.cfg.ranks.push(RankSpan {
                from_step: step,
                ranks,
            });
            return true;
        }
        false
    }

    /// Open a run directory to resume it: the config comes from its state file.
    pub fn open(dir: &Path, device: &Device) -> Result<Run> {
        Self::open_with(dir, device, &load_path)
    }

    /// `open`, opening `--teacher` and `--init` with `load` (see `new_with`).
    pub fn open_with(dir: &Path, device: &Device, load: ModelLoader) -> Result<Run> {
        let path = dir.join(STATE_FILE);
        if !path.exists() {
            return Err(Error::file(
                &path,
                "nothing to resume: no training state here (start without --resume)",
            ));
        }
        let (_, meta) = read_state(&path)?;
        Run::new_with(meta.config, dir, device, load)
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

    fn model_meta(&self, kind: &str, steps: usize, samples: u64) -> ModelMeta {
        let mut meta = ModelMeta {
            format: "tract-studio-model/1".into(),
            mlp: None,
            unet: None,
            diffusers: None,
            ddpm: self.grid.ddpm,
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
            let changed = self.note_ranks(st.global_step);
            if self.writes() {
                self.remove_stale_temp_files();
                self.trim_losses(st.global_step)?;
                if changed {
                    self.write_config()?;
                }
            }
            st
        } else if !self.writes() {
            self.note_ranks(0);
            self.fresh_state()
        } else {
            self.note_ranks(0);
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
            self.remove_stale_temp_files();
            let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
            error::write_atomic(&self.dir.join(LOSS_FILE), b"phase,step,global_step,loss\n")?;
            self.write_config()?;
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
            // the steps whose losses are still on the device
            let mut pending: Vec<PendingStep> = vec![];
            while st.step < phase.steps {
                let i = st.step + 1;
                let started = web_time::Instant::now();
                let loss = self.train_step(&phase, &mut st, i, mu_i)?;
                let step_s = started.elapsed().as_secs_f64();
                st.step += 1;
                st.global_step += 1;
                samples_done += self.cfg.batch as u64;
                pending.push(PendingStep {
                    loss,
                    step: st.step,
                    global_step: st.global_step,
                    samples_done: samples_done.min(samples_total),
                    step_s,
                    allreduce_s: self.last_allreduce_s.get(),
                });
                let at_max = max_global_steps.is_some_and(|m| st.global_step >= m);
                let ckpt = st.step % self.cfg.ckpt_every == 0 && st.step < phase.steps;
                let preview = self
                    .preview
                    .as_ref()
                    .is_some_and(|p| st.step % p.every == 0);
                let every = self.loss_every.min(observer.loss_every()).max(1);
                let read =
                    st.step % every == 0 || st.step == phase.steps || ckpt || at_max || preview;
                if !read {
                    continue;
                }
                // the losses since the last read, in one transfer; the first non-finite one
                // stops the run before anything after it is saved
                let losses = read_losses(&pending);
                let mut go = true;
                for (p, loss) in pending.drain(..).zip(losses) {
                    if !loss.is_finite() {
                        return Err(Error::Diverged(format!(
                            "loss is {loss} at phase {} ({}), step {}; the weights were not saved. {}",
                            st.phase,
                            phase.name(),
                            p.step,
                            last_good_note(&last_good)
                        )));
                    }
                    self.pending_losses.push(format!(
                        "{},{},{},{}",
                        st.phase, p.step, p.global_step, loss
                    ));
                    go = observer.event(&Event::Step {
                        phase: st.phase,
                        step: p.step,
                        steps: phase.steps,
                        samples_done: p.samples_done,
                        samples_total,
                        loss,
                        ranks: self.collective.size(),
                        step_s: p.step_s,
                        allreduce_s: p.allreduce_s,
                    }) && go;
                }
                let go = go && self.emit_preview(&phase, &st, observer);
                let interrupted = !go || at_max;
                if ckpt || interrupted {
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
            if self.writes() {
                mf.save(&pf)?;
            }
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
            if !self.cfg.recipe.keep_adam || was_fit {
                st.adam = Adam::new(&st.student);
            }
            last_good = self.save_state(&st)?;
        }
        let last = self.phases.len() - 1;
        let name = if self.cfg.method == Method::Teacher {
            TEACHER_FILE
        } else {
            STUDENT_FILE
        };
        let student = self.dir.join(name);
        // atomically, as every other file: a kill never leaves a half-copied model
        if self.writes() {
            let bytes = error::read_file(&self.phase_file(last))?;
            error::write_atomic(&student, &bytes)?;
        }
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

    /// The run's config as config.json (rank 0).
    fn write_config(&self) -> Result<()> {
        error::write_atomic(
            &self.dir.join("config.json"),
            serde_json::to_string_pretty(&self.cfg)
                .expect("serializes")
                .as_bytes(),
        )
    }

    fn emit_preview(&self, phase: &Phase, st: &RunState, observer: &mut dyn Observer) -> bool {
        let Some(p) = &self.preview else { return true };
        // the pictures are rank 0's (data-parallel ranks > 0 report nothing)
        if !self.writes() {
            return true;
        }
        if !st.step.is_multiple_of(p.every) && st.step != phase.steps {
            return true;
        }
        let d = self.data.dim();
        let n = p.noise.len() / d;
        let steps = phase.to_steps().unwrap_or(64).min(self.grid.steps);
        let eps = from_vec2(p.noise.clone(), [n, d], &self.device);
        let x = diffusion::sample(
            &Bound {
                model: &self.net,
                params: &st.ema,
            },
            eps,
            &self.grid,
            steps,
            Solver::Ddim,
            self.cfg.clip_x0,
        );
        observer.event(&Event::Preview {
            phase: st.phase,
            step: st.step,
            steps,
            samples: to_vec(x),
        })
    }
}
