//! What a run tells a front end, and how a front end answers (stop or go on).

use std::path::PathBuf;

/// What the loop tells a front end.
#[derive(Clone, Debug)]
pub enum Event {
    PhaseStart {
        index: usize,
        count: usize,
        name: String,
        steps: u64,
    },
    Step {
        phase: usize,
        step: u64,
        steps: u64,
        samples_done: u64,
        samples_total: u64,
        loss: f32,
        /// The processes of a data-parallel run (1: one process).
        ranks: usize,
        /// Seconds of this step in all, and of them in the gradient all-reduce (with its
        /// device -> host -> device copies; 0 in one process).
        step_s: f64,
        allreduce_s: f64,
    },
    Checkpoint {
        path: PathBuf,
        global_step: u64,
    },
    PhaseEnd {
        index: usize,
        path: PathBuf,
    },
    /// Samples of the current inference-EMA student from the preview noise, at `steps` steps.
    Preview {
        phase: usize,
        step: u64,
        steps: usize,
        samples: Vec<f32>,
    },
}

/// Live samples during training: every `every` steps, from fixed noise [n, dim].
#[derive(Clone, Debug)]
pub struct PreviewSpec {
    pub every: u64,
    pub noise: Vec<f32>,
}

/// A front end: receives events; returning false asks the loop to stop (after a checkpoint).
pub trait Observer {
    fn event(&mut self, e: &Event) -> bool;
    /// Steps between loss reads (and so between `Step` events and chances to stop) that this
    /// front end accepts; the run reads at least every [`super::LOSS_READ_EVERY`] steps. An
    /// interactive front end (the app) asks for 1: every step shown, a stop at the next step.
    fn loss_every(&self) -> u64 {
        u64::MAX
    }
}

impl<F: FnMut(&Event) -> bool> Observer for F {
    fn event(&mut self, e: &Event) -> bool {
        self(e)
    }
}

/// How a run ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Finished { student: PathBuf },
    Stopped { global_step: u64 },
}
