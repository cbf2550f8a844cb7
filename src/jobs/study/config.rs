//! What a study runs: its methods (with their recipes and switches), its configuration, the
//! cache tag of a data set and teacher, and the jobs of the sweep.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::data::Data;
use crate::engine::distill::{DistillConfig, Method};
use crate::engine::error::{Error, Result};
use crate::engine::schedule::Param;

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
