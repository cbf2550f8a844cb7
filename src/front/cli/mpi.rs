//! `mpirun -np N tract-studio distill|teacher|bench ...` (the `mpi` feature): the process
//! side of data-parallel training over the system's MPI (rsmpi). It starts MPI when the
//! process was launched by an MPI launcher (mpirun, srun), hands the engine a
//! [`Collective`] (one all-reduce per step: engine/collective.rs), and makes a job end
//! cleanly when a rank fails:
//!
//! - an error the ranks agree on (bad options, a batch that does not split, divergence)
//!   is printed once, by rank 0, and every rank then exits with status 1;
//! - any other error on a rank is printed with its rank, then MPI_Abort ends every rank;
//! - a rank that dies (kill -9, out of memory) makes mpirun end the others with SIGTERM;
//!   rank 0 then says what happened and where the intact checkpoint is (the files are
//!   written atomically, so a kill never leaves a half-written one);
//! - a rank that waits longer than `TRACT_MPI_TIMEOUT` seconds (default 300) in an
//!   all-reduce (another rank hangs) says so and exits, which makes mpirun end the job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::Agreed;
use crate::engine::collective::Collective;

/// Whether an MPI launcher started this process: Open MPI's mpirun, PMI / PMIx (srun,
/// MPICH's Hydra). `TRACT_MPI=1` starts MPI anyway, `TRACT_MPI=0` never.
fn launched() -> bool {
    match std::env::var("TRACT_MPI").as_deref() {
        Ok("1") => return true,
        Ok("0") => return false,
        _ => {}
    }
    ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// The MPI world of this process, alive until dropped (MPI_Finalize).
pub(super) struct World {
    comm: Arc<Mpi>,
    // dropped last: MPI_Finalize
    _universe: mpi::environment::Universe,
}

/// The [`Collective`] over MPI_COMM_WORLD.
pub(super) struct Mpi {
    rank: usize,
    size: usize,
    /// This rank among the ranks on its machine (MPI_Comm_split_type SHARED), and their count.
    local: (usize, usize),
    /// When this rank entered the collective call it is in (ms since `epoch`), 0 outside.
    entered_ms: AtomicU64,
    epoch: Instant,
}

/// What rank 0 says when mpirun ends it (SIGTERM): set once the run's folder is known.
static TERM_NOTE: OnceLock<Vec<u8>> = OnceLock::new();
/// What the watchdog says when it gives up waiting.
static RUN_DIR: OnceLock<String> = OnceLock::new();

extern "C" fn on_sigterm(_: libc::c_int) {
    if let Some(m) = TERM_NOTE.get() {
        // SAFETY: write(2) and _exit(2) are async-signal-safe; the note is a static buffer
        unsafe {
            libc::write(2, m.as_ptr().cast(), m.len());
        }
    }
    // SAFETY: as above
    unsafe { libc::_exit(143) }
}

/// Start MPI when launched by an MPI launcher; None otherwise (one process, no MPI).
pub(super) fn start() -> anyhow::Result<Option<World>> {
    if !launched() {
        return Ok(None);
    }
    let Some(universe) = mpi::initialize() else {
        anyhow::bail!("MPI was already initialised in this process");
    };
    let world = universe.world();
    let node = world.split_shared(world.rank());
    let local = (node.rank() as usize, node.size() as usize);
    share_cores(local.1);
    let comm = Arc::new(Mpi {
        rank: world.rank() as usize,
        size: world.size() as usize,
        local,
        entered_ms: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    watchdog(comm.clone());
    Ok(Some(World {
        comm,
        _universe: universe,
    }))
}

/// Ranks on one machine share its cores: each runs `cores / ranks` CPU threads, unless
/// `RAYON_NUM_THREADS` says how many.
fn share_cores(local_size: usize) {
    if local_size <= 1 || std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads((cores / local_size).max(1))
        .build_global();
}

/// Seconds a rank waits in one collective call before it gives up (`TRACT_MPI_TIMEOUT`).
fn timeout_s() -> u64 {
    std::env::var("TRACT_MPI_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(300)
}

/// A thread that ends this rank when it has waited in a collective call for longer than
/// the timeout: mpirun then ends every rank (no job hangs on a rank that hangs).
fn watchdog(comm: Arc<Mpi>) {
    let limit = timeout_s();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let since = comm.entered_ms.load(Ordering::Relaxed);
            if since == 0 {
                continue;
            }
            let now = comm.epoch.elapsed().as_millis() as u64;
            if now.saturating_sub(since) > limit * 1000 {
                let dir = RUN_DIR
                    .get()
                    .map(String::as_str)
                    .unwrap_or("the run folder");
                eprintln!(
                    "tract-studio rank {} of {}: no answer from the other ranks for {limit} s (TRACT_MPI_TIMEOUT): one died or hangs; ending the job. The last checkpoint in {dir} is intact: continue with --resume (any number of ranks).",
                    comm.rank, comm.size
                );
                std::process::exit(3);
            }
        }
    });
}

impl Mpi {
    fn timed<T>(&self, f: impl FnOnce(&SimpleCommunicator) -> T) -> T {
        let ms = (self.epoch.elapsed().as_millis() as u64).max(1);
        self.entered_ms.store(ms, Ordering::Relaxed);
        let r = f(&SimpleCommunicator::world());
        self.entered_ms.store(0, Ordering::Relaxed);
        r
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn local(&self) -> (usize, usize) {
        self.local
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> crate::Result<()> {
        let send = buf.to_vec();
        self.timed(|w| w.all_reduce_into(&send[..], buf, SystemOperation::sum()));
        Ok(())
    }
    fn all_gather_text(&self, value: &str) -> crate::Result<Vec<String>> {
        let len = value.len() as u64;
        let mut lens = vec![0u64; self.size];
        self.timed(|w| w.all_gather_into(&len, &mut lens[..]));
        let max = lens.iter().copied().max().unwrap_or(0) as usize;
        let mut mine = value.as_bytes().to_vec();
        mine.resize(max, 0);
        let mut all = vec![0u8; max * self.size];
        if max > 0 {
            self.timed(|w| w.all_gather_into(&mine[..], &mut all[..]));
        }
        Ok(lens
            .iter()
            .enumerate()
            .map(|(r, &l)| String::from_utf8_lossy(&all[r * max..r * max + l as usize]).into())
            .collect())
    }
}

impl World {
    /// Run a training command as this rank: `f` gets the collective; errors end the job as
    /// the module's documentation says.
    pub(super) fn run(
        self,
        f: impl FnOnce(Option<Arc<dyn Collective>>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let (rank, size) = (self.comm.rank, self.comm.size);
        // SAFETY: installs a handler that only calls async-signal-safe functions
        unsafe {
            libc::signal(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t);
        }
        let r = f(Some(self.comm.clone()));
        let Err(e) = r else { return Ok(()) };
        if size == 1 {
            return Err(e);
        }
        let agreed = e.downcast_ref::<Agreed>().is_some()
            || matches!(
                e.downcast_ref::<crate::Error>(),
                Some(crate::Error::Diverged(_))
            );
        if agreed {
            // every rank has this error at the same point: rank 0 says it, then all exit
            // together (mpirun ends the job at the first rank that exits with an error, so a
            // rank leaving early could end rank 0 before it has said why)
            if rank == 0 {
                eprintln!("error: {e:#}");
            }
            SimpleCommunicator::world().barrier();
            drop(self);
            std::process::exit(1);
        }
        let dir = RUN_DIR
            .get()
            .map(String::as_str)
            .unwrap_or("the run folder");
        eprintln!(
            "error (rank {rank} of {size}): {e:#}\ntract-studio: ending all {size} ranks (MPI_Abort); the last checkpoint in {dir} is intact: continue with --resume"
        );
        SimpleCommunicator::world().abort(1)
    }
}

/// The run's folder, for the messages a failing job ends with (rank 0 writes the note that
/// mpirun's SIGTERM prints).
pub(super) fn set_run_dir(dir: &std::path::Path, rank: usize, size: usize) {
    let dir = dir.display().to_string();
    if rank == 0 {
        let note = format!(
            "tract-studio (rank 0 of {size}): stopped by mpirun (another rank ended, or the job was interrupted); the last checkpoint in {dir} is intact: continue with --resume, with any number of ranks\n"
        );
        let _ = TERM_NOTE.set(note.into_bytes());
    }
    let _ = RUN_DIR.set(dir);
}
