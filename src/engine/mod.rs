//! The engine: the paper's math, the models, training and sampling, and their files.
//! No egui, no printing, no front-end types; its only file I/O is checkpoints and model
//! files, the data sets it reads and a run's directory (state, loss log). Everything above
//! (jobs, front ends) calls in here; nothing here calls up (tests/layers.rs checks it).

pub mod checkpoint;
pub mod collective;
pub mod data;
pub mod device;
pub mod diffusion;
pub mod distill;
pub mod error;
pub mod eval;
pub mod kernels;
pub mod model;
pub mod optim;
pub mod pipeline;
pub mod rng;
pub mod schedule;
pub mod tensors;
