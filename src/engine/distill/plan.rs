//! The plan of a run: the schedule string ("1024,32,1") as phases, and the sample budget
//! split between them (docs/algorithm.md, "One TRACT step": the paper gives 1/6 to
//! 1024 -> 32 and 5/6 to 32 -> 1), each phase's optimizer steps from the batch.

use super::{DistillConfig, Method};
use crate::engine::schedule::Schedule;
use crate::{Error, Result};

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
            // BTD's binary phases; a first phase that is not binary (1000 -> 8) is TRACT's
            Method::Btd if from == 2 * to => PhaseKind::Btd { from, to },
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
