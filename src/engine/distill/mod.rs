//! Distillation: TRACT phases (Algorithms 1 and 2), the BTD baseline, teacher training and
//! the short fit of a student network to the exact teacher. One loop runs them all, sends
//! events to any front end, checkpoints the full state atomically, and resumes bit-for-bit.
//!
//! - `config`: what defines a run (saved in every checkpoint), with the paper's defaults;
//! - `plan`: the schedule string as phases and the sample budget split between them;
//! - `step`: one optimizer step, Algorithm 1 / 2 as docs/algorithm.md, "One TRACT step",
//!   writes it, its target a pure function (`tract_target`);
//! - `run`: the loop over the phases (events, checkpoints, previews, resume, divergence);
//! - `state`: the training state's file and the loss log;
//! - `events`: what the loop tells a front end.

mod config;
mod events;
mod plan;
pub mod recipe;
mod run;
mod state;
mod step;

pub use crate::engine::optim::{Adam, AdamConfig, ema_update, ema_weight, inference_mu};
pub use config::{DistillConfig, Method, RankSpan, default_schedule};
pub use events::{Event, Observer, Outcome, PreviewSpec};
pub use plan::{MAX_BATCH, Phase, PhaseKind, plan};
pub use recipe::Recipe;
pub use run::{LOSS_READ_EVERY, ModelLoader, Run};
use state::RunState;
pub use state::{LOSS_FILE, STATE_FILE, STUDENT_FILE, TEACHER_FILE};
pub use step::{Levels, Target, TargetRule, Teachers, loss_weight, teacher_solver, tract_target};
