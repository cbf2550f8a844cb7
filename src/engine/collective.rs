//! Data-parallel training across processes: the one seam a training step needs. A run holds
//! a [`Collective`]; in one process it is [`Single`] (nothing exchanged). A front end built
//! with the `mpi` feature hands in one over MPI (`mpirun -np N tract-studio distill ...`).
//!
//! How a step is split (docs/algorithm.md's step, unchanged in one process): every rank
//! draws the whole global batch's random numbers (data, noise, noise levels) from the same
//! RNG stream, in the same order as one process does, and keeps its rows
//! [`Collective::rows`]; the loss is a mean over the rank's rows, so the mean of the ranks'
//! gradients is the global batch's gradient. That mean is ONE all-reduce (a sum, then 1/N)
//! on the flat gradient vector, with the step's loss appended as one more element; every
//! rank then applies the same Adam step and EMAs, so the weights, the optimizer and the RNG
//! stay identical on every rank and a checkpoint does not depend on the rank count.

use std::ops::Range;

use crate::Result;

/// The processes of a data-parallel run, as a training step sees them.
pub trait Collective: Send + Sync {
    /// This process's index, 0 ..= size - 1; rank 0 alone writes files and reports.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Sum `buf` elementwise over every rank, in place; every rank gets the same sum.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// Every rank's `value` (e.g. its options as JSON), in rank order.
    fn all_gather_text(&self, value: &str) -> Result<Vec<String>>;
    /// This process's index among the ranks on its machine, and their number (a rank picks
    /// its GPU by it); every rank on its own machine unless the launcher says otherwise.
    fn local(&self) -> (usize, usize) {
        (0, 1)
    }

    /// The rows of a global batch of `batch` this rank keeps (the batch divides evenly:
    /// [`check_batch`]).
    fn rows(&self, batch: usize) -> Range<usize> {
        let n = batch / self.size().max(1);
        self.rank() * n..(self.rank() + 1) * n
    }
}

/// One process: nothing to exchange.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_gather_text(&self, value: &str) -> Result<Vec<String>> {
        Ok(vec![value.to_string()])
    }
}

/// A global batch must split evenly over the ranks (each rank's mean then weighs the same).
pub fn check_batch(batch: usize, ranks: usize) -> Result<()> {
    if ranks > 1 && !batch.is_multiple_of(ranks) {
        let lo = batch / ranks * ranks;
        let hi = lo + ranks;
        return Err(crate::Error::input(format!(
            "--batch {batch} (the global batch) does not split evenly over {ranks} ranks; expected a multiple of {ranks}, e.g. {} or {hi}",
            lo.max(ranks)
        )));
    }
    Ok(())
}

/// Every rank must run with the same options: `value` is this rank's (e.g. its run's
/// config as JSON). An error names the first rank that differs from rank 0 and both values,
/// down to the first field (line) that differs; every rank gets the same answer.
pub fn check_agree(c: &dyn Collective, what: &str, value: &str) -> Result<()> {
    let all = c.all_gather_text(value)?;
    let Some((r, other)) = all.iter().enumerate().skip(1).find(|(_, v)| **v != all[0]) else {
        return Ok(());
    };
    let first = &all[0];
    // the first line that differs (pretty JSON: one field a line)
    let (a, b) = first
        .lines()
        .zip(other.lines())
        .find(|(a, b)| a != b)
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .unwrap_or_else(|| (first.clone(), other.clone()));
    Err(crate::Error::input(format!(
        "the ranks disagree on {what}: rank 0 has {a}, rank {r} has {b}; every rank must be started with the same command line and files"
    )))
}

/// What a run spent on the all-reduce, for the progress line and `bench`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SyncTime {
    /// Seconds in the last step's all-reduce, with its device -> host -> device copies.
    pub allreduce_s: f64,
    /// Bytes this rank sent into the all-reduce (the gradient and the loss, f32).
    pub bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(usize, usize, Vec<String>);
    impl Collective for Fake {
        fn rank(&self) -> usize {
            self.0
        }
        fn size(&self) -> usize {
            self.1
        }
        fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<()> {
            Ok(())
        }
        fn all_gather_text(&self, _v: &str) -> Result<Vec<String>> {
            Ok(self.2.clone())
        }
    }

    #[test]
    fn rows_batches_and_agreement() {
        assert_eq!(Single.rows(64), 0..64);
        assert_eq!(Fake(1, 4, vec![]).rows(64), 16..32);
        assert!(check_batch(64, 4).is_ok() && check_batch(63, 1).is_ok());
        let e = check_batch(63, 2).unwrap_err().to_string();
        assert!(e.contains("--batch 63") && e.contains("2 ranks"), "{e}");
        let same = Fake(0, 2, vec!["{\n \"seed\": 1\n}".into(); 2]);
        assert!(check_agree(&same, "options", "").is_ok());
        let differ = Fake(
            0,
            3,
            vec![
                "{\n \"seed\": 1\n}".into(),
                "{\n \"seed\": 1\n}".into(),
                "{\n \"seed\": 2\n}".into(),
            ],
        );
        let e = check_agree(&differ, "options", "").unwrap_err().to_string();
        assert!(
            e.contains("rank 0 has \"seed\": 1") && e.contains("rank 2 has \"seed\": 2"),
            "{e}"
        );
    }
}
