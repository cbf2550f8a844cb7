//! tract-studio: TRACT (transitive closure time-distillation) for diffusion models.
//!
//! Data flows one way: data -> noise schedule -> teacher -> distill phase(s) ->
//! checkpoint -> sampler -> metrics / pictures. Front ends (CLI, app) only call in here.

#[cfg(feature = "gui")]
pub mod app;
pub mod assets;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod demo;
pub mod device;
pub mod diffusion;
pub mod distill;
pub mod error;
pub mod eval;
#[cfg(not(target_arch = "wasm32"))]
pub mod flags;
pub mod gallery;
pub mod generate;
pub mod kernels;
pub mod model;
pub mod plot;
pub mod report;
pub mod rng;
pub mod schedule;
pub mod studio;
#[cfg(not(target_arch = "wasm32"))]
pub mod study;
pub mod tensors;
#[cfg(all(target_arch = "wasm32", feature = "gui"))]
pub mod web;

pub use error::{Error, Result};
