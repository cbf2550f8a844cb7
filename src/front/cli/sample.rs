//! `sample` and `gallery`: samples of any model from seeded noise, as a file, a scatter, an
//! image grid, or one picture comparing models and step counts.

use std::path::PathBuf;

use anyhow::bail;

use super::choices::{DeviceArg, DtypeArg, FormatArg, ParamArg, SolverArg, SpacingArg, pick};
use super::progress::Progress;
use super::{MAX_N, MAX_SAMPLE_VALUES, MAX_STEPS, count, examples, pick_device};
use crate::engine::diffusion::Solver;
use crate::engine::schedule::Param;
use crate::jobs::gallery::GalleryModel;
use crate::jobs::generate::{Model, noise, read_samples, write_samples};
use crate::jobs::plot;

/// `sample --n` without the flag: a grid's worth of images, enough 2-D points for the metrics.
pub(super) const DEFAULT_N_IMAGES: usize = 64;
pub(super) const DEFAULT_N_POINTS: usize = 10_000;

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("64 images from the shipped 1-step student, and a picture of them", "tract-studio sample --model asset:fashion-mnist-tract-1step.safetensors --out s.safetensors --png s.png"),
    ("the exact mixture teacher at 32 steps, 2,000 points", "tract-studio sample --model exact:toy:ring8 --steps 32 --n 2000 --out ref.safetensors"),
]))]
pub(super) struct SampleArgs {
    /// a model file, asset:NAME (a shipped model, see `list`), diffusers:DIR, or exact:DATA
    /// for the closed-form mixture teacher
    #[arg(long)]
    pub(super) model: String,
    /// sampling steps (default: what the model was distilled for; a teacher's whole grid)
    #[arg(long, value_parser = count(1, MAX_STEPS))]
    pub(super) steps: Option<usize>,
    /// how many samples (default: 64 for image models, 10000 for 2-D data)
    #[arg(long, value_parser = count(1, MAX_N))]
    pub(super) n: Option<usize>,
    /// the noise seed: the same seed and --n give the same noise for every model and step count
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    /// the samples file to write (.safetensors: samples, noise and what made them); a long
    /// job saves what it has every 30 s to OUT's .partial.safetensors, and the same command
    /// continues from there after an interruption, with the same result
    #[arg(long)]
    pub(super) out: PathBuf,
    /// for exact:DATA: the parametrisation
    #[arg(long, default_value = "vp", value_parser = pick::<ParamArg>())]
    pub(super) param: ParamArg,
    /// for exact:DATA: the T-step grid (default 1024 for vp, 40 for ve)
    #[arg(long, value_parser = count(1, MAX_STEPS))]
    pub(super) grid: Option<usize>,
    #[arg(long, default_value = "ddim", value_parser = pick::<SolverArg>())]
    pub(super) solver: SolverArg,
    /// for a diffusers model: the timestep spacing (default: the scheduler config's
    /// timestep_spacing; trailing when it has none)
    #[arg(long, value_parser = pick::<SpacingArg>())]
    pub(super) spacing: Option<SpacingArg>,
    /// also write a picture here: an image grid (the first 64 images) or a scatter plot
    #[arg(long)]
    pub(super) png: Option<PathBuf>,
    #[arg(long, default_value = "auto", value_parser = pick::<DeviceArg>())]
    pub(super) device: DeviceArg,
}

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("every shipped Fashion-MNIST model at 1, 2 and 4 steps", "tract-studio gallery --data fashion-mnist --steps 1,2,4 --out gallery.png"),
    ("the diffusers teacher (at 50 steps on top) and its students", "tract-studio gallery --data fashion-mnist --set diffusers --steps 1,2 --out diffusers.png"),
    ("two students side by side", "tract-studio gallery --models run1/student.safetensors,run2/student.safetensors --steps 1,2 --out compare.png"),
]))]
pub(super) struct GalleryArgs {
    /// model files or asset:NAME, comma separated (a teacher also gets a row at its full grid, on top)
    #[arg(long, value_delimiter = ',')]
    pub(super) models: Vec<String>,
    /// without --models: every shipped model (assets/manifest.json) for this data, teacher first
    #[arg(long)]
    pub(super) data: Option<String>,
    /// with --data: another set of its shipped models (`diffusers`: the diffusers teacher and
    /// its students; default the data's own, else its first, e.g. emoji's diffusers set)
    #[arg(long, requires = "data")]
    pub(super) set: Option<String>,
    /// step counts, one row per model and step count; a student only up to its own step count
    /// (beyond it, it leaves the path it was distilled on), and always at its own
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8", value_parser = count(1, MAX_STEPS))]
    pub(super) steps: Vec<usize>,
    /// column j uses the noise of seed S+j
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    /// columns: one noise seed each
    #[arg(long, default_value_t = 8, value_parser = count(1, 256))]
    pub(super) cols: usize,
    /// pixel scale
    #[arg(long, default_value_t = 2, value_parser = count(1, 16))]
    pub(super) scale: usize,
    /// the picture to write (.png)
    #[arg(long)]
    pub(super) out: PathBuf,
    #[arg(long, default_value = "auto", value_parser = pick::<DeviceArg>())]
    pub(super) device: DeviceArg,
}

/// Seconds between two saves of a sampling job's partial file (`TRACT_SAMPLE_SAVE_S`: 0
/// saves after every chunk of rows).
fn partial_every_s() -> u64 {
    std::env::var("TRACT_SAMPLE_SAVE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// The samples a partial file of the same job holds (empty when there is none, or it is of
/// another job or unreadable: then it is said, and the job starts again).
fn continue_partial(
    partial: &std::path::Path,
    job: &serde_json::Value,
) -> anyhow::Result<Vec<f32>> {
    if !partial.exists() {
        return Ok(Vec::new());
    }
    let found = crate::jobs::inspect::samples_meta(partial)
        .ok()
        .and_then(|m| m.get("partial").cloned());
    if found.as_ref() != Some(job) {
        eprintln!(
            "note: {} is the partial file of another sampling job (another model, steps, seed, n or device); starting again",
            partial.display()
        );
        return Ok(Vec::new());
    }
    match read_samples(partial) {
        Ok((s, _, dim)) => {
            eprintln!(
                "continuing from {}: {} of {} samples already done",
                partial.display(),
                s.len() / dim.max(1),
                job["n"]
            );
            Ok(s)
        }
        Err(e) => {
            eprintln!("note: {e}; starting again");
            Ok(Vec::new())
        }
    }
}

pub(super) fn sample(a: SampleArgs) -> anyhow::Result<()> {
    if a.out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!(
            "--out {}: expected a .safetensors file name",
            a.out.display()
        );
    }
    let dev = pick_device(a.device)?;
    let param: Param = a.param.into();
    let solver: Solver = a.solver.into();
    let mut m = Model::load(&a.model, param, a.grid, &dev.device)?;
    if let Some(sp) = a.spacing {
        m.set_spacing(sp.into())?;
    }
    let images = m.shape().len() == 3;
    let n = a.n.unwrap_or(if images {
        DEFAULT_N_IMAGES
    } else {
        DEFAULT_N_POINTS
    });
    if n.checked_mul(m.dim()).is_none_or(|v| v > MAX_SAMPLE_VALUES) {
        bail!(
            "--n {}: that many samples of dimension {} is more than {MAX_SAMPLE_VALUES} values; sample in parts (--seed S gives other noise)",
            n,
            m.dim()
        );
    }
    let steps = a.steps.unwrap_or(m.native_steps());
    if let Some(d) = m.grid().ddpm
        && steps <= m.grid().steps
    {
        let ts = d.timesteps(steps);
        // a long list (1000 steps) as its ends
        let shown = if ts.len() > 12 {
            let head: Vec<String> = ts[..6].iter().map(|t| t.to_string()).collect();
            let tail: Vec<String> = ts[ts.len() - 3..].iter().map(|t| t.to_string()).collect();
            format!(
                "[{}, ..., {}] ({} in all)",
                head.join(", "),
                tail.join(", "),
                ts.len()
            )
        } else {
            format!("{ts:?}")
        };
        eprintln!(
            "diffusers DDIM (eta 0), {:?} spacing: timesteps {shown}",
            d.spacing
        );
    }
    let z = noise(a.seed, n, m.dim());
    let meta = serde_json::json!({"model": a.model, "steps": steps, "seed": a.seed, "n": n, "data": m.data_spec()});
    // long work is saved as it goes: OUT's .partial file, continued by the same command
    let job = serde_json::json!({
        "fingerprint": m.fingerprint(),
        "steps": steps,
        "seed": a.seed,
        "n": n,
        "solver": format!("{solver:?}"),
        "spacing": m.grid().ddpm.map(|d| format!("{:?}", d.spacing)),
        "rows_at_once": m.chunk_rows(&dev.device),
    });
    let partial = a.out.with_extension("partial.safetensors");
    let done = continue_partial(&partial, &job)?;
    let dim = m.dim();
    let done_rows = done.len() / dim;
    say_plan(&m, n, n - done_rows, steps, solver, a.n.is_none(), &dev)?;
    let prog = Progress::new("sample");
    prog.bar.set_message(format!("{steps} steps"));
    prog.update(done_rows as u64, n as u64);
    let t = std::time::Instant::now();
    let mut saved = std::time::Instant::now();
    let every = partial_every_s();
    let mut save = |so_far: &[f32]| -> crate::Result<()> {
        let rows = so_far.len() / dim;
        prog.update(rows as u64, n as u64);
        if rows < n && saved.elapsed().as_secs() >= every {
            let mut pm = meta.clone();
            pm["partial"] = job.clone();
            write_samples(&partial, so_far, &z[..so_far.len()], &m.shape(), &pm)?;
            saved = std::time::Instant::now();
        }
        Ok(())
    };
    let s = m.sample_parts(&z, steps, solver, &dev.device, done, &mut save)?;
    prog.bar.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    write_samples(&a.out, &s, &z, &m.shape(), &meta)?;
    let _ = std::fs::remove_file(&partial);
    println!(
        "{} samples at {steps} steps in {secs:.2}s -> {}",
        n,
        a.out.display()
    );
    if let Some(png) = a.png {
        let shape = m.shape();
        if shape.len() == 3 {
            let n = n.min(64);
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

/// A duration in words: seconds, minutes or hours.
pub(super) fn duration(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 90.0 * 60.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// Say what `sample` is about to do: samples, steps, network evaluations, and before long work
/// a time estimate for the `left` samples still to make (all `n`, unless a partial file holds
/// the rest) from one step on a small batch (timed here, so it is this machine's).
fn say_plan(
    m: &Model,
    n: usize,
    left: usize,
    steps: usize,
    solver: Solver,
    default_n: bool,
    dev: &crate::engine::device::Picked,
) -> anyhow::Result<()> {
    // Heun: two evaluations a step, one on the last (to sigma = 0)
    let per = match solver {
        Solver::Ddim => steps,
        Solver::Heun => 2 * steps - 1,
    };
    let evals = left as u64 * per as u64;
    let mut line = format!(
        "sampling {n} samples{} at {steps} step{} ({}): {evals} network evaluations{}",
        if default_n { " (the default --n)" } else { "" },
        if steps == 1 { "" } else { "s" },
        format!("{solver:?}").to_uppercase(),
        if left < n {
            format!(" for the {left} still to make")
        } else {
            String::new()
        }
    );
    let rows = left.min(if m.shape().len() == 3 { 64 } else { 4096 });
    if rows > 0 && evals >= 10 * rows as u64 {
        let z = noise(u64::MAX, rows, m.dim());
        // a first call pays for allocations (and on wgpu for compiling the shaders)
        m.sample(&z, 1, Solver::Ddim, &dev.device)?;
        let t = std::time::Instant::now();
        m.sample(&z, 1, Solver::Ddim, &dev.device)?;
        let one = t.elapsed().as_secs_f64();
        let est = one * per as f64 * left.div_ceil(rows) as f64;
        line.push_str(&format!(
            "; about {} on {} (one step on {rows} samples took {:.0} ms)",
            duration(est),
            dev.label,
            one * 1e3
        ));
        if est > 600.0 {
            line.push_str("; fewer samples (--n) or steps (--steps) take less");
        }
    }
    eprintln!("{line}");
    Ok(())
}

pub(super) fn gallery_cmd(a: GalleryArgs) -> anyhow::Result<()> {
    if a.out.extension().and_then(|e| e.to_str()) != Some("png") {
        bail!("--out {}: expected a .png file name", a.out.display());
    }
    if a.steps.contains(&0) {
        bail!("--steps: step counts must be at least 1");
    }
    let models: Vec<GalleryModel> = if a.models.is_empty() {
        let Some(data) = &a.data else {
            bail!("give --models A,B,... or --data DATA (the shipped models for that data)");
        };
        let manifest = crate::jobs::assets::manifest();
        // without --set: the data's first set (its own models, else e.g. emoji's diffusers set)
        let set = a
            .set
            .clone()
            .or_else(|| crate::jobs::assets::default_set(&manifest, data));
        let mut m: Vec<_> = manifest
            .iter()
            .filter(|e| e.is_in(data, set.as_deref()))
            .cloned()
            .collect();
        if m.is_empty() {
            let sets: Vec<String> = crate::jobs::assets::sets(&manifest, data)
                .into_iter()
                .flatten()
                .collect();
            match &a.set {
                Some(s) if !sets.is_empty() => bail!(
                    "--set {s}: no such set of shipped models for {data}; expected one of {}",
                    sets.join(", ")
                ),
                Some(s) => bail!("--set {s}: {data} has no other sets of shipped models"),
                None => bail!("no shipped models for {data} in assets/manifest.json"),
            }
        }
        m.sort_by_key(|e| e.kind != "teacher");
        m.into_iter()
            .map(|e| GalleryModel {
                spec: e.path,
                max_steps: e.max_steps,
            })
            .collect()
    } else {
        a.models.iter().map(|s| GalleryModel::new(s)).collect()
    };
    let dev = pick_device(a.device)?;
    let t = std::time::Instant::now();
    let (rows, shape) = crate::jobs::gallery::rows(&models, &a.steps, a.seed, a.cols, &dev.device)?;
    crate::jobs::gallery::draw(&rows, &shape, a.scale, &a.out)?;
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

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("a student with f16 weights (half the bytes)", "tract-studio convert --model run1/student.safetensors --out student-f16.safetensors"),
]))]
pub(super) struct ConvertArgs {
    /// a model file, asset:NAME or diffusers:DIR (a pipeline folder becomes a model file)
    #[arg(long)]
    pub(super) model: String,
    /// the model file to write
    #[arg(long)]
    pub(super) out: PathBuf,
    /// how the weights are stored
    #[arg(long, default_value = "f16", value_parser = pick::<DtypeArg>())]
    pub(super) dtype: DtypeArg,
    /// record the data the model was trained on (e.g. fashion-mnist for an imported diffusers
    /// teacher, whose folder does not say)
    #[arg(long)]
    pub(super) data: Option<String>,
}

/// `convert`: a model file with its weights stored as f16 (or f32), the same metadata.
pub(super) fn convert_cmd(a: ConvertArgs) -> anyhow::Result<()> {
    use crate::engine::checkpoint::{ModelFile, Storage};
    let storage: Storage = a.dtype.into();
    let mut file = crate::jobs::generate::model_file(&a.model)?;
    if let Some(d) = &a.data {
        crate::engine::data::Data::parse(d)?;
        file.meta.data = d.clone();
    }
    file.save_as(&a.out, storage)?;
    let back = ModelFile::load(&a.out)?;
    let (mut max_abs, mut max_rel) = (0f64, 0f64);
    for (&x, &y) in file.flat.iter().zip(&back.flat) {
        let d = (x as f64 - y as f64).abs();
        max_abs = max_abs.max(d);
        if x != 0.0 {
            max_rel = max_rel.max(d / (x as f64).abs());
        }
    }
    let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}: {} weights stored as {storage:?}, {size} bytes; largest change of a weight {max_abs:.3e} (relative {max_rel:.3e})",
        a.out.display(),
        file.flat.len()
    );
    Ok(())
}

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("a student of a diffusers teacher as a DDIMPipeline folder", "tract-studio export --model run1/student.safetensors --out student-pipeline"),
]))]
pub(super) struct ExportArgs {
    /// a model with a diffusers network: diffusers:DIR, or a student distilled from one
    #[arg(long)]
    pub(super) model: String,
    /// the format to write
    #[arg(long, default_value = "diffusers", value_parser = pick::<FormatArg>())]
    pub(super) format: FormatArg,
    /// the folder to write (model_index.json, unet/, scheduler/, README.md)
    #[arg(long)]
    pub(super) out: PathBuf,
}

pub(super) fn export_cmd(a: ExportArgs) -> anyhow::Result<()> {
    let FormatArg::Diffusers = a.format;
    let file = crate::jobs::generate::model_file(&a.model)?;
    crate::engine::pipeline::export(&file, &a.out)?;
    println!(
        "{}: DDIMPipeline folder ({} {}, {} step{}); in Python: DDIMPipeline.from_pretrained(\"{}\")(num_inference_steps={}, eta=0.0)",
        a.out.display(),
        file.meta.kind,
        file.meta
            .diffusers
            .as_ref()
            .map(|c| c.prediction.name())
            .unwrap_or("-"),
        file.meta.steps,
        if file.meta.steps == 1 { "" } else { "s" },
        a.out.display(),
        file.meta.steps
    );
    Ok(())
}
