//! The jobs: whole pieces of work built on the engine, each a function a front end calls
//! (and the session that runs them in the background for the interactive ones). They may
//! write pictures and results, but know nothing of clap, egui or the browser page.

pub mod assets;
pub mod bench;
pub mod demo;
pub mod gallery;
pub mod generate;
#[cfg(not(target_arch = "wasm32"))]
pub mod inspect;
pub mod plot;
pub mod report;
pub mod studio;
#[cfg(not(target_arch = "wasm32"))]
pub mod study;
