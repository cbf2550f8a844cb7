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

mod cache;
mod config;
mod plots;
mod run;
mod stats;
mod tables;
#[cfg(test)]
mod tests;

pub use cache::{Baseline, RunRecord, load_cache};
pub use config::{
    CACHE_VERSION, EVAL_NOISE_SEED, Job, LOSS_BINS, StudyConfig, StudyMethod, TeacherKind, jobs,
    tag,
};
pub use plots::write_outputs;
pub use run::{Prepared, prepare, run};
pub use stats::{Cell, Diff, Summary, bin_means, mean_ci, plateau_ratio, summarize, t975};
