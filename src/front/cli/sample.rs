//! `sample` and `gallery`: samples of any model from seeded noise, as a file, a scatter, an
//! image grid, or one picture comparing models and step counts.

use std::path::PathBuf;

use anyhow::bail;

use super::{MAX_N, MAX_SAMPLE_VALUES, MAX_STEPS, count, pick_device};
use crate::engine::diffusion::Solver;
use crate::engine::schedule::Param;
use crate::jobs::generate::{Model, noise, write_samples};
use crate::jobs::plot;

#[derive(clap::Args)]
pub(super) struct SampleArgs {
    /// a model file, or exact:DATA for the closed-form mixture teacher
    #[arg(long)]
    pub(super) model: String,
    /// sampling steps (default: what the model was distilled for)
    #[arg(long, value_parser = count(1, MAX_STEPS))]
    pub(super) steps: Option<usize>,
    #[arg(long, default_value_t = 10_000, value_parser = count(1, MAX_N))]
    pub(super) n: usize,
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    #[arg(long)]
    pub(super) out: PathBuf,
    /// for exact:DATA: vp or ve
    #[arg(long, default_value = "vp")]
    pub(super) param: String,
    /// for exact:DATA: the T-step grid (default 1024 for vp, 40 for ve)
    #[arg(long, value_parser = count(1, MAX_STEPS))]
    pub(super) grid: Option<usize>,
    #[arg(long, default_value = "ddim")]
    pub(super) solver: String,
    /// for a diffusers model: trailing, leading or linspace timesteps (default: the
    /// scheduler config's timestep_spacing; trailing when it has none)
    #[arg(long)]
    pub(super) spacing: Option<String>,
    /// also write a scatter plot here
    #[arg(long)]
    pub(super) png: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    pub(super) device: String,
}

#[derive(clap::Args)]
pub(super) struct GalleryArgs {
    /// model files or asset:NAME, comma separated (a teacher also gets a row at its full grid, on top)
    #[arg(long, value_delimiter = ',')]
    pub(super) models: Vec<String>,
    /// without --models: every shipped model (assets/manifest.json) for this data, teacher first
    #[arg(long)]
    pub(super) data: Option<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8", value_parser = count(1, MAX_STEPS))]
    pub(super) steps: Vec<usize>,
    /// column j uses the noise of seed S+j
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    #[arg(long, default_value_t = 8, value_parser = count(1, 256))]
    pub(super) cols: usize,
    /// pixel scale
    #[arg(long, default_value_t = 2, value_parser = count(1, 16))]
    pub(super) scale: usize,
    #[arg(long)]
    pub(super) out: PathBuf,
    #[arg(long, default_value = "auto")]
    pub(super) device: String,
}

pub(super) fn sample(a: SampleArgs) -> anyhow::Result<()> {
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
    let mut m = Model::load(&a.model, param, a.grid, &dev.device)?;
    if let Some(sp) = &a.spacing {
        m.set_spacing(sp.parse()?)?;
    }
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
    if let Some(d) = m.grid().ddpm {
        if steps <= m.grid().steps {
            eprintln!(
                "diffusers DDIM (eta 0), {:?} spacing: timesteps {:?}",
                d.spacing,
                d.timesteps(steps)
            );
        }
    }
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

pub(super) fn gallery_cmd(a: GalleryArgs) -> anyhow::Result<()> {
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
        let mut m: Vec<_> = crate::jobs::assets::manifest()
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
pub(super) struct ConvertArgs {
    /// a model file (or asset:NAME)
    #[arg(long)]
    pub(super) model: String,
    #[arg(long)]
    pub(super) out: PathBuf,
    /// how the weights are stored: f16 (half the bytes; read back as f32) or f32
    #[arg(long, default_value = "f16")]
    pub(super) dtype: String,
}

/// `convert`: a model file with its weights stored as f16 (or f32), the same metadata.
pub(super) fn convert_cmd(a: ConvertArgs) -> anyhow::Result<()> {
    use crate::engine::checkpoint::{ModelFile, Storage};
    let storage: Storage = a.dtype.parse()?;
    let file = crate::jobs::generate::model_file(&a.model)?;
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
pub(super) struct ExportArgs {
    /// a model with a diffusers network: diffusers:DIR, or a student distilled from one
    #[arg(long)]
    pub(super) model: String,
    /// the format to write: diffusers (a DDIMPipeline folder)
    #[arg(long, default_value = "diffusers")]
    pub(super) format: String,
    /// the folder to write (model_index.json, unet/, scheduler/, README.md)
    #[arg(long)]
    pub(super) out: PathBuf,
}

pub(super) fn export_cmd(a: ExportArgs) -> anyhow::Result<()> {
    if a.format != "diffusers" {
        bail!("--format {}: expected diffusers", a.format);
    }
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
