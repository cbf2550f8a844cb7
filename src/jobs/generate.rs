//! Load any model (`exact:DATA` or a model file) and sample from it at K steps from
//! seeded noise: the same --seed and --n give the same noise for every model and K.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use crate::engine::checkpoint::ModelFile;
use crate::engine::data::Data;
use crate::engine::data::gmm::ExactDenoiser;
use crate::engine::diffusion::{Denoiser, Solver, sample};
use crate::engine::model::{Bound, Net, flat_from_host};
use crate::engine::rng::{Rng, purpose};
use crate::engine::schedule::{Grid, Param, default_steps};
use crate::engine::tensors::{from_vec2, to_vec};
use crate::{Error, Result};

/// A model to sample: the exact denoiser of a data set, or a network from a model file.
// one value per command, never stored in bulk: the variants' sizes do not matter
#[allow(clippy::large_enum_variant)]
pub enum Model {
    Exact {
        data: Data,
        den: ExactDenoiser,
        grid: Grid,
    },
    Net {
        file: ModelFile,
        net: Net,
        flat: Tensor<1>,
        grid: Grid,
    },
}

/// The model file behind a spec: `asset:NAME` (a shipped model), `diffusers:DIR` (a diffusers
/// pipeline folder, see engine::pipeline) or a path.
pub fn model_file(spec: &str) -> Result<ModelFile> {
    match spec.strip_prefix("asset:") {
        Some(name) => {
            let b = crate::jobs::assets::bytes(name)
                .ok_or_else(|| Error::input(format!("no shipped model '{name}'")))?;
            ModelFile::from_bytes(name, b)
        }
        None => crate::engine::pipeline::open(spec),
    }
}

impl Model {
    /// `exact:DATA` (with `param` and `grid_steps`, default 1024 VP / 40 VE) or a model file.
    pub fn load(
        spec: &str,
        param: Param,
        grid_steps: Option<usize>,
        device: &Device,
    ) -> Result<Model> {
        if let Some(d) = spec.strip_prefix("exact:") {
            let data = Data::parse(d)?;
            let den = data.exact()?.exact_denoiser(device);
            let steps = grid_steps.unwrap_or(default_steps(param));
            if steps == 0 || steps > crate::engine::schedule::MAX_STEPS {
                return Err(Error::input(format!(
                    "--grid {steps}: expected 1 to {} steps",
                    crate::engine::schedule::MAX_STEPS
                )));
            }
            return Ok(Model::Exact {
                data,
                den,
                grid: Grid::new(param, steps),
            });
        }
        let file = model_file(spec)?;
        let net = Net::new(
            &file
                .meta
                .net()
                .ok_or_else(|| Error::input(format!("{spec}: no network in the metadata")))?,
        );
        let flat = flat_from_host(file.flat.clone(), device);
        let grid = file.meta.grid();
        Ok(Model::Net {
            file,
            net,
            flat,
            grid,
        })
    }

    /// For a model on a diffusers grid: sample with this timestep spacing.
    pub fn set_spacing(&mut self, spacing: crate::engine::schedule::Spacing) -> Result<()> {
        match self {
            Model::Net {
                grid: Grid { ddpm: Some(d), .. },
                ..
            } => {
                d.spacing = spacing;
                Ok(())
            }
            _ => Err(Error::input(
                "--spacing applies to diffusers models only (diffusers:DIR and their students)",
            )),
        }
    }

    pub fn dim(&self) -> usize {
        match self {
            Model::Exact { data, .. } => data.dim(),
            Model::Net { file, .. } => file.meta.dim(),
        }
    }

    /// Shape of one sample: `[D]`, or `[C, H, W]` for images.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Model::Exact { data, .. } => data.shape(),
            Model::Net { file, .. } => match file.meta.net().and_then(|n| n.image_shape()) {
                Some(s) => s.to_vec(),
                None => vec![file.meta.dim()],
            },
        }
    }

    pub fn grid(&self) -> Grid {
        match self {
            Model::Exact { grid, .. } | Model::Net { grid, .. } => *grid,
        }
    }

    /// The step count the model was made for (T for a teacher).
    pub fn native_steps(&self) -> usize {
        match self {
            Model::Exact { grid, .. } => grid.steps,
            Model::Net { file, .. } => file.meta.steps,
        }
    }

    /// The most steps a gallery samples this model at: its own step count (a teacher's whole
    /// grid; a student, made for its own, leaves the path it was distilled on beyond it: a
    /// 1-step student at 32 steps is noise), or `max_steps` (the manifest's) where less.
    pub fn gallery_steps(&self, max_steps: Option<usize>) -> usize {
        max_steps.unwrap_or(usize::MAX).min(self.native_steps())
    }

    pub fn data_spec(&self) -> &str {
        match self {
            Model::Exact { data, .. } => &data.spec,
            Model::Net { file, .. } => &file.meta.data,
        }
    }

    fn check(&self, noise: &[f32], steps: usize) -> Result<()> {
        let d = self.dim();
        if !noise.len().is_multiple_of(d) {
            return Err(Error::input(format!(
                "noise of {} values is not a multiple of the dimension {d}",
                noise.len()
            )));
        }
        if steps == 0 || steps > self.grid().steps {
            return Err(Error::input(format!(
                "--steps {steps} must be between 1 and the model's grid of {} steps",
                self.grid().steps
            )));
        }
        Ok(())
    }

    /// The denoiser, and whether x0 is clipped in its DDIM steps.
    fn denoiser(&self) -> (Box<dyn Denoiser + '_>, bool) {
        match self {
            Model::Exact { den, .. } => (Box::new(den.clone()), false),
            Model::Net {
                file, net, flat, ..
            } => (
                Box::new(Bound {
                    model: net,
                    params: flat,
                }),
                file.meta.clip_x0,
            ),
        }
    }

    /// The (lazy) sample tensor for a chunk of noise.
    fn sample_tensor(
        &self,
        chunk: &[f32],
        steps: usize,
        solver: Solver,
        device: &Device,
    ) -> Tensor<2> {
        let d = self.dim();
        let eps = from_vec2(chunk.to_vec(), [chunk.len() / d, d], device);
        let (den, clip) = self.denoiser();
        sample(den.as_ref(), eps, &self.grid(), steps, solver, clip)
    }

    /// Rows sampled at once: 4096 on a GPU; on the CPU backend at most 2^17 values per row
    /// block (128 images of 32x32), so a UNet's activations stay below glibc's 32 MiB mmap
    /// threshold and are reused from the heap. With 4096 images each activation was about
    /// 0.5 GB, freshly mapped by every op: as much system time as compute.
    /// A partial samples file holds a whole number of them.
    pub fn chunk_rows(&self, device: &Device) -> usize {
        if crate::engine::kernels::is_flex(device) {
            ((1usize << 17) / self.dim().max(1)).clamp(1, 4096)
        } else {
            4096
        }
    }

    /// Sample from host noise [n, dim] in chunks; returns [n, dim] samples.
    pub fn sample(
        &self,
        noise: &[f32],
        steps: usize,
        solver: Solver,
        device: &Device,
    ) -> Result<Vec<f32>> {
        self.sample_parts(noise, steps, solver, device, Vec::new(), &mut |_| Ok(()))
    }

    /// Sample in chunks of [`Model::chunk_rows`] (as [`Model::sample`] does: it is this with
    /// nothing between chunks, so both give the same bits), continuing after the rows `out`
    /// already holds (a partial file's: a whole number of
    /// chunks, else it starts again), and calling `part(samples so far)` after every chunk.
    pub fn sample_parts(
        &self,
        noise: &[f32],
        steps: usize,
        solver: Solver,
        device: &Device,
        mut out: Vec<f32>,
        part: &mut dyn FnMut(&[f32]) -> Result<()>,
    ) -> Result<Vec<f32>> {
        self.check(noise, steps)?;
        let chunk = self.chunk_rows(device) * self.dim();
        if !out.len().is_multiple_of(chunk) || out.len() > noise.len() {
            out.clear();
        }
        out.reserve(noise.len() - out.len());
        for c in noise[out.len()..].chunks(chunk) {
            out.extend(to_vec(self.sample_tensor(c, steps, solver, device)));
            part(&out)?;
        }
        Ok(out)
    }

    /// What identifies the model's weights (FNV-1a-64 of the weights and the file's
    /// metadata), or the data of an exact denoiser: a partial samples file must be of the
    /// same to be continued.
    pub fn fingerprint(&self) -> String {
        match self {
            Model::Exact { data, .. } => format!("exact:{}", data.spec),
            Model::Net { file, .. } => {
                let mut h = crate::engine::checkpoint::Fnv64::new();
                for v in &file.flat {
                    h.write(&v.to_le_bytes());
                }
                h.write(
                    serde_json::to_string(&file.meta)
                        .unwrap_or_default()
                        .as_bytes(),
                );
                h.hex()
            }
        }
    }

    /// As `sample`, reading results back asynchronously (the browser's main thread must
    /// never block on a GPU read).
    pub async fn sample_async(
        &self,
        noise: &[f32],
        steps: usize,
        solver: Solver,
        device: &Device,
    ) -> Result<Vec<f32>> {
        self.check(noise, steps)?;
        let mut out = Vec::with_capacity(noise.len());
        for chunk in noise.chunks(self.chunk_rows(device) * self.dim()) {
            out.extend(read_async(self.sample_tensor(chunk, steps, solver, device)).await?);
        }
        Ok(out)
    }

    /// As `sample_async`, and the states along the K-step path x_{t_K} .. x_{t_0} of the first
    /// `paths` noise vectors (per state [paths, dim], for drawing trajectories), taken from
    /// the same computation as the samples.
    pub async fn sample_traced_async(
        &self,
        noise: &[f32],
        steps: usize,
        solver: Solver,
        paths: usize,
        device: &Device,
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
        self.check(noise, steps)?;
        let d = self.dim();
        let mut out = Vec::with_capacity(noise.len());
        let mut path = vec![];
        for (c, chunk) in noise.chunks(4096 * d).enumerate() {
            let rows = chunk.len() / d;
            if c > 0 || paths == 0 {
                out.extend(read_async(self.sample_tensor(chunk, steps, solver, device)).await?);
                continue;
            }
            let eps = from_vec2(chunk.to_vec(), [rows, d], device);
            let (den, clip) = self.denoiser();
            let (x, states) = crate::engine::diffusion::sample_traced(
                den.as_ref(),
                eps,
                &self.grid(),
                steps,
                solver,
                clip,
                paths.min(rows),
            );
            out.extend(read_async(x).await?);
            let k = states.len();
            let all = read_async(Tensor::cat(states, 0)).await?;
            path = all.chunks(all.len() / k).map(|c| c.to_vec()).collect();
        }
        Ok((out, path))
    }
}

/// Read a tensor without blocking.
pub async fn read_async<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    crate::engine::tensors::note_read();
    let data = t
        .into_data_async()
        .await
        .map_err(|e| Error::Device(format!("reading a result from the device failed: {e:?}")))?;
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Device(format!("unexpected tensor data: {e:?}")))
}

/// The sampling noise for a seed: identical for every model and step count.
pub fn noise(seed: u64, n: usize, dim: usize) -> Vec<f32> {
    Rng::stream(seed, purpose::SAMPLE_NOISE).normals(n * dim)
}

/// Write `samples` and `noise` as a safetensors file, shaped [N, ...sample shape].
pub fn write_samples(
    path: &Path,
    samples: &[f32],
    noise: &[f32],
    shape: &[usize],
    meta: &serde_json::Value,
) -> Result<()> {
    let dim: usize = shape.iter().product();
    let mut full = vec![samples.len() / dim.max(1)];
    full.extend_from_slice(shape);
    crate::engine::checkpoint::write_tensors(
        path,
        &[
            ("samples".into(), full.clone(), samples.to_vec()),
            ("noise".into(), full, noise.to_vec()),
        ],
        &meta.to_string(),
    )
}

/// Read a samples file: (samples, noise, dim).
pub fn read_samples(path: &Path) -> Result<(Vec<f32>, Vec<f32>, usize)> {
    let bytes = crate::engine::error::read_file(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        Error::file(
            path,
            format!("not a valid safetensors file (truncated or another format?): {e}"),
        )
    })?;
    let (_, md) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
        Error::file(
            path,
            format!("not a valid safetensors file (truncated or another format?): {e}"),
        )
    })?;
    crate::engine::checkpoint::verify_checksum(path, &st, &md)?;
    let t = st.tensor("samples").map_err(|_| {
        Error::file(
            path,
            "no 'samples' tensor; expected a file written by `tract-studio sample`",
        )
    })?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape().len() < 2 {
        return Err(Error::file(
            path,
            format!(
                "'samples' is {:?} {:?}; expected F32 [N, ...]",
                t.dtype(),
                t.shape()
            ),
        ));
    }
    let dim = t.shape()[1..].iter().product();
    let f = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let samples = f(t.data());
    let noise = st.tensor("noise").map(|n| f(n.data())).unwrap_or_default();
    Ok((samples, noise, dim))
}
