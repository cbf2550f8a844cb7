//! The front ends, all thin: the command line (`cli`, one file per command group), the
//! desktop app (`app`, egui) and the browser entry (`web`, the same app in WebAssembly).
//! They turn flags and clicks into calls to the jobs and render what comes back.

#[cfg(feature = "gui")]
pub mod app;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
#[cfg(all(target_arch = "wasm32", feature = "gui"))]
pub mod web;
