//! tract-studio: TRACT (transitive closure time-distillation) for diffusion models.
//!
//! Three layers, each a folder; imports only go down (front ends -> jobs -> engine), and no
//! module imports itself back through others (tests/layers.rs checks both; ARCHITECTURE.md
//! draws the picture):
//! - [`engine`]: schedules, step functions, models, kernels, distillation, metrics,
//!   checkpoints. Data flows one way: data -> noise schedule -> teacher -> distill phase(s)
//!   -> checkpoint -> sampler -> metrics.
//! - [`jobs`]: sampling from any model, the demo, the report, the gallery, the benchmarks,
//!   and the session that runs jobs in the background for the app.
//! - [`front`]: the command line, the desktop app and the browser entry.

pub mod engine;
pub mod front;
pub mod jobs;

// The front door: short paths for the binary, the tests and other crates
// (`tract_studio::schedule::Grid`). Inside src/ imports name their layer instead
// (`crate::engine::schedule::Grid`), so every `use` line shows where it reaches.
pub use engine::error::{Error, Result};
pub use engine::{
    checkpoint, collective, data, device, diffusion, distill, error, eval, kernels, model, optim,
    pipeline, rng, schedule, tensors,
};
#[cfg(feature = "gui")]
pub use front::app;
#[cfg(not(target_arch = "wasm32"))]
pub use front::cli::flags;
#[cfg(not(target_arch = "wasm32"))]
pub use jobs::study;
pub use jobs::{assets, bench, demo, gallery, generate, plot, report, studio};
