//! tract-studio: TRACT (transitive closure time-distillation) for diffusion models.
//!
//! Data flows one way: data -> noise schedule -> teacher -> distill phase(s) ->
//! checkpoint -> sampler -> metrics / pictures. Front ends (CLI, app) only call in here.

pub mod assets;
pub mod checkpoint;
pub mod data;
pub mod demo;
pub mod device;
pub mod diffusion;
pub mod distill;
pub mod error;
pub mod eval;
pub mod generate;
pub mod kernels;
pub mod model;
pub mod plot;
pub mod rng;
pub mod schedule;
pub mod studio;
pub mod tensors;
pub mod bench;
#[cfg(feature = "gui")]
pub mod app;
#[cfg(all(target_arch = "wasm32", feature = "gui"))]
pub mod web;

pub use error::{Error, Result};
