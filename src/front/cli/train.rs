//! `teacher` and `distill`: training runs, resumable, with a progress bar; `--resume` refuses
//! flags that differ from the run's own.

use std::path::PathBuf;

use anyhow::bail;

use super::choices::{DeviceArg, MethodArg, ParamArg, SizeArg, pick};
use super::flags::{momentum, open_unit, positive_f64};
use super::progress::Progress;
use super::{Agreed, MAX_BATCH, Ranks, count, examples, note_run_dir, pick_device_said};
use crate::engine::checkpoint::ModelFile;
use crate::engine::data::Data;
use crate::engine::device::Picked;
use crate::engine::distill::{DistillConfig, Event, Method, Observer, Outcome, Run};
use crate::engine::schedule::Param;
use crate::jobs::generate::noise;
use crate::jobs::plot;

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("a tiny UNet teacher on Fashion-MNIST (a quick CPU run)", "tract-studio teacher --data fashion-mnist --size tiny --train-samples 64000 --out teacher1"),
    ("continue it after an interruption, or with a larger budget", "tract-studio teacher --out teacher1 --resume --train-samples 128000"),
]))]
pub(super) struct TeacherArgs {
    /// fashion-mnist[:DIR], mnist:DIR, emoji[:FONT][,SIZE] (colour), images:DIR[,SIZE][,grey|rgb],
    /// toy:ring8 or gmm:PATH
    /// (with --resume: the run's own, may be left out)
    #[arg(long, required_unless_present = "resume")]
    pub(super) data: Option<String>,
    /// the run folder: state.safetensors (resumable), loss.csv, samples.png, then teacher.safetensors
    #[arg(long)]
    pub(super) out: PathBuf,
    /// training budget in samples (with --resume: left out keeps the run's; given, a new
    /// budget, longer or shorter)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), required_unless_present = "resume")]
    pub(super) train_samples: Option<u64>,
    /// samples per optimizer step (default 512; images: 64)
    #[arg(long, value_parser = count(1, MAX_BATCH))]
    pub(super) batch: Option<usize>,
    /// default 0
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// may change on --resume (e.g. lower, after a run diverged)
    #[arg(long, value_parser = positive_f64)]
    pub(super) lr: Option<f64>,
    /// the parametrisation (default vp)
    #[arg(long, value_parser = pick::<ParamArg>())]
    pub(super) param: Option<ParamArg>,
    /// UNet size for images (default small)
    #[arg(long, value_parser = pick::<SizeArg>())]
    pub(super) size: Option<SizeArg>,
    /// optimizer steps between checkpoints (and sample grids)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) ckpt_every: Option<u64>,
    /// continue the run in --out from its last checkpoint
    #[arg(long)]
    pub(super) resume: bool,
    #[arg(long, default_value = "auto", value_parser = pick::<DeviceArg>())]
    pub(super) device: DeviceArg,
    #[arg(long, hide = true)]
    pub(super) stop_after: Option<u64>,
}

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("TRACT 1024 -> 32 -> 1 on a toy mixture with its exact teacher", "tract-studio distill --data toy:ring8 --train-samples 500000 --out run1"),
    ("a 1-step student of the shipped Fashion-MNIST teacher", "tract-studio distill --data fashion-mnist --teacher asset:fashion-mnist-teacher.safetensors --train-samples 256000 --out fm-tract"),
]))]
pub(super) struct DistillArgs {
    /// toy:ring8, toy:grid5, toy:mix16, gmm:PATH, fashion-mnist[:DIR], mnist:DIR,
    /// emoji[:FONT][,SIZE] or images:DIR[,SIZE][,grey|rgb] (images need a model --teacher; with --resume: the run's
    /// own, may be left out)
    #[arg(long, required_unless_present = "resume")]
    pub(super) data: Option<String>,
    /// `exact` (closed-form mixture teacher, the default), a model file or asset:NAME (a
    /// shipped model): a teacher, or a student distilled for the schedule's first step count
    #[arg(long)]
    pub(super) teacher: Option<String>,
    /// start the student from this model file (or asset:NAME) instead of fitting a fresh network
    #[arg(long)]
    pub(super) init: Option<String>,
    /// the distillation method (default tract)
    #[arg(long, value_parser = pick::<MethodArg>())]
    pub(super) method: Option<MethodArg>,
    /// step counts per phase, e.g. 1024,32,1 (a diffusers teacher: from its
    /// num_train_timesteps, e.g. 1000,40,1)
    #[arg(long)]
    pub(super) schedule: Option<String>,
    /// a diffusers teacher's student predicts this (epsilon, v_prediction or sample; default:
    /// as the teacher), starting from the teacher's weights
    #[arg(long)]
    pub(super) student_prediction: Option<String>,
    /// the whole distillation budget in samples, across all phases (with --resume: the run's
    /// own, may be left out)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), required_unless_present = "resume")]
    pub(super) train_samples: Option<u64>,
    /// with the exact teacher and no --init: samples for fitting a fresh student network to
    /// the teacher first, before and beyond --train-samples (default 1000000; 0 skips it);
    /// with --student-prediction other than the teacher's: samples for re-fitting the copied
    /// network to the teacher's x0 in its new parametrisation first (default 0)
    #[arg(long)]
    pub(super) fit_samples: Option<u64>,
    /// samples per optimizer step (default 512; images: 64)
    #[arg(long, value_parser = count(1, MAX_BATCH))]
    pub(super) batch: Option<usize>,
    /// default 0
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// the parametrisation (default vp)
    #[arg(long, value_parser = pick::<ParamArg>())]
    pub(super) param: Option<ParamArg>,
    /// may change on --resume (e.g. lower, after a run diverged)
    #[arg(long, value_parser = positive_f64)]
    pub(super) lr: Option<f64>,
    /// self-teacher EMA momentum
    #[arg(long, value_parser = momentum)]
    pub(super) mu_s: Option<f64>,
    /// fixed inference EMA momentum (default: eps^(1/N))
    #[arg(long, value_parser = momentum)]
    pub(super) mu_i: Option<f64>,
    /// the eps of the inference EMA momentum eps^(1/N) over a phase of N steps
    #[arg(long, value_parser = open_unit)]
    pub(super) ema_eps: Option<f64>,
    /// relative budget per phase, e.g. 1,5
    #[arg(long)]
    pub(super) phase_split: Option<String>,
    /// width of a fresh MLP student (2-D data; default 128)
    #[arg(long, value_parser = count(1, 8192))]
    pub(super) hidden: Option<usize>,
    /// optimizer steps between checkpoints (may change on --resume)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) ckpt_every: Option<u64>,
    /// the run folder: state.safetensors (resumable), loss.csv, a model per phase, then student.safetensors
    #[arg(long)]
    pub(super) out: PathBuf,
    /// continue the run in --out from its last checkpoint
    #[arg(long)]
    pub(super) resume: bool,
    #[arg(long, default_value = "auto", value_parser = pick::<DeviceArg>())]
    pub(super) device: DeviceArg,
    /// stop (with a checkpoint) after this many optimizer steps in total, as an interruption would
    #[arg(long, hide = true)]
    pub(super) stop_after: Option<u64>,
    #[command(flatten)]
    pub(super) recipe: super::study::RecipeArgs,
}

/// A model file for `--teacher` / `--init`: a path, `asset:NAME`, a shipped model (as
/// `sample --model asset:NAME` takes it), or `diffusers:DIR`, a diffusers pipeline folder.
fn open_model(spec: &str) -> crate::Result<ModelFile> {
    let Some(name) = spec.strip_prefix("asset:") else {
        return crate::engine::pipeline::open(spec);
    };
    match crate::jobs::assets::bytes(name) {
        Some(b) => ModelFile::from_bytes(name, b),
        None => {
            let names: Vec<String> = crate::jobs::assets::manifest()
                .into_iter()
                .map(|e| e.path.trim_start_matches("asset:").to_string())
                .collect();
            Err(crate::Error::input(format!(
                "no shipped model '{name}'; expected one of {}",
                names.join(", ")
            )))
        }
    }
}

/// The device of this process: in a data-parallel job of several ranks, this rank's own
/// (a GPU by its place among the ranks on its machine: `device::pick_for_rank`), said
/// afterwards by [`say_devices`]; in one process, the usual choice, said now.
fn pick_rank_device(d: DeviceArg, ranks: &Ranks, say: bool) -> anyhow::Result<Picked> {
    match ranks {
        Some(c) if c.size() > 1 => {
            let (local, on_node) = c.local();
            Ok(crate::engine::device::pick_for_rank(
                d.into(),
                local,
                on_node,
            )?)
        }
        _ => pick_device_said(d, say),
    }
}

/// Rank 0 says every rank's device, one line each (data-parallel only).
fn say_devices(ranks: &Ranks, label: &str) -> anyhow::Result<()> {
    let Some(c) = ranks.as_ref().filter(|c| c.size() > 1) else {
        return Ok(());
    };
    let all = c.all_gather_text(label)?;
    if c.rank() == 0 {
        for (r, l) in all.iter().enumerate() {
            eprintln!("device of rank {r} of {}: {l}", all.len());
        }
    }
    Ok(())
}

/// Rank 0 (or the only process) speaks for a data-parallel job.
fn speaks(ranks: &Ranks) -> bool {
    ranks.as_ref().is_none_or(|c| c.rank() == 0)
}

/// Data-parallel: every rank set up its run (`setup`); go on only if all did, with the same
/// options (`command`, the flags that are not in the config, and the run's config). Every
/// rank gets the same answer, so a refused job ends on every rank with one message.
fn start_together(
    ranks: &Ranks,
    setup: anyhow::Result<Run>,
    command: &str,
    resume: bool,
    stop_after: Option<u64>,
) -> anyhow::Result<Run> {
    let Some(c) = ranks else { return setup };
    let mut setup = setup;
    if let Ok(run) = &mut setup
        && let Err(e) = run.set_collective(c.clone())
    {
        setup = Err(e.into());
    }
    let status = match &setup {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    };
    let all = c.all_gather_text(&status)?;
    let failed: Vec<(usize, &String)> = all
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .collect();
    if let Some((_, first)) = failed.first() {
        let msg = if failed.len() == all.len() && failed.iter().all(|(_, s)| s == first) {
            first.to_string()
        } else {
            failed
                .iter()
                .map(|(r, s)| format!("rank {r} of {}: {s}", all.len()))
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(Agreed(msg).into());
    }
    let run = setup?;
    let options = serde_json::to_string_pretty(&serde_json::json!({
        "command": command,
        "resume": resume,
        "stop_after": stop_after,
        "config": &run.cfg,
    }))?;
    crate::engine::collective::check_agree(c.as_ref(), "the options", &options)
        .map_err(|e| Agreed(e.to_string()))?;
    note_run_dir(ranks, &run.dir);
    Ok(run)
}

/// What a data-parallel job's observer is on ranks > 0: silent (rank 0 reports).
fn silent(_: &Event) -> bool {
    true
}

pub(super) fn distill(a: DistillArgs, ranks: Ranks) -> anyhow::Result<()> {
    let say = speaks(&ranks);
    let dev = pick_rank_device(a.device, &ranks, say);
    let label = dev.as_ref().map(|d| d.label.clone()).unwrap_or_default();
    let setup = dev.and_then(|d| distill_setup(&a, say, &d));
    let mut run = start_together(&ranks, setup, "distill", a.resume, a.stop_after)?;
    say_devices(&ranks, &label)?;
    if say {
        for w in &run.warnings {
            eprintln!("warning: {w}");
        }
    }
    let label = format!("{:?}", run.cfg.method).to_lowercase();
    if !say {
        run.run(a.resume, &mut silent, a.stop_after)?;
        return Ok(());
    }
    let mut prog = Progress::new(&label);
    let outcome = run.run(a.resume, &mut prog, a.stop_after);
    prog.bar.finish_and_clear();
    if let Some(student) = report(outcome?, &a.out, "DISTILLATION LOSS")? {
        println!("student: {}", student.display());
        println!("loss curve: {}", a.out.join("loss.png").display());
    }
    Ok(())
}

/// A distillation run from the flags (a new one, or the one in --out with --resume).
fn distill_setup(a: &DistillArgs, say: bool, dev: &Picked) -> anyhow::Result<Run> {
    let run = if a.resume {
        let mut r = Run::open_with(&a.out, &dev.device, &open_model)?;
        check_distill_resume(&r.cfg, a)?;
        refuse_finished(&r, &a.out, crate::engine::distill::STUDENT_FILE)?;
        resume_changes(&mut r, a.lr, a.ckpt_every, say);
        if say {
            eprintln!(
                "resuming {} (method {:?}, schedule {})",
                a.out.display(),
                r.cfg.method,
                r.cfg.schedule
            );
        }
        r
    } else {
        let data = Data::parse(required(&a.data, "--data")?)?;
        let param: Param = a.param.unwrap_or(ParamArg::Vp).into();
        let mut cfg = DistillConfig::new(&data, param);
        cfg.teacher = a.teacher.clone().unwrap_or_else(|| "exact".into());
        cfg.init = a.init.clone();
        cfg.method = a.method.unwrap_or(MethodArg::Tract).into();
        if let Some(s) = &a.schedule {
            cfg.schedule = s.clone();
        }
        cfg.train_samples = *required(&a.train_samples, "--train-samples")?;
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
                crate::engine::model::NetConfig::Mlp(m) if h > 0 => m.hidden = h,
                _ => bail!("--hidden {h}: only for a fresh MLP (2-D data), at least 1"),
            }
        }
        if let Some(s) = &a.phase_split {
            cfg.phase_split = Some(parse_split(s)?);
        }
        if let Some(p) = &a.student_prediction {
            // a re-parametrised student is re-fitted only when asked (--fit-samples)
            cfg.fit_samples = a.fit_samples.unwrap_or(0);
            cfg.student_prediction =
                Some(crate::engine::model::Prediction::parse(p).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--student-prediction {p}: expected epsilon, v_prediction or sample"
                    )
                })?);
        }
        a.recipe.apply(&mut cfg)?;
        let r = new_run(cfg, &a.out, &dev.device)?;
        if say {
            say_phases(&r);
        }
        r
    };
    Ok(run)
}

/// Say the phases of a new run before it starts, the fit to the exact teacher first (its
/// samples come before and beyond --train-samples).
fn say_phases(run: &Run) {
    use crate::engine::distill::PhaseKind;
    let total: u64 = run.phases.iter().map(|p| p.samples).sum();
    let parts: Vec<String> = run
        .phases
        .iter()
        .map(|p| match p.kind {
            PhaseKind::Fit if run.cfg.student_prediction.is_some() => format!(
                "re-fit the student's new parametrisation ({}) to the teacher: {} samples (--fit-samples)",
                run.cfg.student_prediction.map(|p| p.name()).unwrap_or_default(),
                p.samples
            ),
            PhaseKind::Fit => format!(
                "fit a fresh student to the exact teacher: {} samples (--fit-samples)",
                p.samples
            ),
            _ => format!("{}: {} samples", p.name(), p.samples),
        })
        .collect();
    eprintln!(
        "plan: {}; {total} samples in all, batch {}",
        parts.join(", then "),
        run.cfg.batch
    );
}

/// A flag a new run needs (clap asks for it unless --resume is given).
fn required<'a, T>(v: &'a Option<T>, flag: &str) -> anyhow::Result<&'a T> {
    v.as_ref().ok_or_else(|| {
        anyhow::anyhow!("{flag} is required for a new run (only --resume may leave it out)")
    })
}

pub(super) fn parse_split(s: &str) -> anyhow::Result<Vec<f64>> {
    super::flags::phase_split(s).map_err(|e| anyhow::anyhow!(e))
}

/// `--resume` takes a run's options from its state; a flag that says otherwise is an error
/// (it would be silently ignored), except the ones that may change on resume.
pub(super) fn refuse_differences(out: &std::path::Path, diffs: Vec<String>) -> anyhow::Result<()> {
    if diffs.is_empty() {
        return Ok(());
    }
    bail!(
        "--resume continues the run in {} with the options it was started with, and these differ: {}; leave them out or give the run's values (only --lr, --ckpt-every, --device and, for a teacher, --train-samples may change on resume), or choose another --out for a new run",
        out.display(),
        diffs.join(", "),
    )
}

pub(super) fn differs<T: PartialEq + std::fmt::Display>(
    diffs: &mut Vec<String>,
    flag: &str,
    given: Option<T>,
    has: T,
) {
    if let Some(g) = given
        && g != has
    {
        diffs.push(format!("{flag} {g} (the run has {has})"));
    }
}

pub(super) fn check_distill_resume(cfg: &DistillConfig, a: &DistillArgs) -> anyhow::Result<()> {
    use crate::engine::schedule::Schedule;
    let mut d = vec![];
    differs(&mut d, "--data", a.data.as_deref(), cfg.data.as_str());
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
    if let Some(m) = a.method {
        let m: Method = m.into();
        if m != cfg.method {
            d.push(format!("--method {m:?} (the run has {:?})", cfg.method).to_lowercase());
        }
    }
    if let Some(s) = &a.schedule
        && Schedule::parse(s)? != Schedule::parse(&cfg.schedule)?
    {
        d.push(format!("--schedule {s} (the run has {})", cfg.schedule));
    }
    differs(
        &mut d,
        "--train-samples",
        a.train_samples,
        cfg.train_samples,
    );
    // a model teacher or --init sets the network and skips the fit
    let fresh = cfg.teacher == "exact" && cfg.init.is_none();
    if fresh {
        differs(&mut d, "--fit-samples", a.fit_samples, cfg.fit_samples);
        if let crate::engine::model::NetConfig::Mlp(m) = &cfg.net {
            differs(&mut d, "--hidden", a.hidden, m.hidden);
        }
    }
    differs(&mut d, "--batch", a.batch, cfg.batch);
    differs(&mut d, "--seed", a.seed, cfg.seed);
    if let Some(p) = a.param {
        let p: Param = p.into();
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
    if let Some(s) = &a.phase_split
        && Some(parse_split(s)?) != cfg.phase_split
    {
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
    refuse_differences(&a.out, d)
}

/// A finished run has nothing to resume (its model is there).
pub(super) fn refuse_finished(run: &Run, out: &std::path::Path, model: &str) -> anyhow::Result<()> {
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
pub(super) fn resume_changes(run: &mut Run, lr: Option<f64>, ckpt_every: Option<u64>, say: bool) {
    if let Some(lr) = lr
        && lr != run.cfg.adam.lr
    {
        if say {
            eprintln!("--lr: {} -> {lr} (changed on resume)", run.cfg.adam.lr);
        }
        run.cfg.adam.lr = lr;
    }
    if let Some(c) = ckpt_every {
        run.cfg.ckpt_every = c;
    }
}

/// Options distill and teacher share.
pub(super) fn apply_common(
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
pub(super) fn new_run(
    cfg: DistillConfig,
    out: &std::path::Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<Run> {
    if out.join(crate::engine::distill::STATE_FILE).exists() {
        bail!(
            "{} already holds a run; use --resume to continue it or choose another --out",
            out.display()
        );
    }
    Ok(Run::new_with(cfg, out, device, &open_model)?)
}

/// Draw the loss curve of a finished run and return its model; report an interruption.
pub(super) fn report(
    outcome: Outcome,
    out: &std::path::Path,
    title: &str,
) -> anyhow::Result<Option<PathBuf>> {
    match outcome {
        Outcome::Finished { student } => {
            let pts = plot::read_loss_csv(&out.join(crate::engine::distill::LOSS_FILE));
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
pub(super) struct TeacherProgress {
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

pub(super) fn teacher(a: TeacherArgs, ranks: Ranks) -> anyhow::Result<()> {
    let say = speaks(&ranks);
    let dev = pick_rank_device(a.device, &ranks, say);
    let label = dev.as_ref().map(|d| d.label.clone()).unwrap_or_default();
    let setup = dev.and_then(|d| teacher_setup(&a, say, &d));
    let mut run = start_together(&ranks, setup, "teacher", a.resume, a.stop_after)?;
    say_devices(&ranks, &label)?;
    let data = Data::parse(&run.cfg.data)?;
    let n = if data.is_images() { 16 } else { 2000 };
    run.preview = Some(crate::engine::distill::PreviewSpec {
        every: run.cfg.ckpt_every,
        noise: noise(1, n, data.dim()),
    });
    if !say {
        run.run(a.resume, &mut silent, a.stop_after)?;
        return Ok(());
    }
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

/// A teacher run from the flags (a new one, or the one in --out with --resume).
fn teacher_setup(a: &TeacherArgs, say: bool, dev: &Picked) -> anyhow::Result<Run> {
    let run = if a.resume {
        let mut r = Run::open(&a.out, &dev.device)?;
        check_teacher_resume(&r.cfg, a)?;
        if let Some(budget) = a.train_samples.filter(|&b| b != r.cfg.fit_samples) {
            if say {
                eprintln!(
                    "budget: {} -> {budget} samples (changed on resume)",
                    r.cfg.fit_samples
                );
            }
            r = Run::open_with_budget(&a.out, &dev.device, budget)?;
        }
        refuse_finished(&r, &a.out, crate::engine::distill::TEACHER_FILE)?;
        resume_changes(&mut r, a.lr, a.ckpt_every, say);
        r
    } else {
        let data = Data::parse(required(&a.data, "--data")?)?;
        let param: Param = a.param.unwrap_or(ParamArg::Vp).into();
        let mut cfg = DistillConfig::new(&data, param);
        cfg.method = Method::Teacher;
        cfg.teacher = "data".into();
        cfg.fit_samples = *required(&a.train_samples, "--train-samples")?;
        cfg.train_samples = 0;
        apply_common(&mut cfg, a.seed.unwrap_or(0), a.batch, a.lr, a.ckpt_every)?;
        let size = a.size.unwrap_or(SizeArg::Small).name();
        if let crate::engine::model::NetConfig::Unet(u) = &cfg.net {
            let Some(u) = crate::engine::model::UnetConfig::preset(
                size, u.channels, u.height, u.width, param,
            ) else {
                bail!("--size {size}: expected tiny, small or large");
            };
            cfg.net = crate::engine::model::NetConfig::Unet(u);
        }
        new_run(cfg, &a.out, &dev.device)?
    };
    Ok(run)
}

pub(super) fn check_teacher_resume(cfg: &DistillConfig, a: &TeacherArgs) -> anyhow::Result<()> {
    let mut d = vec![];
    differs(&mut d, "--data", a.data.as_deref(), cfg.data.as_str());
    differs(&mut d, "--batch", a.batch, cfg.batch);
    differs(&mut d, "--seed", a.seed, cfg.seed);
    if let Some(p) = a.param {
        let p: Param = p.into();
        if p != cfg.param {
            d.push(format!("--param {p:?} (the run has {:?})", cfg.param).to_lowercase());
        }
    }
    if let (Some(size), crate::engine::model::NetConfig::Unet(u)) = (a.size, &cfg.net) {
        let size = size.name();
        let want =
            crate::engine::model::UnetConfig::preset(size, u.channels, u.height, u.width, u.param);
        if want.as_ref() != Some(u) {
            d.push(format!("--size {size} (the run has another network)"));
        }
    }
    refuse_differences(&a.out, d)
}
