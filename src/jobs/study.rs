//! `tract-studio study`: when does TRACT beat BTD? (issue #18). Budget sweeps with paired
//! seeds on mixtures with an exact teacher or a learned MLP teacher, paired differences with
//! 95% t-intervals, the final phase's loss curve of every run, plots and tables.
//!
//! A pair (one seed) shares the teacher, the start network and the evaluation noise:
//! - `exact` teacher: per seed one network fitted to the exact teacher starts every method;
//! - `learned` teacher: one MLP trained on the data (committed under `OUT/teachers/`), every
//!   student starts as its copy. Distillation error is measured against that teacher's own
//!   1024-step DDIM from the same noise, quality against the exact 1024-step sampler and data.
//!
//! Resumable: each finished run's numbers are one JSON file in `OUT/cache/TAG/`; a rerun
//! skips them, so budgets and seeds can be extended later. Work files (start networks,
//! reference samples, run folders) live in `--work`, outside the repository; an interrupted
//! run continues from its checkpoint there.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::engine::data::Data;
use crate::engine::diffusion::Solver;
use crate::engine::distill::{DistillConfig, Method, Observer, Run};
use crate::engine::error::{Error, Result};
use crate::engine::eval::{rmse, sliced_w2};
use crate::engine::rng::{Rng, purpose};
use crate::engine::schedule::Param;
use crate::jobs::generate::{Model, noise};

/// Bump when the measurement changes so old cache files are not mixed in.
pub const CACHE_VERSION: u32 = 1;
/// Points kept of each run's final-phase loss curve (means over equal bins).
pub const LOSS_BINS: usize = 50;
/// The evaluation noise seed (one noise for every seed and method: pairs share it).
pub const EVAL_NOISE_SEED: u64 = 18_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeacherKind {
    Exact,
    Learned,
}

impl std::str::FromStr for TeacherKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(TeacherKind::Exact),
            "learned" => Ok(TeacherKind::Learned),
            o => Err(Error::input(format!(
                "unknown teacher '{o}': expected exact or learned"
            ))),
        }
    }
}

/// A method of the study: `tract`, `btd` (TRACT's recipe) or `btd-sh` (Salimans & Ho's:
/// lr linearly to 0 in each phase, no inference EMA, fresh Adam), with optional diagnostic
/// switches appended: `+flat`, `+top=W`, `+sum`, `+clip=C`, `+keep-adam`, `+anneal`, `+noema`, `+eps=E`
/// (the inference EMA's eps, mu_I = eps^(1/N));
/// and for the paper's schedule tables `+s=A/B/C` (the schedule A,B,C instead of the
/// method's default; Table 5 at a fixed total) and `+per-phase` (the budget is each phase's,
/// split equally: Table 6).
#[derive(Clone, Debug, PartialEq)]
pub struct StudyMethod {
    pub name: String,
    pub base: Method,
}

impl StudyMethod {
    pub fn parse(s: &str) -> Result<StudyMethod> {
        let mut parts = s.split('+');
        let base = parts.next().unwrap_or("");
        let m = match base {
            "tract" => Method::Tract,
            "btd" | "btd-sh" => Method::Btd,
            o => {
                return Err(Error::input(format!(
                    "unknown study method '{o}': expected tract, btd or btd-sh (then +flat, +top=W, +sum, +clip=C, +keep-adam, +anneal, +noema, +eps=E, +s=A/B/C, +per-phase)"
                )));
            }
        };
        let sm = StudyMethod {
            name: s.to_string(),
            base: m,
        };
        // check the switches now
        let data = Data::parse("toy:ring8")?;
        sm.configure(DistillConfig::new(&data, Param::Vp))?;
        Ok(sm)
    }

    /// The file-name form of the name.
    pub fn key(&self) -> String {
        self.name.replace(['+', '=', '/'], "_")
    }

    /// The schedule a `+s=A/B/C` switch names, as "A,B,C".
    fn schedule_switch(&self) -> Option<String> {
        self.name
            .split('+')
            .skip(1)
            .find_map(|p| p.strip_prefix("s=").map(|v| v.replace('/', ",")))
    }

    /// Apply the method and its switches to a config.
    pub fn configure(&self, mut c: DistillConfig) -> Result<DistillConfig> {
        let mut parts = self.name.split('+');
        let base = parts.next().unwrap_or("");
        c.method = self.base;
        let mut per_phase = false;
        if base == "btd-sh" {
            c.recipe.lr_anneal = true;
            c.mu_i = Some(0.0);
        }
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let num = || -> Result<f64> {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| Error::input(format!("'+{p}': expected a positive number")))
            };
            match k {
                "flat" => c.recipe.flat_weight = true,
                "top" => c.recipe.final_t_weight = num()?,
                "sum" => c.recipe.loss_sum = true,
                "clip" => c.recipe.clip_x0_range = Some(num()?),
                "keep-adam" => c.recipe.keep_adam = true,
                "anneal" => c.recipe.lr_anneal = true,
                "noema" => c.mu_i = Some(0.0),
                "eps" => {
                    let e = num()?;
                    if e >= 1.0 {
                        return Err(Error::input(format!("'+{p}': expected 0 < E < 1")));
                    }
                    c.ema_eps = e;
                }
                "s" => {
                    let sched = v.replace('/', ",");
                    crate::engine::schedule::Schedule::parse(&sched)
                        .map_err(|e| Error::input(format!("'+{p}' in '{}': {e}", self.name)))?;
                    c.schedule = sched;
                }
                "per-phase" => per_phase = true,
                _ => {
                    return Err(Error::input(format!(
                        "unknown switch '+{p}' in '{}'",
                        self.name
                    )));
                }
            }
        }
        c.recipe.validate()?;
        if per_phase {
            let phases = crate::engine::distill::plan(&c)?
                .iter()
                .filter(|ph| ph.to_steps().is_some())
                .count();
            c.phase_split = Some(vec![1.0; phases]);
            c.train_samples *= phases as u64;
        }
        Ok(c)
    }

    /// The schedule for K sampling steps from the 1024-step teacher.
    pub fn schedule(&self, steps: usize) -> String {
        if let Some(s) = self.schedule_switch() {
            return s;
        }
        match self.base {
            Method::Btd => format!("1024,{steps}"),
            _ => format!("1024,32,{steps}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct StudyConfig {
    pub data: String,
    pub teacher: TeacherKind,
    pub methods: Vec<StudyMethod>,
    pub budgets: Vec<u64>,
    pub seeds: Vec<u64>,
    pub steps: Vec<usize>,
    pub n_eval: usize,
    pub fit_samples: u64,
    pub teacher_samples: u64,
    pub batch: usize,
    pub out: PathBuf,
    pub work: PathBuf,
    /// (k, n): run only jobs whose index is k mod n (several processes side by side).
    pub shard: (usize, usize),
}

impl StudyConfig {
    /// `ring8-exact`, `grid5-learned`, ...
    pub fn tag(&self) -> String {
        tag(&self.data, self.teacher)
    }
}

pub fn tag(data: &str, teacher: TeacherKind) -> String {
    let d = data.rsplit(':').next().unwrap_or(data);
    let d: String = d
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{d}-{}", format!("{teacher:?}").to_lowercase())
}

/// One finished run's numbers (one cache file).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub version: u32,
    pub tag: String,
    pub data: String,
    pub teacher: TeacherKind,
    pub method: String,
    pub schedule: String,
    pub steps: usize,
    pub budget: u64,
    pub seed: u64,
    pub n_eval: usize,
    /// to the teacher's own 1024-step DDIM samples from the same noise (distillation error)
    pub rmse: f64,
    /// to the exact mixture's 1024-step DDIM from the same noise (equal to `rmse` for the
    /// exact teacher)
    pub rmse_exact: f64,
    /// sliced W2 to fresh data
    pub sw2: f64,
    pub seconds: f64,
    /// optimizer steps of the final phase
    pub final_steps: u64,
    /// the final phase's loss: means over LOSS_BINS equal bins of its steps
    pub final_loss: Vec<f64>,
    /// mean loss of the final phase's last quarter over its third quarter (near 1: plateaued)
    pub plateau: f64,
    /// the run's 32-step stage (the model its later phases were distilled from: TRACT's
    /// 1024 -> 32 student, BTD's 64 -> 32 one) sampled at 32 steps, RMSE to the teacher's
    /// 1024-step samples: how much of the final error was there before the last jump.
    /// None for a schedule without a 32-step stage, and in records of older versions.
    #[serde(default)]
    pub rmse_32: Option<f64>,
}

/// Baselines of one tag (the teacher's own samplers), cached.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    pub tag: String,
    pub n_eval: usize,
    /// teacher at K steps: (K, RMSE to its 1024-step samples, RMSE to exact-1024, SW2)
    pub teacher_k: Vec<(usize, f64, f64, f64)>,
    /// SW2 of the teacher's 1024-step samples (the noise floor of SW2 at n_eval)
    pub teacher_1024_sw2: f64,
    /// SW2 of the exact sampler at 1024 steps
    pub exact_1024_sw2: f64,
    /// RMSE of the teacher's 1024-step samples to the exact sampler's (learned teacher only)
    pub teacher_1024_rmse_exact: f64,
}

/// Mean loss of bins of a curve.
pub fn bin_means(v: &[f64], bins: usize) -> Vec<f64> {
    if v.is_empty() {
        return vec![];
    }
    let bins = bins.min(v.len()).max(1);
    (0..bins)
        .map(|b| {
            let (lo, hi) = (
                b * v.len() / bins,
                ((b + 1) * v.len() / bins).max(b * v.len() / bins + 1),
            );
            v[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
        })
        .collect()
}

/// Mean of the last quarter over the third quarter of a curve (1 when too short).
pub fn plateau_ratio(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 4 {
        return 1.0;
    }
    let m = |a: usize, b: usize| v[a..b].iter().sum::<f64>() / (b - a) as f64;
    m(3 * n / 4, n) / m(n / 2, 3 * n / 4)
}

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom.
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        _ => {
            // Cornish-Fisher expansion around the normal quantile
            let z: f64 = 1.959964;
            let n = df as f64;
            z + (z.powi(3) + z) / (4.0 * n)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// Mean and the half-width of its 95% t-interval (infinite for one value).
pub fn mean_ci(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (m, f64::INFINITY);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    (m, t975(n - 1) * (var / n as f64).sqrt())
}

fn io<T>(r: std::io::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    r.map_err(|e| Error::io(what(), e))
}

fn write_f32(path: &Path, v: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    crate::engine::error::write_atomic(path, &bytes)
}

fn read_f32(path: &Path, n: usize) -> Option<Vec<f32>> {
    let b = std::fs::read(path).ok()?;
    if b.len() != n * 4 {
        return None;
    }
    Some(
        b.chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Samples of `spec` at `steps` from `z`, cached in `path`.
fn cached_samples(
    path: &Path,
    spec: &str,
    z: &[f32],
    steps: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    if let Some(v) = read_f32(path, z.len()) {
        return Ok(v);
    }
    let m = Model::load(spec, Param::Vp, Some(1024), device)?;
    let v = m.sample(z, steps, Solver::Ddim, device)?;
    write_f32(path, &v)?;
    Ok(v)
}

/// What a run needs from its tag, prepared once.
pub struct Prepared {
    pub data: Data,
    pub z: Vec<f32>,
    pub fresh: Vec<f32>,
    /// the teacher's 1024-step samples from `z`
    pub reference: Vec<f32>,
    /// the exact sampler's 1024-step samples from `z`
    pub exact_ref: Vec<f32>,
    /// the learned teacher's model file
    pub teacher_file: Option<PathBuf>,
    pub baseline: Baseline,
}

fn no_observer() -> impl Observer {
    |_: &crate::engine::distill::Event| true
}

/// Train (or find) the learned teacher, compute (or find) the reference samples.
pub fn prepare(cfg: &StudyConfig, device: &Device, log: &mut dyn FnMut(&str)) -> Result<Prepared> {
    let data = Data::parse(&cfg.data)?;
    data.exact()?;
    let t = cfg.tag();
    let work = cfg.work.join(&t);
    io(std::fs::create_dir_all(&work), || {
        format!("creating {}", work.display())
    })?;
    let d = data.dim();
    let z = noise(EVAL_NOISE_SEED, cfg.n_eval, d);
    let fresh = data.sample(
        &mut Rng::stream(EVAL_NOISE_SEED, purpose::EVAL_DATA),
        cfg.n_eval,
    );
    let exact_spec = format!("exact:{}", cfg.data);
    log(&format!(
        "{t}: exact reference ({} samples, 1024 steps)",
        cfg.n_eval
    ));
    let exact_ref = cached_samples(
        &work.join(format!("exact-1024-{}.f32", cfg.n_eval)),
        &exact_spec,
        &z,
        1024,
        device,
    )?;
    let teacher_file = match cfg.teacher {
        TeacherKind::Exact => None,
        TeacherKind::Learned => Some(learned_teacher(cfg, &data, device, log)?),
    };
    let spec = teacher_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or(exact_spec.clone());
    let reference = match &teacher_file {
        None => exact_ref.clone(),
        Some(_) => {
            log(&format!(
                "{t}: the learned teacher's reference (1024 steps)"
            ));
            cached_samples(
                &work.join(format!("teacher-1024-{}.f32", cfg.n_eval)),
                &spec,
                &z,
                1024,
                device,
            )?
        }
    };
    let sw = |x: &[f32]| sliced_w2(x, &fresh, d, 256, EVAL_NOISE_SEED);
    let bpath = cfg
        .out
        .join("cache")
        .join(&t)
        .join(format!("baseline-{}.json", cfg.n_eval));
    let baseline = match std::fs::read_to_string(&bpath)
        .ok()
        .and_then(|s| serde_json::from_str::<Baseline>(&s).ok())
        .filter(|b| b.version == CACHE_VERSION)
    {
        Some(b) => b,
        None => {
            let mut teacher_k = vec![];
            for k in [1usize, 2, 4, 8] {
                let s = cached_samples(
                    &work.join(format!("teacher-{k}-{}.f32", cfg.n_eval)),
                    &spec,
                    &z,
                    k,
                    device,
                )?;
                teacher_k.push((k, rmse(&s, &reference), rmse(&s, &exact_ref), sw(&s)));
            }
            let b = Baseline {
                version: CACHE_VERSION,
                tag: t.clone(),
                n_eval: cfg.n_eval,
                teacher_k,
                teacher_1024_sw2: sw(&reference),
                exact_1024_sw2: sw(&exact_ref),
                teacher_1024_rmse_exact: rmse(&reference, &exact_ref),
            };
            io(
                std::fs::create_dir_all(bpath.parent().expect("has a parent")),
                || format!("creating {}", bpath.display()),
            )?;
            crate::engine::error::write_atomic(
                &bpath,
                serde_json::to_string_pretty(&b)
                    .expect("serializes")
                    .as_bytes(),
            )?;
            b
        }
    };
    Ok(Prepared {
        data,
        z,
        fresh,
        reference,
        exact_ref,
        teacher_file,
        baseline,
    })
}

/// The learned MLP teacher of a data set: `OUT/teachers/TAG.safetensors`, trained on the
/// data (seed 0) when missing.
fn learned_teacher(
    cfg: &StudyConfig,
    data: &Data,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    let dir = cfg.out.join("teachers");
    let name = data.spec.rsplit(':').next().unwrap_or("data").to_string();
    let path = dir.join(format!("{name}-mlp.safetensors"));
    if path.exists() {
        return Ok(path);
    }
    log(&format!(
        "training the learned teacher for {} ({} samples)",
        data.spec, cfg.teacher_samples
    ));
    let mut c = DistillConfig::new(data, Param::Vp);
    c.method = Method::Teacher;
    c.teacher = "data".into();
    c.fit_samples = cfg.teacher_samples;
    c.train_samples = 0;
    c.batch = cfg.batch;
    c.seed = 0;
    c.ckpt_every = 2000;
    let run_dir = cfg.work.join(format!("teacher-{name}"));
    let resume = run_dir.join(crate::engine::distill::STATE_FILE).exists();
    let mut run = if resume {
        Run::open(&run_dir, device)?
    } else {
        Run::new(c, &run_dir, device)?
    };
    let out = match run.run(resume, &mut no_observer(), None)? {
        crate::engine::distill::Outcome::Finished { student } => student,
        crate::engine::distill::Outcome::Stopped { .. } => return Err(Error::input("stopped")),
    };
    io(std::fs::create_dir_all(&dir), || {
        format!("creating {}", dir.display())
    })?;
    io(std::fs::copy(&out, &path), || {
        format!("copying {}", out.display())
    })?;
    let _ = std::fs::copy(
        run_dir.join("loss.csv"),
        dir.join(format!("{name}-mlp-loss.csv")),
    );
    Ok(path)
}

/// The network of seed `seed` fitted to the exact teacher (cached in the work folder).
fn exact_fit(cfg: &StudyConfig, data: &Data, seed: u64, device: &Device) -> Result<PathBuf> {
    let work = cfg.work.join(cfg.tag());
    let path = work.join(format!("fit-seed{seed}-{}.safetensors", cfg.fit_samples));
    if path.exists() {
        return Ok(path);
    }
    let mut c = DistillConfig::new(data, Param::Vp);
    c.seed = seed;
    c.batch = cfg.batch;
    c.fit_samples = cfg.fit_samples;
    // a one-step TRACT phase after the fit, which is thrown away
    c.schedule = "1024,1".into();
    c.train_samples = 1;
    c.ckpt_every = 1_000_000;
    let dir = work.join(format!("fit-seed{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Run::new(c, &dir, device)?.run_to_end(&mut no_observer())?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    io(
        std::fs::copy(dir.join("phase0-fit.safetensors"), &tmp),
        || format!("keeping the fit of {}", dir.display()),
    )?;
    io(std::fs::rename(&tmp, &path), || {
        format!("renaming {}", tmp.display())
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(path)
}

/// One job of the sweep.
#[derive(Clone, Debug)]
pub struct Job {
    pub method: StudyMethod,
    pub steps: usize,
    pub budget: u64,
    pub seed: u64,
}

impl Job {
    pub fn file_name(&self) -> String {
        format!(
            "{}-k{}-{}-s{}.json",
            self.method.key(),
            self.steps,
            self.budget,
            self.seed
        )
    }
}

/// Every job, cheapest budget first, pairs together (all methods of one seed in a row).
pub fn jobs(cfg: &StudyConfig) -> Vec<Job> {
    let mut budgets = cfg.budgets.clone();
    budgets.sort();
    let mut v = vec![];
    for &budget in &budgets {
        for &steps in &cfg.steps {
            for &seed in &cfg.seeds {
                for m in &cfg.methods {
                    v.push(Job {
                        method: m.clone(),
                        steps,
                        budget,
                        seed,
                    });
                }
            }
        }
    }
    v
}

/// Run one job to its record.
fn run_job(cfg: &StudyConfig, p: &Prepared, job: &Job, device: &Device) -> Result<RunRecord> {
    let t0 = web_time::Instant::now();
    let mut c = DistillConfig::new(&p.data, Param::Vp);
    c.seed = job.seed;
    c.batch = cfg.batch;
    c.train_samples = job.budget;
    c.fit_samples = 0;
    c.ckpt_every = 2000;
    c.schedule = job.method.schedule(job.steps);
    match &p.teacher_file {
        None => {
            c.init = Some(
                exact_fit(cfg, &p.data, job.seed, device)?
                    .display()
                    .to_string(),
            )
        }
        Some(f) => c.teacher = f.display().to_string(),
    }
    let c = job.method.configure(c)?;
    let last_steps = crate::engine::schedule::Schedule::parse(&c.schedule)?.final_steps();
    if last_steps != job.steps {
        return Err(Error::input(format!(
            "study method '{}' has the schedule {}, which ends at {last_steps} steps, but the students are sampled at {} (--steps)",
            job.method.name, c.schedule, job.steps
        )));
    }
    let dir = cfg
        .work
        .join(cfg.tag())
        .join("runs")
        .join(job.file_name().trim_end_matches(".json"));
    // continue an interrupted run of the same config; start over otherwise
    let resume = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<DistillConfig>(&s).ok())
        .is_some_and(|old| old == c)
        && dir.join(crate::engine::distill::STATE_FILE).exists();
    let mut run = if resume {
        Run::open(&dir, device)?
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        Run::new(c.clone(), &dir, device)?
    };
    let last = run.phases.len() - 1;
    let student = match run.run(resume, &mut no_observer(), None)? {
        crate::engine::distill::Outcome::Finished { student } => student,
        crate::engine::distill::Outcome::Stopped { .. } => return Err(Error::input("stopped")),
    };
    let m = Model::load(&student.display().to_string(), Param::Vp, None, device)?;
    let out = m.sample(&p.z, job.steps, Solver::Ddim, device)?;
    let d = p.data.dim();
    let rmse_32 = match run.phases[..last]
        .iter()
        .position(|ph| ph.to_steps() == Some(32))
    {
        Some(i) => {
            let mid = Model::load(
                &run.phase_file(i).display().to_string(),
                Param::Vp,
                None,
                device,
            )?;
            Some(rmse(
                &mid.sample(&p.z, 32, Solver::Ddim, device)?,
                &p.reference,
            ))
        }
        None => None,
    };
    let losses: Vec<f64> =
        crate::jobs::plot::read_loss_csv(&dir.join(crate::engine::distill::LOSS_FILE))
            .into_iter()
            .filter(|(ph, _)| *ph == last)
            .map(|(_, l)| l as f64)
            .collect();
    let rec = RunRecord {
        version: CACHE_VERSION,
        tag: cfg.tag(),
        data: cfg.data.clone(),
        teacher: cfg.teacher,
        method: job.method.name.clone(),
        schedule: c.schedule.clone(),
        steps: job.steps,
        budget: job.budget,
        seed: job.seed,
        n_eval: cfg.n_eval,
        rmse: rmse(&out, &p.reference),
        rmse_exact: rmse(&out, &p.exact_ref),
        sw2: sliced_w2(&out, &p.fresh, d, 256, EVAL_NOISE_SEED),
        seconds: t0.elapsed().as_secs_f64(),
        final_steps: run.phases[last].steps,
        final_loss: bin_means(&losses, LOSS_BINS),
        plateau: plateau_ratio(&losses),
        rmse_32,
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rec)
}

/// Run every missing job of this shard, then rewrite the tables and plots of everything
/// in the cache. Returns the number of runs done now.
pub fn run(cfg: &StudyConfig, device: &Device, log: &mut dyn FnMut(&str)) -> Result<usize> {
    let cache = cfg.out.join("cache").join(cfg.tag());
    io(std::fs::create_dir_all(&cache), || {
        format!("creating {}", cache.display())
    })?;
    let all = jobs(cfg);
    let todo: Vec<(usize, Job)> = all
        .into_iter()
        .enumerate()
        .filter(|(i, j)| i % cfg.shard.1 == cfg.shard.0 && !cached(&cache, j, cfg.n_eval))
        .collect();
    if todo.is_empty() {
        log(&format!("{}: every run is cached", cfg.tag()));
        write_outputs(&cfg.out)?;
        return Ok(0);
    }
    let p = prepare(cfg, device, log)?;
    let n = todo.len();
    for (done, (_, job)) in todo.into_iter().enumerate() {
        // another process may have finished it meanwhile
        if cached(&cache, &job, cfg.n_eval) {
            continue;
        }
        let rec = run_job(cfg, &p, &job, device)?;
        log(&format!(
            "[{}/{n}] {} {} k={} budget {} seed {}: RMSE {:.4} (exact {:.4}) SW2 {:.4} plateau {:.3} ({:.0}s)",
            done + 1,
            rec.tag,
            rec.method,
            rec.steps,
            rec.budget,
            rec.seed,
            rec.rmse,
            rec.rmse_exact,
            rec.sw2,
            rec.plateau,
            rec.seconds
        ));
        crate::engine::error::write_atomic(
            &cache.join(job.file_name()),
            serde_json::to_string_pretty(&rec)
                .expect("serializes")
                .as_bytes(),
        )?;
        write_outputs(&cfg.out)?;
    }
    Ok(n)
}

fn cached(cache: &Path, job: &Job, n_eval: usize) -> bool {
    std::fs::read_to_string(cache.join(job.file_name()))
        .ok()
        .and_then(|s| serde_json::from_str::<RunRecord>(&s).ok())
        .is_some_and(|r| r.version == CACHE_VERSION && r.n_eval == n_eval)
}

/// Every record and baseline under `OUT/cache`.
pub fn load_cache(out: &Path) -> (Vec<RunRecord>, Vec<Baseline>) {
    let (mut recs, mut bases) = (vec![], vec![]);
    let Ok(tags) = std::fs::read_dir(out.join("cache")) else {
        return (recs, bases);
    };
    let mut paths: Vec<PathBuf> = tags
        .flatten()
        .filter_map(|t| std::fs::read_dir(t.path()).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let Ok(s) = std::fs::read_to_string(&p) else {
            continue;
        };
        if let Ok(b) = serde_json::from_str::<Baseline>(&s) {
            if b.version == CACHE_VERSION {
                bases.push(b);
            }
        } else if let Ok(r) = serde_json::from_str::<RunRecord>(&s)
            && r.version == CACHE_VERSION
        {
            recs.push(r);
        }
    }
    (recs, bases)
}

/// One cell of a table: a method at a budget.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub tag: String,
    pub steps: usize,
    pub budget: u64,
    pub method: String,
    pub n: usize,
    pub rmse: (f64, f64),
    pub rmse_exact: (f64, f64),
    pub sw2: (f64, f64),
    pub plateau: (f64, f64),
    pub final_steps: u64,
    /// over the records that have it, when every record of the cell has it
    pub rmse_32: Option<(f64, f64)>,
}

/// A paired difference `a - b` over the seeds both have.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub tag: String,
    pub steps: usize,
    pub budget: u64,
    pub a: String,
    pub b: String,
    pub n: usize,
    pub rmse: (f64, f64),
    pub rmse_exact: (f64, f64),
    pub sw2: (f64, f64),
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub cells: Vec<Cell>,
    pub diffs: Vec<Diff>,
    pub baselines: Vec<Baseline>,
}

fn uniq<T: PartialEq + Clone>(v: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = vec![];
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Cells and paired differences (TRACT-based methods minus every BTD-based one).
pub fn summarize(recs: &[RunRecord], baselines: Vec<Baseline>) -> Summary {
    let mut cells = vec![];
    let mut diffs = vec![];
    let mut groups = uniq(recs.iter().map(|r| (r.tag.clone(), r.steps, r.budget)));
    groups.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (tag, steps, budget) in groups {
        let g: Vec<&RunRecord> = recs
            .iter()
            .filter(|r| r.tag == tag && r.steps == steps && r.budget == budget)
            .collect();
        let methods = uniq(g.iter().map(|r| r.method.clone()));
        for m in &methods {
            let rs: Vec<&&RunRecord> = g.iter().filter(|r| &r.method == m).collect();
            let col = |f: &dyn Fn(&RunRecord) -> f64| {
                mean_ci(&rs.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            cells.push(Cell {
                tag: tag.clone(),
                steps,
                budget,
                method: m.clone(),
                n: rs.len(),
                rmse: col(&|r| r.rmse),
                rmse_exact: col(&|r| r.rmse_exact),
                sw2: col(&|r| r.sw2),
                plateau: col(&|r| r.plateau),
                final_steps: rs[0].final_steps,
                rmse_32: rs
                    .iter()
                    .map(|r| r.rmse_32)
                    .collect::<Option<Vec<f64>>>()
                    .map(|v| mean_ci(&v)),
            });
        }
        // TRACT-based minus every BTD-based method; a variant (`m+switch`) minus its base
        let mut pairs: Vec<(String, String)> = vec![];
        for a in methods.iter().filter(|m| m.starts_with("tract")) {
            for b in methods.iter().filter(|m| m.starts_with("btd")) {
                pairs.push((a.clone(), b.clone()));
            }
        }
        for a in methods.iter().filter(|m| m.contains('+')) {
            let base = a.split('+').next().unwrap_or("").to_string();
            if methods.contains(&base) {
                pairs.push((a.clone(), base));
            }
        }
        for (a, b) in &pairs {
            {
                let mut d = (vec![], vec![], vec![]);
                for ra in g.iter().filter(|r| &r.method == a) {
                    if let Some(rb) = g.iter().find(|r| &r.method == b && r.seed == ra.seed) {
                        d.0.push(ra.rmse - rb.rmse);
                        d.1.push(ra.rmse_exact - rb.rmse_exact);
                        d.2.push(ra.sw2 - rb.sw2);
                    }
                }
                if d.0.is_empty() {
                    continue;
                }
                diffs.push(Diff {
                    tag: tag.clone(),
                    steps,
                    budget,
                    a: a.clone(),
                    b: b.clone(),
                    n: d.0.len(),
                    rmse: mean_ci(&d.0),
                    rmse_exact: mean_ci(&d.1),
                    sw2: mean_ci(&d.2),
                });
            }
        }
    }
    Summary {
        cells,
        diffs,
        baselines,
    }
}

fn budget_label(b: u64) -> String {
    if b.is_multiple_of(1_000_000) {
        format!("{}M", b / 1_000_000)
    } else if b.is_multiple_of(100_000) {
        format!("{}M", b as f64 / 1e6)
    } else if b.is_multiple_of(1000) {
        format!("{}k", b / 1000)
    } else {
        b.to_string()
    }
}

fn pm(x: (f64, f64)) -> String {
    if x.1.is_finite() {
        format!("{:.4} ± {:.4}", x.0, x.1)
    } else {
        format!("{:.4}", x.0)
    }
}

/// The verdict of a paired difference a - b (lower is better).
fn verdict(d: (f64, f64), a: &str, b: &str) -> String {
    if !d.1.is_finite() {
        "one seed".into()
    } else if d.0 + d.1 < 0.0 {
        format!("**{a} better**")
    } else if d.0 - d.1 > 0.0 {
        format!("**{b} better**")
    } else {
        "tie (CI spans 0)".into()
    }
}

impl Summary {
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "Generated by `tract-studio study` from the cache files in `cache/`. Each cell: mean ± \
             half-width of the 95% t-interval over seeds (n seeds). RMSE: 1-step (or K-step) samples \
             to the teacher's own 1024-step DDIM samples from the same noise (distillation error); \
             RMSE-exact: to the exact mixture's 1024-step DDIM; SW2: sliced W2 to fresh data. \
             Plateau: mean final-phase loss of its last quarter over its third quarter (1 = flat). \
             32-step stage: the run's intermediate 32-step model at 32 steps, RMSE to the same \
             reference (what the last phases started from; - where not recorded). \
             Paired differences are per seed (same teacher, start network and noise), \
             negative = A lower (better); variants (`tract+SWITCH`) are also compared with their base method.\n\n",
        );
        let tags = uniq(self.cells.iter().map(|c| (c.tag.clone(), c.steps)));
        for (tag, steps) in tags {
            s += &format!("## {tag}, {steps}-step students\n\n");
            if let Some(b) = self.baselines.iter().find(|b| b.tag == tag) {
                s += &format!("Teacher's own DDIM ({} samples): ", b.n_eval);
                let parts: Vec<String> = b
                    .teacher_k
                    .iter()
                    .map(|(k, r, re, w)| {
                        format!("{k} step(s) RMSE {r:.4} / RMSE-exact {re:.4} / SW2 {w:.4}")
                    })
                    .collect();
                s += &parts.join("; ");
                s += &format!(
                    ". SW2 of the teacher's 1024-step samples (noise floor): {:.4}; exact sampler: {:.4}; teacher-1024 to exact-1024 RMSE: {:.4}.\n\n",
                    b.teacher_1024_sw2, b.exact_1024_sw2, b.teacher_1024_rmse_exact
                );
            }
            s += "| budget | method | n | final-phase steps | RMSE | RMSE-exact | SW2 | plateau | 32-step stage |\n|---|---|---|---|---|---|---|---|---|\n";
            for c in self
                .cells
                .iter()
                .filter(|c| c.tag == tag && c.steps == steps)
            {
                s += &format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {:.3} | {} |\n",
                    budget_label(c.budget),
                    c.method,
                    c.n,
                    c.final_steps,
                    pm(c.rmse),
                    pm(c.rmse_exact),
                    pm(c.sw2),
                    c.plateau.0,
                    c.rmse_32.map_or("-".to_string(), pm)
                );
            }
            s += "\nPaired differences (A - B):\n\n| budget | A - B | n | Δ RMSE | verdict | Δ RMSE-exact | Δ SW2 | verdict (SW2) |\n|---|---|---|---|---|---|---|---|\n";
            for d in self
                .diffs
                .iter()
                .filter(|d| d.tag == tag && d.steps == steps)
            {
                s += &format!(
                    "| {} | {} - {} | {} | {} | {} | {} | {} | {} |\n",
                    budget_label(d.budget),
                    d.a,
                    d.b,
                    d.n,
                    pm(d.rmse),
                    verdict(d.rmse, &d.a, &d.b),
                    pm(d.rmse_exact),
                    pm(d.sw2),
                    verdict(d.sw2, &d.a, &d.b)
                );
            }
            s += &format!(
                "\n![RMSE vs budget]({tag}-k{steps}-rmse.png) ![paired differences]({tag}-k{steps}-diff.png)\n\n"
            );
            let budgets = uniq(
                self.cells
                    .iter()
                    .filter(|c| c.tag == tag && c.steps == steps)
                    .map(|c| c.budget),
            );
            for b in budgets {
                s += &format!(
                    "![final-phase loss at {}]({tag}-k{steps}-loss-{}.png) ",
                    budget_label(b),
                    budget_label(b)
                );
            }
            s += "\n\n";
        }
        s
    }
}

const COLORS: [[u8; 3]; 6] = [
    [200, 60, 30],
    [30, 80, 170],
    [40, 140, 60],
    [150, 50, 150],
    [20, 140, 150],
    [120, 120, 20],
];

/// A method's color, the same in every plot (other names: by position).
fn color_of(name: &str, i: usize) -> [u8; 3] {
    match name {
        "tract" | "tract - btd" => COLORS[2],
        "btd" => COLORS[0],
        "btd-sh" | "tract - btd-sh" => COLORS[1],
        _ => COLORS[3 + i % 3],
    }
}

/// A plot's line: its name and its (x, y, ci half-width) points.
type Series = (String, Vec<(f64, f64, f64)>);

/// A tick value with 3 significant digits below 1 (0.000213, not 0.000), 3 decimals above,
/// exponent form below 1e-4.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || a >= 1.0 {
        format!("{v:.3}")
    } else if a >= 1e-4 {
        let digits = (2 - a.log10().floor() as i64).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.2e}")
    }
}

/// A line plot: series of (x, y, ci) points, log10 x (and optionally log10 y), a legend.
fn line_plot(
    series: &[Series],
    title: &str,
    xlabel: &str,
    log_x: bool,
    log_y: bool,
    zero_line: bool,
    path: &Path,
) -> Result<()> {
    use crate::jobs::plot::Canvas;
    let (w, h, l, r, t, b) = (760i64, 420i64, 70i64, 200i64, 40i64, 40i64);
    let mut cv = Canvas::new(w as usize, h as usize, [255, 255, 255]);
    cv.text(l, 10, title, 2, [20, 20, 30]);
    let fx = |x: f64| if log_x { x.max(1e-300).log10() } else { x };
    let fy = |y: f64| if log_y { y.max(1e-300).log10() } else { y };
    let pts: Vec<(f64, f64, f64)> = series.iter().flat_map(|s| s.1.iter().cloned()).collect();
    if pts.is_empty() {
        return cv.save_png(path);
    }
    let xs: Vec<f64> = pts.iter().map(|p| fx(p.0)).collect();
    let ys: Vec<f64> = pts
        .iter()
        .flat_map(|p| {
            let c = if p.2.is_finite() { p.2 } else { 0.0 };
            [fy(p.1 - c), fy(p.1 + c), fy(p.1)]
        })
        .filter(|v| v.is_finite())
        .chain(if zero_line { Some(0.0) } else { None })
        .collect();
    let (mut x0, mut x1) = (
        xs.iter().cloned().fold(f64::MAX, f64::min),
        xs.iter().cloned().fold(f64::MIN, f64::max),
    );
    if x1 - x0 < 1e-12 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let pad = (x1 - x0) * 0.05;
    let (x0, x1) = (x0 - pad, x1 + pad);
    let (mut y0, mut y1) = (
        ys.iter().cloned().fold(f64::MAX, f64::min),
        ys.iter().cloned().fold(f64::MIN, f64::max),
    );
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.06;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (pw, ph) = (w - l - r, h - t - b);
    let sx = |x: f64| l as f64 + (fx(x) - x0) / (x1 - x0) * pw as f64;
    let sy = |y: f64| (t + ph) as f64 - (fy(y) - y0) / (y1 - y0) * ph as f64;
    cv.frame(l, t, pw, ph, [150, 150, 160]);
    // y ticks: 5 values
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * i as f64 / 4.0;
        let y = (t + ph) as f64 - (v - y0) / (y1 - y0) * ph as f64;
        cv.rect(l, y as i64, pw, 1, [236, 236, 240]);
        let shown = if log_y { 10f64.powf(v) } else { v };
        cv.text(4, y as i64 - 3, &tick_label(shown), 1, [90, 90, 100]);
    }
    if zero_line && !log_y {
        let y = sy(0.0);
        cv.line(l as f64, y, (l + pw) as f64, y, [60, 60, 60]);
    }
    // x ticks at each distinct x
    let mut xt: Vec<f64> = pts.iter().map(|p| p.0).collect();
    xt.sort_by(|a, b| a.total_cmp(b));
    xt.dedup();
    if xt.len() <= 12 {
        for x in &xt {
            let px = sx(*x);
            cv.rect(px as i64, t + ph, 1, 4, [90, 90, 100]);
            let lab = if log_x {
                budget_label(*x as u64)
            } else {
                format!("{x:.2}")
            };
            cv.text(px as i64 - 8, t + ph + 8, &lab, 1, [90, 90, 100]);
        }
    }
    cv.text(l, h - 16, xlabel, 1, [90, 90, 100]);
    for (i, (name, s)) in series.iter().enumerate() {
        let c = color_of(name, i);
        let mut prev: Option<(f64, f64)> = None;
        for &(x, y, ci) in s {
            let (px, py) = (sx(x), sy(y));
            if let Some((qx, qy)) = prev {
                cv.line(qx, qy, px, py, c);
            }
            if ci.is_finite() && ci > 0.0 {
                let (a, bb) = (sy(y - ci), sy(y + ci));
                cv.line(px, a, px, bb, c);
                cv.line(px - 4.0, a, px + 4.0, a, c);
                cv.line(px - 4.0, bb, px + 4.0, bb, c);
            }
            cv.rect(px as i64 - 2, py as i64 - 2, 5, 5, c);
            prev = Some((px, py));
        }
        let ly = t + 10 + i as i64 * 18;
        cv.rect(l + pw + 12, ly, 14, 4, c);
        cv.text(l + pw + 32, ly - 2, &name.to_uppercase(), 1, [30, 30, 40]);
    }
    cv.save_png(path)
}

/// tables.md, study.json and the plots of everything in the cache.
pub fn write_outputs(out: &Path) -> Result<Summary> {
    let (recs, bases) = load_cache(out);
    let sum = summarize(&recs, bases);
    crate::engine::error::write_atomic(
        &out.join("study.json"),
        serde_json::to_string_pretty(&sum)
            .expect("serializes")
            .as_bytes(),
    )?;
    crate::engine::error::write_atomic(&out.join("tables.md"), sum.markdown().as_bytes())?;
    let tags = uniq(sum.cells.iter().map(|c| (c.tag.clone(), c.steps)));
    for (tag, steps) in tags {
        let cells: Vec<&Cell> = sum
            .cells
            .iter()
            .filter(|c| c.tag == tag && c.steps == steps)
            .collect();
        let methods = uniq(cells.iter().map(|c| c.method.clone()));
        let series: Vec<Series> = methods
            .iter()
            .map(|m| {
                (
                    m.clone(),
                    cells
                        .iter()
                        .filter(|c| &c.method == m)
                        .map(|c| (c.budget as f64, c.rmse.0, c.rmse.1))
                        .collect(),
                )
            })
            .collect();
        line_plot(
            &series,
            &format!("{tag}: {steps}-STEP RMSE TO TEACHER-1024 (95% CI)").to_uppercase(),
            "DISTILLATION BUDGET (SAMPLES, LOG SCALE)",
            true,
            true,
            false,
            &out.join(format!("{tag}-k{steps}-rmse.png")),
        )?;
        let dser: Vec<Series> = uniq(
            sum.diffs
                .iter()
                .filter(|d| d.tag == tag && d.steps == steps)
                .map(|d| (d.a.clone(), d.b.clone())),
        )
        .into_iter()
        .map(|(a, b)| {
            (
                format!("{a} - {b}"),
                sum.diffs
                    .iter()
                    .filter(|d| d.tag == tag && d.steps == steps && d.a == a && d.b == b)
                    .map(|d| (d.budget as f64, d.rmse.0, d.rmse.1))
                    .collect(),
            )
        })
        .collect();
        line_plot(
            &dser,
            &format!("{tag}: PAIRED RMSE DIFFERENCE, <0 = TRACT BETTER").to_uppercase(),
            "DISTILLATION BUDGET (SAMPLES, LOG SCALE)",
            true,
            false,
            true,
            &out.join(format!("{tag}-k{steps}-diff.png")),
        )?;
        // final-phase loss curves: mean over seeds per method, x = fraction of the phase
        for b in uniq(cells.iter().map(|c| c.budget)) {
            let lser: Vec<Series> = methods
                .iter()
                .filter_map(|m| {
                    let rs: Vec<&RunRecord> = recs
                        .iter()
                        .filter(|r| {
                            r.tag == tag && r.steps == steps && r.budget == b && &r.method == m
                        })
                        .collect();
                    let n = rs.iter().map(|r| r.final_loss.len()).min()?;
                    if n == 0 {
                        return None;
                    }
                    let pts = (0..n)
                        .map(|i| {
                            let v: Vec<f64> = rs.iter().map(|r| r.final_loss[i]).collect();
                            (
                                (i as f64 + 0.5) / n as f64,
                                v.iter().sum::<f64>() / v.len() as f64,
                                0.0,
                            )
                        })
                        .collect();
                    Some((m.clone(), pts))
                })
                .collect();
            line_plot(
                &lser,
                &format!(
                    "{tag} {}: FINAL-PHASE LOSS (MEAN OVER SEEDS)",
                    budget_label(b)
                )
                .to_uppercase(),
                "FRACTION OF THE FINAL PHASE",
                false,
                true,
                false,
                &out.join(format!("{tag}-k{steps}-loss-{}.png", budget_label(b))),
            )?;
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_and_intervals() {
        assert_eq!(t975(7), 2.365);
        // the expansion continues the table smoothly and tends to the normal quantile
        assert!((t975(31) - 2.040).abs() < 0.002, "{}", t975(31));
        assert!((t975(60) - 2.000).abs() < 0.002, "{}", t975(60));
        assert!((t975(100_000) - 1.960).abs() < 0.001);
        // 8 values: mean 4.5, sd sqrt(6), half-width 2.365 * sqrt(6/8)
        let v: Vec<f64> = (1..=8).map(|x| x as f64).collect();
        let (m, h) = mean_ci(&v);
        assert!((m - 4.5).abs() < 1e-12);
        assert!((h - 2.365 * (6.0f64 / 8.0).sqrt()).abs() < 1e-9, "{h}");
        assert!(mean_ci(&[1.0]).1.is_infinite());
    }

    #[test]
    fn tick_labels_keep_small_values_visible() {
        assert_eq!(tick_label(0.119), "0.119");
        assert_eq!(tick_label(0.00021), "0.000210");
        assert_eq!(tick_label(0.021), "0.0210");
        assert_eq!(tick_label(12.5), "12.500");
        assert_eq!(tick_label(3.2e-6), "3.20e-6");
        assert_eq!(tick_label(0.0), "0.000");
    }

    #[test]
    fn loss_bins_and_plateau() {
        let v: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let b = bin_means(&v, 4);
        assert_eq!(b, vec![12.0, 37.0, 62.0, 87.0]);
        assert_eq!(bin_means(&v[..3], 50).len(), 3);
        assert_eq!(plateau_ratio(&vec![2.0; 40]), 1.0);
        // falling 1/x: the last quarter is well below the third
        let f: Vec<f64> = (1..=400).map(|i| 1.0 / i as f64).collect();
        assert!(plateau_ratio(&f) < 0.8);
    }

    #[test]
    fn methods_configure_their_recipes() {
        let data = Data::parse("toy:ring8").unwrap();
        let base = DistillConfig::new(&data, Param::Vp);
        let t = StudyMethod::parse("tract").unwrap();
        assert_eq!(
            t.configure(base.clone()).unwrap().recipe,
            Default::default()
        );
        assert_eq!(t.schedule(1), "1024,32,1");
        let sh = StudyMethod::parse("btd-sh").unwrap();
        let c = sh.configure(base.clone()).unwrap();
        assert_eq!(
            (c.method, c.mu_i, c.recipe.lr_anneal),
            (Method::Btd, Some(0.0), true)
        );
        assert_eq!(sh.schedule(2), "1024,2");
        let e = StudyMethod::parse("tract+eps=1e-3").unwrap();
        assert_eq!(e.configure(base.clone()).unwrap().ema_eps, 1e-3);
        let d = StudyMethod::parse("tract+flat+top=32+sum+clip=2.5+keep-adam").unwrap();
        let c = d.configure(base.clone()).unwrap();
        assert!(c.recipe.flat_weight && c.recipe.loss_sum && c.recipe.keep_adam);
        assert_eq!(c.recipe.final_t_weight, 32.0);
        assert_eq!(c.recipe.clip_x0_range, Some(2.5));
        assert_eq!(d.key(), "tract_flat_top_32_sum_clip_2.5_keep-adam");
        // the schedule tables: another schedule, and a budget per phase
        let t5 = StudyMethod::parse("tract+s=4096/256/16/1").unwrap();
        assert_eq!(t5.schedule(1), "4096,256,16,1");
        assert_eq!(t5.key(), "tract_s_4096_256_16_1");
        let mut b = base.clone();
        b.train_samples = 1000;
        b.schedule = t5.schedule(1);
        let c = t5.configure(b.clone()).unwrap();
        assert_eq!(
            (c.schedule.as_str(), c.train_samples),
            ("4096,256,16,1", 1000)
        );
        let t6 = StudyMethod::parse("btd+per-phase").unwrap();
        b.schedule = t6.schedule(1);
        let c = t6.configure(b).unwrap();
        // 1024 -> 1 by halving: 10 phases of 1000 samples each
        assert_eq!(c.train_samples, 10_000);
        assert_eq!(c.phase_split, Some(vec![1.0; 10]));
        for bad in [
            "trct",
            "tract+top=0",
            "tract+wat",
            "btd+clip=x",
            "tract+s=1/32",
            "tract+s=x",
        ] {
            assert!(StudyMethod::parse(bad).is_err(), "{bad}");
        }
    }

    fn rec(method: &str, seed: u64, rmse: f64) -> RunRecord {
        RunRecord {
            version: CACHE_VERSION,
            tag: "ring8-exact".into(),
            data: "toy:ring8".into(),
            teacher: TeacherKind::Exact,
            method: method.into(),
            schedule: String::new(),
            steps: 1,
            budget: 1000,
            seed,
            n_eval: 10,
            rmse,
            rmse_exact: rmse,
            sw2: rmse,
            seconds: 0.0,
            final_steps: 1,
            final_loss: vec![1.0, 0.5],
            plateau: 1.0,
            rmse_32: None,
        }
    }

    #[test]
    fn paired_differences_use_matching_seeds() {
        // BTD is worse by exactly 0.1 on every seed, while the seeds themselves vary a lot:
        // the paired difference is -0.1 with a zero-width interval
        let mut recs = vec![];
        for s in 0..8u64 {
            let base = 0.1 + 0.05 * s as f64;
            recs.push(rec("tract", s, base));
            recs.push(rec("btd", s, base + 0.1));
        }
        recs.push(rec("btd", 99, 5.0)); // unpaired: ignored by the difference
        let sum = summarize(&recs, vec![]);
        let d = &sum.diffs[0];
        assert_eq!((d.a.as_str(), d.b.as_str(), d.n), ("tract", "btd", 8));
        assert!(
            (d.rmse.0 + 0.1).abs() < 1e-12 && d.rmse.1 < 1e-9,
            "{:?}",
            d.rmse
        );
        assert_eq!(verdict(d.rmse, "tract", "btd"), "**tract better**");
        assert_eq!(verdict((0.01, 0.02), "a", "b"), "tie (CI spans 0)");
        assert_eq!(verdict((0.05, 0.02), "a", "b"), "**b better**");
        assert_eq!(sum.cells.len(), 2);
        // a variant is compared with its base method too
        let mut more = recs.clone();
        for s in 0..8u64 {
            more.push(rec("tract+flat", s, 0.05 + 0.05 * s as f64));
        }
        let sum = summarize(&more, vec![]);
        let v = sum
            .diffs
            .iter()
            .find(|d| d.a == "tract+flat" && d.b == "tract")
            .unwrap();
        assert!((v.rmse.0 + 0.05).abs() < 1e-12);
        assert!(sum.markdown().contains("tract - btd"));
    }

    /// A whole (tiny) study: runs, caches, a rerun does nothing, outputs exist; the
    /// learned-teacher path trains a teacher and starts the students from it.
    fn md_has_stage_column(out: &Path) -> bool {
        let md = std::fs::read_to_string(out.join("tables.md")).unwrap();
        md.contains("| 32-step stage |")
    }

    #[test]
    fn tiny_study_runs_caches_and_resumes() {
        let dev = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StudyConfig {
            data: "toy:ring8".into(),
            teacher: TeacherKind::Exact,
            methods: vec![
                StudyMethod::parse("tract").unwrap(),
                StudyMethod::parse("btd-sh").unwrap(),
            ],
            budgets: vec![2048],
            seeds: vec![0, 1],
            steps: vec![1],
            n_eval: 64,
            fit_samples: 1024,
            teacher_samples: 1024,
            batch: 64,
            out: dir.path().join("out"),
            work: dir.path().join("work"),
            shard: (0, 1),
        };
        let mut log = |_: &str| {};
        assert_eq!(run(&cfg, &dev, &mut log).unwrap(), 4);
        assert_eq!(
            run(&cfg, &dev, &mut log).unwrap(),
            0,
            "a rerun skips cached runs"
        );
        let (recs, bases) = load_cache(&cfg.out);
        assert_eq!((recs.len(), bases.len()), (4, 1));
        for r in &recs {
            assert!(r.rmse.is_finite() && r.rmse == r.rmse_exact);
            // BTD 1024,1: 10 phases; the last gets 2048 / 10 samples -> 4 steps at batch 64
            let want = if r.method == "tract" { 27 } else { 4 };
            assert_eq!(r.final_steps, want, "{}", r.method);
            assert_eq!(r.final_loss.len(), want as usize);
            // both schedules pass through 32 steps (TRACT's first phase, BTD's 64 -> 32)
            assert!(r.rmse_32.is_some_and(|v| v.is_finite() && v > 0.0), "{r:?}");
        }
        assert!(md_has_stage_column(&cfg.out));
        // the same seed's start network is shared: the fit of seed 0 exists once
        assert!(
            cfg.work
                .join("ring8-exact/fit-seed0-1024.safetensors")
                .exists()
        );
        for f in [
            "tables.md",
            "study.json",
            "ring8-exact-k1-rmse.png",
            "ring8-exact-k1-diff.png",
        ] {
            assert!(cfg.out.join(f).exists(), "{f}");
        }
        let md = std::fs::read_to_string(cfg.out.join("tables.md")).unwrap();
        assert!(md.contains("tract - btd-sh"), "{md}");
        // extending the seeds runs only the new ones
        cfg.seeds = vec![0, 1, 2];
        assert_eq!(run(&cfg, &dev, &mut log).unwrap(), 2);
        // the learned teacher
        cfg.teacher = TeacherKind::Learned;
        cfg.seeds = vec![0];
        cfg.methods = vec![StudyMethod::parse("tract").unwrap()];
        assert_eq!(run(&cfg, &dev, &mut log).unwrap(), 1);
        assert!(cfg.out.join("teachers/ring8-mlp.safetensors").exists());
        let (recs, _) = load_cache(&cfg.out);
        let r = recs.iter().find(|r| r.tag == "ring8-learned").unwrap();
        assert!(r.rmse != r.rmse_exact);
    }

    #[test]
    fn jobs_are_sharded_and_cached_records_skip() {
        let cfg = StudyConfig {
            data: "toy:ring8".into(),
            teacher: TeacherKind::Exact,
            methods: vec![
                StudyMethod::parse("tract").unwrap(),
                StudyMethod::parse("btd").unwrap(),
            ],
            budgets: vec![2000, 1000],
            seeds: vec![0, 1],
            steps: vec![1],
            n_eval: 10,
            fit_samples: 1,
            teacher_samples: 1,
            batch: 8,
            out: PathBuf::new(),
            work: PathBuf::new(),
            shard: (0, 1),
        };
        let j = jobs(&cfg);
        assert_eq!(j.len(), 8);
        // cheapest budget first, a seed's methods together
        assert_eq!((j[0].budget, j[0].seed, j[1].seed), (1000, 0, 0));
        assert_eq!(j[0].file_name(), "tract-k1-1000-s0.json");
        let dir = tempfile::tempdir().unwrap();
        let r = rec("tract", 0, 0.3);
        std::fs::write(
            dir.path().join(j[0].file_name()),
            serde_json::to_string(&r).unwrap(),
        )
        .unwrap();
        assert!(cached(dir.path(), &j[0], 10));
        assert!(
            !cached(dir.path(), &j[0], 20),
            "another n_eval is not the same run"
        );
        assert!(!cached(dir.path(), &j[1], 10));
        assert_eq!(tag("toy:ring8", TeacherKind::Learned), "ring8-learned");
    }
}
