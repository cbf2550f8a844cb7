//! The command line: `tract-studio <command> ...` for scripts and long runs, one file per
//! group of commands; without a command the desktop app opens. Each command parses its
//! flags, calls a job or the engine, and prints what came back.

mod app;
mod bench;
mod choices;
pub mod docs;
mod eval;
mod experiments;
pub mod flags;
mod info;
#[cfg(feature = "mpi")]
mod mpi;
mod progress;
mod sample;
mod study;
mod train;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};

use crate::engine::collective::Collective;
use crate::engine::device;
use app::AppArgs;
use bench::BenchArgs;
use choices::DeviceArg;
use eval::{ClassifierArgs, EvalArgs};
use experiments::{DemoArgs, ReportArgs};
use sample::{GalleryArgs, SampleArgs};
use train::{DistillArgs, TeacherArgs};

/// Whole numbers in a range, as clap checks them (the message names the flag and the range).
pub(super) fn count(lo: u64, hi: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(lo..=hi)
}

/// The largest batch, sample count and sampling output the command line takes.
pub(super) const MAX_BATCH: u64 = crate::engine::distill::MAX_BATCH as u64;
pub(super) const MAX_N: u64 = 10_000_000;
pub(super) const MAX_STEPS: u64 = crate::engine::schedule::MAX_STEPS as u64;
/// At most this many f32 values in one `sample` output (1 GiB).
pub(super) const MAX_SAMPLE_VALUES: usize = 1 << 28;

#[derive(Parser)]
#[command(
    name = "tract-studio",
    version,
    about = "TRACT: distill diffusion models to 1 or 2 sampling steps, and see the difference",
    after_help = examples(&[
        ("the main job on a toy mixture (about 2 minutes on 2 cores)", "tract-studio demo"),
        ("the shipped models and what each is", "tract-studio list"),
    ])
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

/// A command's `after_help`: "Examples:", then per example a comment saying what it does and
/// the command line. docs/cli.md shows the same (it is rendered from the help), and
/// tests/cli.rs parses every example with the command line's own parser.
pub(super) fn examples(list: &[(&str, &str)]) -> String {
    let mut s = String::from("Examples:\n");
    for (what, cmd) in list {
        s.push_str(&format!("  # {what}\n  {cmd}\n"));
    }
    s
}

#[derive(Subcommand)]
enum Cmd {
    /// Distill a teacher with TRACT or BTD (resumable).
    Distill(DistillArgs),
    /// Sample from a model (or exact:DATA) at K steps from seeded noise.
    Sample(SampleArgs),
    /// Print metrics of a samples file as one JSON line.
    Eval(EvalArgs),
    /// The main job on an embedded default: TRACT vs BTD on toy:ring8.
    Demo(DemoArgs),
    /// Distillation throughput on the CPU backend and on wgpu, measured in one run.
    Bench(BenchArgs),
    /// Open the desktop app (the default without a subcommand).
    App(AppArgs),
    /// Train a teacher on data (images: a UNet), resumable, with sample grids as it goes.
    Teacher(TeacherArgs),
    /// One picture: a row per (model, steps), a column per noise seed, the same noise in every row.
    Gallery(GalleryArgs),
    /// A model file with its weights stored as f16 (half the bytes) or f32.
    Convert(sample::ConvertArgs),
    /// Write a model as a diffusers DDIMPipeline folder (diffusers:DIR teachers and their students).
    Export(sample::ExportArgs),
    /// Train the small CNN whose features `eval` uses for a classifier-feature FID on images.
    Classifier(ClassifierArgs),
    /// The paper's ablations in small on a 2-D mixture (several seeds): tables and plots.
    Report(ReportArgs),
    /// When does TRACT beat BTD? Paired-seed budget sweeps, cached and resumable.
    Study(study::StudyArgs),
    /// What a model file is: kind, data, schedule, steps, network, parameters, dtype, checksum, budget.
    Inspect(info::InspectArgs),
    /// The shipped models (asset:NAME) and what each is.
    List(info::ListArgs),
    /// A shell completion script on stdout (bash, zsh, fish, elvish, powershell).
    Completions(info::CompletionsArgs),
}

/// The command line as clap sees it (for docs/cli.md and the completion scripts).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parse a command line without running it: `Err` with clap's message when clap refuses it
/// (docs/cli.md's examples are checked with this).
pub fn parses<I: IntoIterator<Item = T>, T: Into<std::ffi::OsString> + Clone>(
    args: I,
) -> Result<(), String> {
    Cli::try_parse_from(args)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn pick_device(d: DeviceArg) -> anyhow::Result<device::Picked> {
    pick_device_said(d, true)
}

/// `pick_device`, saying which device only when `say` (data-parallel: rank 0).
fn pick_device_said(d: DeviceArg, say: bool) -> anyhow::Result<device::Picked> {
    let p = device::pick(d.into())?;
    if say {
        eprintln!("device: {}", p.label);
    }
    Ok(p)
}

/// The processes of a training command: None in one process, else the collective of
/// `mpirun -np N` (the `mpi` feature).
pub(super) type Ranks = Option<Arc<dyn Collective>>;

/// An error every rank of a data-parallel job has at the same point (said once, by rank 0).
#[derive(Debug)]
pub(super) struct Agreed(pub(super) String);

impl std::fmt::Display for Agreed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Agreed {}

/// Run a training command in one process, or as one rank of an MPI job when an MPI
/// launcher started this one (built with the `mpi` feature).
fn with_ranks(f: impl FnOnce(Ranks) -> anyhow::Result<()>) -> anyhow::Result<()> {
    #[cfg(feature = "mpi")]
    if let Some(world) = mpi::start()? {
        return world.run(f);
    }
    f(None)
}

/// The run folder a failing data-parallel job names in its last message.
pub(super) fn note_run_dir(ranks: &Ranks, dir: &std::path::Path) {
    #[cfg(feature = "mpi")]
    if let Some(c) = ranks {
        mpi::set_run_dir(dir, c.rank(), c.size());
    }
    #[cfg(not(feature = "mpi"))]
    let _ = (ranks, dir);
}

/// The binary's `main`.
pub fn main() -> ExitCode {
    crate::engine::kernels::cpu::keep_freed_memory();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Some(Cmd::Distill(a)) => with_ranks(|r| train::distill(a, r)),
        Some(Cmd::Sample(a)) => sample::sample(a),
        Some(Cmd::Eval(a)) => eval::eval_cmd(a),
        Some(Cmd::Demo(a)) => experiments::demo_cmd(a),
        Some(Cmd::Bench(a)) => with_ranks(|r| bench::bench(a, r)),
        Some(Cmd::App(a)) => app::app(a),
        Some(Cmd::Teacher(a)) => with_ranks(|r| train::teacher(a, r)),
        Some(Cmd::Gallery(a)) => sample::gallery_cmd(a),
        Some(Cmd::Convert(a)) => sample::convert_cmd(a),
        Some(Cmd::Export(a)) => sample::export_cmd(a),
        Some(Cmd::Classifier(a)) => eval::classifier_cmd(a),
        Some(Cmd::Report(a)) => experiments::report_cmd(a),
        Some(Cmd::Study(a)) => study::study_cmd(a),
        Some(Cmd::Inspect(a)) => info::inspect_cmd(a),
        Some(Cmd::List(a)) => info::list_cmd(a),
        Some(Cmd::Completions(a)) => info::completions_cmd(a),
        None => app::app(AppArgs {
            device: DeviceArg::Auto,
            runs: "studio-runs".into(),
            ..Default::default()
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
