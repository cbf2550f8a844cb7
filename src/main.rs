//! The `tract-studio` binary: a thin command line over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use tract_studio::device::{self, Choice};
use tract_studio::diffusion::Solver;
use tract_studio::distill::{DistillConfig, Event, Method, Observer, Outcome, Run};
use tract_studio::generate::{Model, noise, read_samples, write_samples};
use tract_studio::schedule::Param;
use tract_studio::{data::Data, demo, eval, plot};

use tract_studio::flags::{momentum, open_unit, positive_f64};

/// Whole numbers in a range, as clap checks them (the message names the flag and the range).
fn count(lo: u64, hi: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(lo..=hi)
}

/// The largest batch, sample count and sampling output the command line takes.
const MAX_BATCH: u64 = tract_studio::distill::MAX_BATCH as u64;
const MAX_N: u64 = 10_000_000;
const MAX_STEPS: u64 = tract_studio::schedule::MAX_STEPS as u64;
/// At most this many f32 values in one `sample` output (1 GiB).
const MAX_SAMPLE_VALUES: usize = 1 << 28;

#[derive(Parser)]
#[command(
    name = "tract-studio",
    version,
    about = "TRACT: distill diffusion models to 1 or 2 sampling steps, and see the difference"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
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
    /// Train the small CNN whose features `eval` uses for a classifier-feature FID on images.
    Classifier(ClassifierArgs),
    /// The paper's ablations in small on a 2-D mixture (several seeds): tables and plots.
    Report(ReportArgs),
    /// When does TRACT beat BTD? Paired-seed budget sweeps, cached and resumable (issue #18).
    Study(tract_studio::study::StudyArgs),
}

#[derive(clap::Args)]
struct ReportArgs {
    /// a mixture with an exact teacher: toy:ring8 or gmm:PATH
    #[arg(long, default_value = "toy:ring8")]
    data: String,
    #[arg(long, default_value = "docs/results")]
    out: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// distillation samples per run
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1..))]
    train_samples: u64,
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    fit_samples: u64,
    #[arg(long, default_value_t = 512, value_parser = count(1, MAX_BATCH))]
    batch: usize,
    /// samples per model for the metrics
    #[arg(long, default_value_t = 4000, value_parser = count(1, 1_000_000))]
    n_eval: usize,
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(clap::Args)]
struct ClassifierArgs {
    /// labelled image data: fashion-mnist[:DIR] or mnist:DIR
    #[arg(long, default_value = "fashion-mnist")]
    data: String,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(1..))]
    train_samples: u64,
    #[arg(long, default_value_t = 128, value_parser = count(1, MAX_BATCH))]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(clap::Args)]
struct GalleryArgs {
    /// model files or asset:NAME, comma separated (a teacher also gets a row at its full grid, on top)
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// without --models: every shipped model (assets/manifest.json) for this data, teacher first
    #[arg(long)]
    data: Option<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8", value_parser = count(1, MAX_STEPS))]
    steps: Vec<usize>,
    /// column j uses the noise of seed S+j
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 8, value_parser = count(1, 256))]
    cols: usize,
    /// pixel scale
    #[arg(long, default_value_t = 2, value_parser = count(1, 16))]
    scale: usize,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(clap::Args)]
struct TeacherArgs {
    /// fashion-mnist[:DIR], mnist:DIR, images:DIR[,SIZE][,grey|rgb], toy:ring8 or gmm:PATH
    #[arg(long)]
    data: String,
    #[arg(long)]
    out: PathBuf,
    /// training budget in samples (with --resume: a new budget, longer or shorter)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    train_samples: u64,
    #[arg(long, value_parser = count(1, MAX_BATCH))]
    batch: Option<usize>,
    /// default 0
    #[arg(long)]
    seed: Option<u64>,
    /// may change on --resume (e.g. lower, after a run diverged)
    #[arg(long, value_parser = positive_f64)]
    lr: Option<f64>,
    /// vp (the default) or ve
    #[arg(long)]
    param: Option<String>,
    /// UNet size for images: tiny (0.27M, quick CPU runs), small (1.06M, the default) or large (GPU)
    #[arg(long)]
    size: Option<String>,
    /// optimizer steps between checkpoints (and sample grids)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    ckpt_every: Option<u64>,
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, hide = true)]
    stop_after: Option<u64>,
}

#[derive(clap::Args, Default)]
struct AppArgs {
    /// panel to open: data, teacher, schedule, distill, gallery, compare
    #[arg(long)]
    panel: Option<String>,
    /// save a screenshot of the panel once it has its content, then exit
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// start a distillation run at once
    #[arg(long)]
    autostart: bool,
    /// manifest of shipped models
    #[arg(long)]
    assets: Option<PathBuf>,
    /// the data to open with: toy:ring8, gmm:PATH, fashion-mnist[:DIR], images:DIR
    #[arg(long)]
    data: Option<String>,
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(clap::Args)]
struct DistillArgs {
    /// toy:ring8 or gmm:PATH
    #[arg(long)]
    data: String,
    /// `exact` (closed-form mixture teacher, the default) or a model file
    #[arg(long)]
    teacher: Option<String>,
    /// start the student from this model file instead of fitting a fresh network
    #[arg(long)]
    init: Option<String>,
    /// tract (the default) or btd
    #[arg(long)]
    method: Option<String>,
    /// step counts per phase, e.g. 1024,32,1
    #[arg(long)]
    schedule: Option<String>,
    /// the whole distillation budget in samples, across all phases
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    train_samples: u64,
    /// samples for fitting a fresh student network to the exact teacher first
    #[arg(long)]
    fit_samples: Option<u64>,
    #[arg(long, value_parser = count(1, MAX_BATCH))]
    batch: Option<usize>,
    /// default 0
    #[arg(long)]
    seed: Option<u64>,
    /// vp (the default) or ve
    #[arg(long)]
    param: Option<String>,
    /// may change on --resume (e.g. lower, after a run diverged)
    #[arg(long, value_parser = positive_f64)]
    lr: Option<f64>,
    /// self-teacher EMA momentum
    #[arg(long, value_parser = momentum)]
    mu_s: Option<f64>,
    /// fixed inference EMA momentum (default: eps^(1/N))
    #[arg(long, value_parser = momentum)]
    mu_i: Option<f64>,
    #[arg(long, value_parser = open_unit)]
    ema_eps: Option<f64>,
    /// relative budget per phase, e.g. 1,5
    #[arg(long)]
    phase_split: Option<String>,
    /// width of a fresh MLP student (2-D data; default 128)
    #[arg(long, value_parser = count(1, 8192))]
    hidden: Option<usize>,
    /// optimizer steps between checkpoints (may change on --resume)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    ckpt_every: Option<u64>,
    #[arg(long)]
    out: PathBuf,
    /// continue the run in --out from its last checkpoint
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value = "auto")]
    device: String,
    /// stop (with a checkpoint) after this many optimizer steps in total, as an interruption would
    #[arg(long, hide = true)]
    stop_after: Option<u64>,
    #[command(flatten)]
    recipe: tract_studio::study::RecipeArgs,
}

#[derive(clap::Args)]
struct SampleArgs {
    /// a model file, or exact:DATA for the closed-form mixture teacher
    #[arg(long)]
    model: String,
    /// sampling steps (default: what the model was distilled for)
    #[arg(long, value_parser = count(1, MAX_STEPS))]
    steps: Option<usize>,
    #[arg(long, default_value_t = 10_000, value_parser = count(1, MAX_N))]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    /// for exact:DATA: vp or ve
    #[arg(long, default_value = "vp")]
    param: String,
    /// for exact:DATA: the T-step grid (default 1024 for vp, 40 for ve)
    #[arg(long, value_parser = count(1, MAX_STEPS))]
    grid: Option<usize>,
    #[arg(long, default_value = "ddim")]
    solver: String,
    /// also write a scatter plot here
    #[arg(long)]
    png: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[arg(long)]
    samples: PathBuf,
    #[arg(long)]
    data: String,
    /// samples of a reference model from the same noise (RMSE; PSNR for images)
    #[arg(long)]
    reference: Option<PathBuf>,
    /// images: the classifier for the feature FID (default: the shipped Fashion-MNIST one)
    #[arg(long)]
    classifier: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// the data (default toy:ring8; any gmm:PATH works)
    #[arg(long, default_value = "toy:ring8")]
    data: String,
    /// skip the TRACT 1024,32,2 run
    #[arg(long)]
    no_two_step: bool,
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    train_samples: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    fit_samples: Option<u64>,
    #[arg(long, value_parser = count(1, MAX_BATCH))]
    batch: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(clap::Args)]
struct BenchArgs {
    #[arg(long, default_value_t = 512, value_parser = count(1, MAX_BATCH))]
    batch: usize,
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    steps: u64,
    /// skip the wgpu measurement
    #[arg(long)]
    cpu_only: bool,
    /// time each WGSL kernel against the same math as Burn ops, and the distillation step
    /// with kernels on and off
    #[arg(long)]
    kernels: bool,
    #[arg(long, default_value = "wgpu")]
    device: String,
    /// UNet (images) training and sampling throughput instead
    #[arg(long)]
    unet: bool,
    /// the UNet presets for --unet, comma-separated: tiny, small, large
    #[arg(long, default_value = "tiny,small")]
    size: String,
    /// --unet: measurements per point (median after a warm-up)
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// --unet: do not run the PyTorch peer (benches/peer/unet.py)
    #[arg(long)]
    no_peer: bool,
    /// --unet: the PyTorch peer's device (cpu, or cuda where a GPU is)
    #[arg(long, default_value = "cpu")]
    peer_device: String,
    /// internal: one CPU measurement with the CPU kernels on or off, as JSON lines
    #[arg(long, hide = true)]
    child: Option<String>,
}

/// Progress bar over the whole budget, with samples/s and ETA.
struct Progress {
    bar: ProgressBar,
    phase: String,
}

impl Progress {
    fn new(label: &str) -> Self {
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{prefix} {msg:<28} [{bar:28}] {human_pos}/{human_len} samples  {per_sec}  ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        Progress {
            bar,
            phase: String::new(),
        }
    }
}

impl Observer for Progress {
    fn event(&mut self, e: &Event) -> bool {
        match e {
            Event::PhaseStart {
                index, count, name, ..
            } => {
                self.phase = format!("{}/{} {name}", index + 1, count);
                self.bar.set_message(self.phase.clone());
            }
            Event::Step {
                step,
                samples_done,
                samples_total,
                loss,
                ..
            } => {
                self.bar.set_length(*samples_total);
                self.bar.set_position(*samples_done);
                if step % 10 == 0 {
                    self.bar
                        .set_message(format!("{} loss {loss:.4}", self.phase));
                }
            }
            Event::PhaseEnd { path, .. } => say(&self.bar, &format!("  saved {}", path.display())),
            Event::Checkpoint { .. } | Event::Preview { .. } => {}
        }
        true
    }
}

fn pick_device(s: &str) -> anyhow::Result<device::Picked> {
    let p = device::pick(s.parse()?)?;
    eprintln!("device: {}", p.label);
    Ok(p)
}

fn distill(a: DistillArgs) -> anyhow::Result<()> {
    let dev = pick_device(&a.device)?;
    let mut run = if a.resume {
        let mut r = Run::open(&a.out, &dev.device)?;
        check_distill_resume(&r.cfg, &a)?;
        refuse_finished(&r, &a.out, "student.safetensors")?;
        resume_changes(&mut r, a.lr, a.ckpt_every);
        eprintln!(
            "resuming {} (method {:?}, schedule {})",
            a.out.display(),
            r.cfg.method,
            r.cfg.schedule
        );
        r
    } else {
        let data = Data::parse(&a.data)?;
        let param: Param = a.param.as_deref().unwrap_or("vp").parse()?;
        let mut cfg = DistillConfig::new(&data, param);
        cfg.teacher = a.teacher.clone().unwrap_or_else(|| "exact".into());
        cfg.init = a.init.clone();
        cfg.method = a.method.as_deref().unwrap_or("tract").parse::<Method>()?;
        if let Some(s) = &a.schedule {
            cfg.schedule = s.clone();
        }
        cfg.train_samples = a.train_samples;
        if let Some(f) = a.fit_samples {
            cfg.fit_samples = f;
        }
        apply_common(&mut cfg, a.seed.unwrap_or(0), a.batch, a.lr, a.ckpt_every)?;
        if let Some(m) = a.mu_s {
            cfg.mu_s = m;
        }
        cfg.mu_i = a.mu_i;
        if let Some(e) = a.ema_eps {
            cfg.ema_eps = e;
        }
        if let Some(h) = a.hidden {
            match &mut cfg.net {
                tract_studio::model::NetConfig::Mlp(m) if h > 0 => m.hidden = h,
                _ => bail!("--hidden {h}: only for a fresh MLP (2-D data), at least 1"),
            }
        }
        if let Some(s) = &a.phase_split {
            cfg.phase_split = Some(parse_split(s)?);
        }
        a.recipe.apply(&mut cfg)?;
        new_run(cfg, &a.out, &dev.device)?
    };
    let label = format!("{:?}", run.cfg.method).to_lowercase();
    let mut prog = Progress::new(&label);
    let outcome = run.run(a.resume, &mut prog, a.stop_after);
    prog.bar.finish_and_clear();
    if let Some(student) = report(outcome?, &a.out, "DISTILLATION LOSS")? {
        println!("student: {}", student.display());
        println!("loss curve: {}", a.out.join("loss.png").display());
    }
    Ok(())
}

fn parse_split(s: &str) -> anyhow::Result<Vec<f64>> {
    tract_studio::flags::phase_split(s).map_err(|e| anyhow::anyhow!(e))
}

/// `--resume` takes a run's options from its state; a flag that says otherwise is an error
/// (it would be silently ignored), except the ones that may change on resume.
fn refuse_differences(out: &std::path::Path, diffs: Vec<String>) -> anyhow::Result<()> {
    if diffs.is_empty() {
        return Ok(());
    }
    bail!(
        "--resume continues the run in {} with the options it was started with, and these differ: {}; leave them out or give the run's values (only --lr, --ckpt-every, --device and, for a teacher, --train-samples may change on resume), or choose another --out for a new run",
        out.display(),
        diffs.join(", "),
    )
}

fn differs<T: PartialEq + std::fmt::Display>(
    diffs: &mut Vec<String>,
    flag: &str,
    given: Option<T>,
    has: T,
) {
    if let Some(g) = given {
        if g != has {
            diffs.push(format!("{flag} {g} (the run has {has})"));
        }
    }
}

fn check_distill_resume(cfg: &DistillConfig, a: &DistillArgs) -> anyhow::Result<()> {
    use tract_studio::schedule::Schedule;
    let mut d = vec![];
    differs(&mut d, "--data", Some(a.data.as_str()), cfg.data.as_str());
    differs(
        &mut d,
        "--teacher",
        a.teacher.as_deref(),
        cfg.teacher.as_str(),
    );
    if a.init.is_some() && a.init != cfg.init {
        let has = cfg.init.clone().unwrap_or_else(|| "none".into());
        differs(&mut d, "--init", a.init.as_deref(), has.as_str());
    }
    if let Some(m) = &a.method {
        let m: Method = m.parse()?;
        if m != cfg.method {
            d.push(format!("--method {m:?} (the run has {:?})", cfg.method).to_lowercase());
        }
    }
    if let Some(s) = &a.schedule {
        if Schedule::parse(s)? != Schedule::parse(&cfg.schedule)? {
            d.push(format!("--schedule {s} (the run has {})", cfg.schedule));
        }
    }
    differs(
        &mut d,
        "--train-samples",
        Some(a.train_samples),
        cfg.train_samples,
    );
    // a model teacher or --init sets the network and skips the fit
    let fresh = cfg.teacher == "exact" && cfg.init.is_none();
    if fresh {
        differs(&mut d, "--fit-samples", a.fit_samples, cfg.fit_samples);
        if let tract_studio::model::NetConfig::Mlp(m) = &cfg.net {
            differs(&mut d, "--hidden", a.hidden, m.hidden);
        }
    }
    differs(&mut d, "--batch", a.batch, cfg.batch);
    differs(&mut d, "--seed", a.seed, cfg.seed);
    if let Some(p) = &a.param {
        let p: Param = p.parse()?;
        if p != cfg.param {
            d.push(format!("--param {p:?} (the run has {:?})", cfg.param).to_lowercase());
        }
    }
    differs(&mut d, "--mu-s", a.mu_s, cfg.mu_s);
    if a.mu_i.is_some() && a.mu_i != cfg.mu_i {
        let has = cfg
            .mu_i
            .map(|m| m.to_string())
            .unwrap_or_else(|| "eps^(1/N)".into());
        d.push(format!(
            "--mu-i {} (the run has {has})",
            a.mu_i.unwrap_or_default()
        ));
    }
    differs(&mut d, "--ema-eps", a.ema_eps, cfg.ema_eps);
    if let Some(s) = &a.phase_split {
        if Some(parse_split(s)?) != cfg.phase_split {
            let has = match &cfg.phase_split {
                Some(v) => v
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                None => "the default split".into(),
            };
            d.push(format!("--phase-split {s} (the run has {has})"));
        }
    }
    refuse_differences(&a.out, d)
}

/// A finished run has nothing to resume (its model is there).
fn refuse_finished(run: &Run, out: &std::path::Path, model: &str) -> anyhow::Result<()> {
    let m = out.join(model);
    if run.is_finished()? && m.exists() {
        bail!(
            "{}: this run has already finished ({} is its model); there is nothing to resume (choose another --out for a new run)",
            out.display(),
            m.display()
        );
    }
    Ok(())
}

/// The options that may change on resume: the learning rate and the checkpoint interval.
fn resume_changes(run: &mut Run, lr: Option<f64>, ckpt_every: Option<u64>) {
    if let Some(lr) = lr {
        if lr != run.cfg.adam.lr {
            eprintln!("--lr: {} -> {lr} (changed on resume)", run.cfg.adam.lr);
            run.cfg.adam.lr = lr;
        }
    }
    if let Some(c) = ckpt_every {
        run.cfg.ckpt_every = c;
    }
}

/// Options distill and teacher share.
fn apply_common(
    cfg: &mut DistillConfig,
    seed: u64,
    batch: Option<usize>,
    lr: Option<f64>,
    ckpt_every: Option<u64>,
) -> anyhow::Result<()> {
    cfg.seed = seed;
    if let Some(b) = batch {
        cfg.batch = b;
    }
    if let Some(lr) = lr {
        cfg.adam.lr = lr;
    }
    if let Some(c) = ckpt_every {
        if c == 0 {
            bail!("--ckpt-every must be at least 1");
        }
        cfg.ckpt_every = c;
    }
    Ok(())
}

/// A fresh run in `out`, refusing to start over an existing one.
fn new_run(
    cfg: DistillConfig,
    out: &std::path::Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<Run> {
    if out.join(tract_studio::distill::STATE_FILE).exists() {
        bail!(
            "{} already holds a run; use --resume to continue it or choose another --out",
            out.display()
        );
    }
    Ok(Run::new(cfg, out, device)?)
}

/// Draw the loss curve of a finished run and return its model; report an interruption.
fn report(outcome: Outcome, out: &std::path::Path, title: &str) -> anyhow::Result<Option<PathBuf>> {
    match outcome {
        Outcome::Finished { student } => {
            let pts = plot::read_loss_csv(&out.join(tract_studio::distill::LOSS_FILE));
            plot::loss_curve(&pts, title, &out.join("loss.png"))?;
            Ok(Some(student))
        }
        Outcome::Stopped { global_step } => {
            println!(
                "stopped after {global_step} optimizer steps; checkpoint in {} (continue with --resume)",
                out.display()
            );
            Ok(None)
        }
    }
}

/// Progress plus a sample grid (images) or scatter (2-D) from fixed noise at every preview.
struct TeacherProgress {
    inner: Progress,
    dir: PathBuf,
    shape: Vec<usize>,
}

impl Observer for TeacherProgress {
    fn event(&mut self, e: &Event) -> bool {
        if let Event::Preview { step, samples, .. } = e {
            let path = self.dir.join("samples.png");
            let r = if self.shape.len() == 3 {
                plot::image_grid(
                    samples,
                    [self.shape[0], self.shape[1], self.shape[2]],
                    8,
                    2,
                    &path,
                )
            } else {
                plot::scatter_panels(
                    &[plot::Panel {
                        title: format!("STEP {step}"),
                        subtitle: String::new(),
                        points: samples,
                        dim: self.shape[0],
                    }],
                    2.6,
                    &path,
                )
            };
            if let Err(err) = r {
                self.inner
                    .bar
                    .println(format!("  could not write {}: {err}", path.display()));
            }
        }
        self.inner.event(e)
    }
}

fn teacher(a: TeacherArgs) -> anyhow::Result<()> {
    let dev = pick_device(&a.device)?;
    let mut run = if a.resume {
        let mut r = Run::open(&a.out, &dev.device)?;
        check_teacher_resume(&r.cfg, &a)?;
        if r.cfg.fit_samples != a.train_samples {
            eprintln!(
                "budget: {} -> {} samples (changed on resume)",
                r.cfg.fit_samples, a.train_samples
            );
            r = Run::open_with_budget(&a.out, &dev.device, a.train_samples)?;
        }
        refuse_finished(&r, &a.out, "teacher.safetensors")?;
        resume_changes(&mut r, a.lr, a.ckpt_every);
        r
    } else {
        let data = Data::parse(&a.data)?;
        let param: Param = a.param.as_deref().unwrap_or("vp").parse()?;
        let mut cfg = DistillConfig::new(&data, param);
        cfg.method = Method::Teacher;
        cfg.teacher = "data".into();
        cfg.fit_samples = a.train_samples;
        cfg.train_samples = 0;
        apply_common(&mut cfg, a.seed.unwrap_or(0), a.batch, a.lr, a.ckpt_every)?;
        let size = a.size.as_deref().unwrap_or("small");
        if let tract_studio::model::NetConfig::Unet(u) = &cfg.net {
            let Some(u) =
                tract_studio::model::UnetConfig::preset(size, u.channels, u.height, u.width, param)
            else {
                bail!("--size {size}: expected tiny, small or large");
            };
            cfg.net = tract_studio::model::NetConfig::Unet(u);
        }
        new_run(cfg, &a.out, &dev.device)?
    };
    let data = Data::parse(&run.cfg.data)?;
    let n = if data.is_images() { 16 } else { 2000 };
    run.preview = Some(tract_studio::distill::PreviewSpec {
        every: run.cfg.ckpt_every,
        noise: noise(1, n, data.dim()),
    });
    let mut prog = TeacherProgress {
        inner: Progress::new("teacher"),
        dir: a.out.clone(),
        shape: data.shape(),
    };
    let outcome = run.run(a.resume, &mut prog, a.stop_after);
    prog.inner.bar.finish_and_clear();
    if let Some(teacher) = report(outcome?, &a.out, "TEACHER LOSS")? {
        println!("teacher: {}", teacher.display());
        println!(
            "samples: {}  loss curve: {}",
            a.out.join("samples.png").display(),
            a.out.join("loss.png").display()
        );
    }
    Ok(())
}

fn check_teacher_resume(cfg: &DistillConfig, a: &TeacherArgs) -> anyhow::Result<()> {
    let mut d = vec![];
    differs(&mut d, "--data", Some(a.data.as_str()), cfg.data.as_str());
    differs(&mut d, "--batch", a.batch, cfg.batch);
    differs(&mut d, "--seed", a.seed, cfg.seed);
    if let Some(p) = &a.param {
        let p: Param = p.parse()?;
        if p != cfg.param {
            d.push(format!("--param {p:?} (the run has {:?})", cfg.param).to_lowercase());
        }
    }
    if let (Some(size), tract_studio::model::NetConfig::Unet(u)) = (&a.size, &cfg.net) {
        let want =
            tract_studio::model::UnetConfig::preset(size, u.channels, u.height, u.width, u.param);
        if want.as_ref() != Some(u) {
            d.push(format!("--size {size} (the run has another network)"));
        }
    }
    refuse_differences(&a.out, d)
}

/// A line above the progress bar, or on stderr when the bar is hidden (not a terminal).
fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn study_cmd(a: tract_studio::study::StudyArgs) -> anyhow::Result<()> {
    use tract_studio::study;
    let cfg = a.config()?;
    if a.aggregate_only {
        let s = study::write_outputs(&cfg.out)?;
        println!("{}", s.markdown());
        return Ok(());
    }
    let dev = pick_device(&a.device)?;
    let t = std::time::Instant::now();
    let n = study::run(&cfg, &dev.device, &mut |line: &str| {
        eprintln!("[{:>6.0}s] {line}", t.elapsed().as_secs_f64())
    })?;
    println!(
        "{n} runs done; tables: {}",
        cfg.out.join("tables.md").display()
    );
    Ok(())
}

fn report_cmd(a: ReportArgs) -> anyhow::Result<()> {
    use tract_studio::report;
    if a.seeds.is_empty() || a.batch == 0 || a.n_eval == 0 || a.train_samples == 0 {
        bail!("--seeds, --batch, --n-eval and --train-samples must be non-empty / at least 1");
    }
    let dev = pick_device(&a.device)?;
    let cfg = report::ReportConfig {
        data: a.data.clone(),
        out: a.out.clone(),
        seeds: a.seeds.clone(),
        train_samples: a.train_samples,
        fit_samples: a.fit_samples,
        batch: a.batch,
        n_eval: a.n_eval,
    };
    let total = a.seeds.len() * report::settings().len();
    let prog = Progress::new("report");
    let bar = prog.bar.clone();
    let mut observer = |e: &Event| {
        if let Event::Step {
            samples_done,
            samples_total,
            ..
        } = e
        {
            bar.set_length(*samples_total);
            bar.set_position(*samples_done);
        }
        true
    };
    let t = std::time::Instant::now();
    let mut done = 0usize;
    let r = report::run(&cfg, &dev.device, &mut observer, &mut |line: &str| {
        if line.starts_with("seed") && !line.contains("fitting") {
            done += 1;
            let el = t.elapsed().as_secs_f64();
            say(
                &prog.bar,
                &format!(
                    "[{done}/{total}, ETA {:.0}s] {line}",
                    el / done as f64 * (total - done) as f64
                ),
            );
        } else {
            say(&prog.bar, line);
        }
        prog.bar.set_message(format!("run {}/{total}", done + 1));
    })?;
    prog.bar.finish_and_clear();
    println!("{}", r.markdown());
    println!(
        "tables: {}  plots: {}/table1.png ...  ({:.0}s)",
        a.out.join("tables.md").display(),
        a.out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn classifier_cmd(a: ClassifierArgs) -> anyhow::Result<()> {
    use tract_studio::eval::classifier::{Classifier, ClassifierMeta};
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let dev = pick_device(&a.device)?;
    let data = Data::parse(&a.data)?;
    let tract_studio::data::Source::Images(set) = &data.source else {
        bail!(
            "{}: a classifier needs labelled images (fashion-mnist[:DIR] or mnist:DIR)",
            a.data
        );
    };
    let test = data.held_out()?;
    let classes = set
        .labels
        .as_ref()
        .map(|l| l.iter().copied().max().unwrap_or(0) as usize + 1)
        .ok_or_else(|| anyhow::anyhow!("{}: no label file; a classifier needs labels", a.data))?;
    let meta = ClassifierMeta {
        kind: "classifier".into(),
        data: a.data.clone(),
        channels: set.c,
        height: set.h,
        width: set.w,
        classes,
        train_samples: a.train_samples,
        test_accuracy: 0.0,
    };
    let mut clf = Classifier::new(meta, &mut tract_studio::rng::Rng::new(a.seed), &dev.device);
    let prog = Progress::new("classifier");
    let t = std::time::Instant::now();
    let mut last = 0.0f32;
    clf.train(
        set,
        a.train_samples,
        a.batch,
        a.seed,
        &mut |step, steps, loss| {
            last = if step == 1 {
                loss
            } else {
                0.98 * last + 0.02 * loss
            };
            prog.bar.set_length(steps * a.batch as u64);
            prog.bar.set_position(step * a.batch as u64);
            prog.bar.set_message(format!("loss {last:.3}"));
        },
    )?;
    prog.bar.finish_and_clear();
    clf.meta.test_accuracy = clf.accuracy(&test)?;
    clf.save(&a.out)?;
    println!(
        "classifier: {} training samples in {:.0}s, loss {last:.3}, test accuracy {:.4} on {} images -> {}",
        a.train_samples,
        t.elapsed().as_secs_f64(),
        clf.meta.test_accuracy,
        test.n,
        a.out.display()
    );
    Ok(())
}

fn gallery_cmd(a: GalleryArgs) -> anyhow::Result<()> {
    if a.out.extension().and_then(|e| e.to_str()) != Some("png") {
        bail!("--out {}: expected a .png file name", a.out.display());
    }
    if a.steps.contains(&0) {
        bail!("--steps: step counts must be at least 1");
    }
    let models = if a.models.is_empty() {
        let Some(data) = &a.data else {
            bail!("give --models A,B,... or --data DATA (the shipped models for that data)");
        };
        let mut m: Vec<_> = tract_studio::assets::manifest()
            .into_iter()
            .filter(|e| &e.data == data)
            .collect();
        if m.is_empty() {
            bail!("no shipped models for {data} in assets/manifest.json");
        }
        m.sort_by_key(|e| e.kind != "teacher");
        m.into_iter().map(|e| e.path).collect()
    } else {
        a.models.clone()
    };
    let dev = pick_device(&a.device)?;
    let t = std::time::Instant::now();
    let (rows, shape) =
        tract_studio::gallery::rows(&models, &a.steps, a.seed, a.cols, &dev.device)?;
    tract_studio::gallery::draw(&rows, &shape, a.scale, &a.out)?;
    for r in &rows {
        println!("  {}", r.label);
    }
    println!(
        "{} rows x {} columns (seeds {}..{}) in {:.1}s -> {}",
        rows.len(),
        a.cols,
        a.seed,
        a.seed + a.cols as u64 - 1,
        t.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

fn sample(a: SampleArgs) -> anyhow::Result<()> {
    if a.out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!(
            "--out {}: expected a .safetensors file name",
            a.out.display()
        );
    }
    if a.n == 0 {
        bail!("--n must be at least 1");
    }
    let dev = pick_device(&a.device)?;
    let param: Param = a.param.parse()?;
    let solver: Solver = a.solver.parse()?;
    let m = Model::load(&a.model, param, a.grid, &dev.device)?;
    if a.n
        .checked_mul(m.dim())
        .is_none_or(|v| v > MAX_SAMPLE_VALUES)
    {
        bail!(
            "--n {}: that many samples of dimension {} is more than {MAX_SAMPLE_VALUES} values; sample in parts (--seed S gives other noise)",
            a.n,
            m.dim()
        );
    }
    let steps = a.steps.unwrap_or(m.native_steps());
    let z = noise(a.seed, a.n, m.dim());
    let t = std::time::Instant::now();
    let s = m.sample(&z, steps, solver, &dev.device)?;
    let secs = t.elapsed().as_secs_f64();
    let meta = serde_json::json!({"model": a.model, "steps": steps, "seed": a.seed, "n": a.n, "data": m.data_spec()});
    write_samples(&a.out, &s, &z, &m.shape(), &meta)?;
    println!(
        "{} samples at {steps} steps in {secs:.2}s -> {}",
        a.n,
        a.out.display()
    );
    if let Some(png) = a.png {
        let shape = m.shape();
        if shape.len() == 3 {
            let n = a.n.min(64);
            plot::image_grid(
                &s[..n * m.dim()],
                [shape[0], shape[1], shape[2]],
                8,
                2,
                &png,
            )?;
            println!("grid: {}", png.display());
        } else {
            let title = format!("{} STEPS", steps);
            plot::scatter_panels(
                &[plot::Panel {
                    title,
                    subtitle: a.model.clone(),
                    points: &s,
                    dim: m.dim(),
                }],
                2.6,
                &png,
            )?;
            println!("scatter: {}", png.display());
        }
    }
    Ok(())
}

fn eval_cmd(a: EvalArgs) -> anyhow::Result<()> {
    let data = Data::parse(&a.data)?;
    let (s, _, dim) = read_samples(&a.samples)?;
    if dim != data.dim() {
        bail!(
            "{}: samples are {dim}-dimensional but {} is {}-dimensional",
            a.samples.display(),
            a.data,
            data.dim()
        );
    }
    let reference = match &a.reference {
        Some(p) => {
            let (r, _, rd) = read_samples(p)?;
            if r.len() != s.len() || rd != dim {
                bail!(
                    "{}: reference has {} x {rd} values, samples have {} x {dim}; expected the same N and dimension (same --n and noise)",
                    p.display(),
                    r.len() / rd.max(1),
                    s.len() / dim
                );
            }
            Some(r)
        }
        None => None,
    };
    let n = s.len() / dim;
    if data.is_images() {
        return eval_images(&a, &data, &s, reference.as_deref());
    }
    let fresh = data.sample(
        &mut tract_studio::rng::Rng::stream(a.seed, tract_studio::rng::purpose::EVAL_DATA),
        n,
    );
    let sw2 = eval::sliced_w2(&s, &fresh, dim, 256, a.seed);
    let we = data
        .mixture()
        .map(|g| eval::weight_errors(g, &s))
        .unwrap_or_default();
    let maxw = we.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    let r = reference.map(|r| eval::rmse(&s, &r));
    println!(
        "{}",
        serde_json::json!({"samples": a.samples, "n": n, "sw2": sw2, "weight_errors": we, "max_weight_error": maxw, "rmse_to_reference": r})
    );
    Ok(())
}

/// Images: classifier-feature FID against the held-out split, PSNR / RMSE to a reference.
fn eval_images(
    a: &EvalArgs,
    data: &Data,
    s: &[f32],
    reference: Option<&[f32]>,
) -> anyhow::Result<()> {
    use tract_studio::eval::classifier::{Classifier, FEATURES};
    let dev = device::cpu();
    let (clf, clf_name) = match &a.classifier {
        Some(p) => (Classifier::load(p, &dev.device)?, p.display().to_string()),
        None => {
            let name = "classifier-fashion-mnist.safetensors";
            let b = tract_studio::assets::bytes(name).expect("the classifier is embedded");
            (
                Classifier::from_bytes(name, b.to_vec(), &dev.device)?,
                format!("asset:{name}"),
            )
        }
    };
    let m = &clf.meta;
    if m.channels * m.height * m.width != data.dim() {
        bail!(
            "{clf_name} takes {}x{}x{} images but {} has {:?}; train one for this data with `tract-studio classifier --data {}`",
            m.channels,
            m.height,
            m.width,
            a.data,
            data.shape(),
            a.data
        );
    }
    let held = data.held_out()?;
    let n = s.len() / data.dim();
    let fs = clf.features(s);
    let fr = clf.features(&held.pixels);
    let fid = eval::fid::feature_distance(&fs, &fr, FEATURES);
    let psnr = reference.map(|r| eval::psnr(s, r));
    let rmse = reference.map(|r| eval::rmse(s, r));
    println!(
        "{}",
        serde_json::json!({
            "samples": a.samples, "n": n,
            "fid_classifier": fid,
            "fid_note": format!("FID in the penultimate features of {clf_name} (test accuracy {:.3}) against {} held-out images; not comparable to Inception FID", m.test_accuracy, held.n),
            "psnr_to_reference": psnr, "rmse_to_reference": rmse
        })
    );
    Ok(())
}

fn demo_cmd(a: DemoArgs) -> anyhow::Result<()> {
    let dev = pick_device(&a.device)?;
    let mut cfg = demo::DemoConfig {
        data: a.data.clone(),
        out: a.out.clone(),
        seed: a.seed,
        two_step: !a.no_two_step,
        ..Default::default()
    };
    if let Some(t) = a.train_samples {
        cfg.train_samples = t;
    }
    if let Some(f) = a.fit_samples {
        cfg.fit_samples = f;
    }
    if let Some(b) = a.batch {
        cfg.batch = b;
    }
    println!(
        "demo: {}, exact teacher, VP, {} fit samples, then TRACT 1024,32,1 / BTD 1024->...->1{} with {} distillation samples each",
        if cfg.data == "toy:ring8" {
            "toy:ring8 (8 Gaussians on a circle)"
        } else {
            &cfg.data
        },
        cfg.fit_samples,
        if cfg.two_step {
            " / TRACT 1024,32,2"
        } else {
            ""
        },
        cfg.train_samples
    );
    let t = std::time::Instant::now();
    let mut prog = Progress::new("demo");
    let res = demo::run(&cfg, &dev.device, &mut prog);
    prog.bar.finish_and_clear();
    let res = res?;
    println!("\n{}", res.table());
    let (t1, tr1, b1) = (
        res.rows[1].rmse_to_teacher,
        res.row("TRACT").rmse_to_teacher,
        res.row("BTD").rmse_to_teacher,
    );
    println!(
        "TRACT 1-step RMSE = {:.3} x the teacher's own 1-step RMSE (BTD: {:.3} x)",
        tr1 / t1,
        b1 / t1
    );
    println!(
        "picture: {}\nresults: {}\ntime: {:.0}s",
        res.picture.display(),
        a.out.join("results.json").display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `bench --unet`: per size, the CPU backend with the CPU kernels on and off (each in its own
/// process, so peak RSS is each one's own) and the PyTorch peer, in one invocation, as ratios;
/// then wgpu unless --cpu-only.
fn bench_unet(a: &BenchArgs) -> anyhow::Result<()> {
    use tract_studio::bench::{UnetThroughput, peer_unet, unet_child};
    let sizes: Vec<&str> = a.size.split(',').map(str::trim).collect();
    let mut cfgs = vec![];
    for s in &sizes {
        let Some(cfg) = tract_studio::model::UnetConfig::preset(s, 1, 32, 32, Param::Vp) else {
            bail!("--size {s}: expected tiny, small or large (comma-separated)");
        };
        cfgs.push(cfg);
    }
    if let Some(mode) = &a.child {
        let on = match mode.as_str() {
            "on" => true,
            "off" => false,
            _ => bail!("--child {mode}: expected on or off"),
        };
        tract_studio::kernels::cpu::set_enabled(on);
        for r in tract_studio::bench::unet(&device::cpu().device, &cfgs[0], a.reps) {
            println!("{}", serde_json::to_string(&r)?);
        }
        return Ok(());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "UNet on 1x32x32, CPU ({threads} threads): median of {} after a warm-up; peak = each process's peak RSS",
        a.reps
    );
    let exe = std::env::current_exe().context("locating this binary")?;
    for (name, cfg) in sizes.iter().zip(&cfgs) {
        let params = tract_studio::model::unet::Unet::new(cfg.clone())
            .layout()
            .total;
        println!("\n{name} UNet ({params} parameters)");
        let ours = unet_child(&exe, name, "on", a.reps)?;
        let burn = unet_child(&exe, name, "off", a.reps)?;
        let peer: Option<Vec<UnetThroughput>> = if a.no_peer {
            None
        } else {
            match peer_unet(name, threads, &a.peer_device, a.reps) {
                Ok(p) => Some(p),
                Err(e) => {
                    println!("  PyTorch peer skipped: {e}");
                    None
                }
            }
        };
        println!(
            "  {:<10} {:>5} {:>10} {:>12} {:>11} {:>11} {:>13} {:>21}",
            "step",
            "batch",
            "ours ms",
            "Burn ops ms",
            "PyTorch ms",
            "ours/Burn",
            "ours/PyTorch",
            "peak MiB ours/Burn/PT"
        );
        for (i, o) in ours.iter().enumerate() {
            let b = &burn[i];
            let p = peer
                .as_ref()
                .and_then(|p| p.iter().find(|r| r.what == o.what && r.batch == o.batch));
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            println!(
                "  {:<10} {:>5} {:>10.0} {:>12.0} {:>11} {:>10.2}x {:>12} {:>21}",
                o.what,
                o.batch,
                o.ms,
                b.ms,
                f(p.map(|p| p.ms)),
                b.ms / o.ms,
                p.map_or("-".to_string(), |p| format!("{:.2}x", p.ms / o.ms)),
                format!(
                    "{}/{}/{}",
                    f(o.peak_mib),
                    f(b.peak_mib),
                    f(p.and_then(|p| p.peak_mib))
                )
            );
        }
    }
    println!("\n(ours/Burn and ours/PyTorch: how many times faster ours is; above 1 = faster)");
    if !a.cpu_only {
        match device::pick(Choice::Wgpu) {
            Ok(p) => {
                for (name, cfg) in sizes.iter().zip(&cfgs) {
                    for r in tract_studio::bench::unet(&p.device, cfg, a.reps) {
                        println!(
                            "  {} {name}: {:<8} batch {:>3}: {:>8.0} ms  {:>7.1} images/s",
                            p.label, r.what, r.batch, r.ms, r.images_per_s
                        );
                    }
                }
            }
            Err(e) => println!("wgpu: skipped ({e})"),
        }
    }
    Ok(())
}

fn bench(a: BenchArgs) -> anyhow::Result<()> {
    use tract_studio::bench::distill_throughput;
    if a.unet {
        return bench_unet(&a);
    }
    if a.kernels {
        let p = pick_device(&a.device)?;
        println!(
            "kernels on {} (median of 30 calls, each followed by a device sync)",
            p.label
        );
        println!(
            "{:<36} {:>10} {:>12} {:>12} {:>8} {:>10} {:>10}",
            "kernel", "elements", "WGSL ms", "Burn ops ms", "ratio", "WGSL GB/s", "Burn GB/s"
        );
        for k in tract_studio::bench::kernels(&p.device, 30) {
            println!(
                "{:<36} {:>10} {:>12.3} {:>12.3} {:>8.2} {:>10.2} {:>10.2}",
                k.name,
                k.elements,
                k.kernel_ms,
                k.burn_ms,
                k.burn_ms / k.kernel_ms,
                k.gbps(k.kernel_ms),
                k.gbps(k.burn_ms)
            );
        }
        let steps = (a.steps / 4).max(10);
        tract_studio::kernels::set_enabled(true);
        let on = distill_throughput(&p.device, "kernels-on", a.batch, 20, steps)?;
        tract_studio::kernels::set_enabled(false);
        let off = distill_throughput(&p.device, "kernels-off", a.batch, 20, steps)?;
        tract_studio::kernels::set_enabled(true);
        println!(
            "whole distillation step (TRACT, batch {}): kernels {:.0} samples/s, Burn ops {:.0} samples/s, ratio {:.2}",
            a.batch,
            on.samples_per_s,
            off.samples_per_s,
            on.samples_per_s / off.samples_per_s
        );
        return Ok(());
    }
    println!(
        "distillation throughput, TRACT 1024->32 on toy:ring8 with the exact teacher, batch {}",
        a.batch
    );
    let cpu = distill_throughput(&device::cpu().device, "cpu-flex", a.batch, 20, a.steps)?;
    println!(
        "  CPU backend (flex):  {:>10.0} samples/s  ({} steps)",
        cpu.samples_per_s, cpu.steps
    );
    if !a.cpu_only {
        match device::pick(Choice::Wgpu) {
            Ok(p) => {
                let steps = (a.steps / 4).max(10);
                let g = distill_throughput(&p.device, "wgpu", a.batch, 20, steps)
                    .context("wgpu benchmark")?;
                println!(
                    "  {}:  {:>10.0} samples/s  ({} steps)",
                    p.label, g.samples_per_s, g.steps
                );
                println!(
                    "  ratio wgpu / cpu: {:.3}",
                    g.samples_per_s / cpu.samples_per_s
                );
            }
            Err(e) => println!("  wgpu: skipped ({e})"),
        }
    }
    Ok(())
}

#[cfg(feature = "gui")]
fn app(a: AppArgs) -> anyhow::Result<()> {
    use tract_studio::app::{AppOptions, Tab, run_app};
    let tab = match &a.panel {
        Some(p) => Some(Tab::parse(p).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown panel '{p}': expected data, teacher, schedule, distill, gallery or compare"
            )
        })?),
        None => None,
    };
    let dev = pick_device(&a.device)?;
    run_app(
        AppOptions {
            tab,
            screenshot: a.screenshot,
            autostart: a.autostart,
            assets: a.assets,
            data: a.data,
            ..Default::default()
        },
        dev.device,
    )
    .map_err(|e| anyhow::anyhow!(e))
}

#[cfg(not(feature = "gui"))]
fn app(_a: AppArgs) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let _ = Cli::command().print_help();
    bail!("this build has no desktop app (built without the 'gui' feature); use a subcommand")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Some(Cmd::Distill(a)) => distill(a),
        Some(Cmd::Sample(a)) => sample(a),
        Some(Cmd::Eval(a)) => eval_cmd(a),
        Some(Cmd::Demo(a)) => demo_cmd(a),
        Some(Cmd::Bench(a)) => bench(a),
        Some(Cmd::App(a)) => app(a),
        Some(Cmd::Teacher(a)) => teacher(a),
        Some(Cmd::Gallery(a)) => gallery_cmd(a),
        Some(Cmd::Classifier(a)) => classifier_cmd(a),
        Some(Cmd::Report(a)) => report_cmd(a),
        Some(Cmd::Study(a)) => study_cmd(a),
        None => app(AppArgs {
            device: "auto".into(),
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
