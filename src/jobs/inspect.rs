//! What a model file or a samples file is, from its metadata alone (nothing is sampled):
//! `tract-studio inspect` and `list`, and `eval`'s default `--data`.

use std::path::Path;

use crate::engine::checkpoint::{CHECKSUM_KEY, META_KEY};
use crate::engine::model::NetConfig;
use crate::{Error, Result};

/// Everything a model file says about itself.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelInfo {
    /// what was asked for (a path, asset:NAME or diffusers:DIR)
    pub spec: String,
    /// "teacher", "tract", "btd", "fit"
    pub kind: String,
    pub data: String,
    /// "vp" or "ve"
    pub param: String,
    /// the base grid T the model samples on
    pub grid_steps: usize,
    /// the steps it was distilled for (T for a teacher)
    pub steps: usize,
    /// the distillation schedule (empty for a teacher)
    pub schedule: String,
    /// the training budget in samples
    pub train_samples: u64,
    /// "mlp", "unet" or "diffusers", with its configuration in words
    pub network: String,
    /// the shape of one sample
    pub shape: Vec<usize>,
    pub parameters: usize,
    /// how the weights are stored: F32, F16 (diffusers folders: their own)
    pub dtype: String,
    /// FNV-1a-64 over metadata and tensors, as the file carries it (None: none stored)
    pub checksum: Option<String>,
    /// the file's size in bytes (None for a diffusers folder)
    pub bytes: Option<u64>,
    /// x0 clipped to [-1, 1] in the DDIM steps (image models)
    pub clip_x0: bool,
    /// the diffusers scheduler (diffusers:DIR and students distilled from one)
    pub scheduler: Option<String>,
}

/// Read a model (a path, `asset:NAME` or `diffusers:DIR`) as `generate::model_file` does, and
/// describe it.
pub fn model_info(spec: &str) -> Result<ModelInfo> {
    let file = crate::jobs::generate::model_file(spec)?;
    let m = &file.meta;
    // the stored dtype and checksum are in the raw file, not in the loaded model
    let raw: Option<Vec<u8>> = if spec.starts_with("diffusers:") {
        None
    } else if let Some(name) = spec.strip_prefix("asset:") {
        crate::jobs::assets::bytes(name).map(|b| b.to_vec())
    } else {
        Some(crate::engine::error::read_file(Path::new(spec))?)
    };
    let (dtype, checksum) = match &raw {
        Some(b) => stored(spec, b)?,
        None => {
            let dtype = crate::engine::pipeline::load(spec.trim_start_matches("diffusers:"))
                .map(|(_, d)| d)
                .unwrap_or_else(|_| "?".into());
            (dtype, None)
        }
    };
    let net = m.net();
    let shape = match net.as_ref().and_then(|n| n.image_shape()) {
        Some(s) => s.to_vec(),
        None => vec![m.dim()],
    };
    let network = match &net {
        Some(NetConfig::Mlp(c)) => format!("MLP: {} blocks of {} units", c.blocks, c.hidden),
        Some(NetConfig::Unet(u)) => format!(
            "UNet: {} base channels, multipliers {:?}, {} res block{} per level, {} groups{}",
            u.base,
            u.mults,
            u.blocks,
            if u.blocks == 1 { "" } else { "s" },
            u.groups,
            if u.attention { ", attention" } else { "" }
        ),
        Some(NetConfig::Diffusers(d)) => format!(
            "diffusers UNet2DModel: channels {:?}, {} layers per block, {} prediction",
            d.block_out_channels,
            d.layers_per_block,
            d.prediction.name()
        ),
        None => "none".into(),
    };
    Ok(ModelInfo {
        spec: spec.to_string(),
        kind: m.kind.clone(),
        data: m.data.clone(),
        param: format!("{:?}", m.param).to_lowercase(),
        grid_steps: m.grid_steps,
        steps: m.steps,
        schedule: m.schedule.clone(),
        train_samples: m.train_samples,
        network,
        shape,
        parameters: file.flat.len(),
        dtype,
        checksum,
        bytes: raw.as_ref().map(|b| b.len() as u64),
        clip_x0: m.clip_x0,
        scheduler: m.ddpm.map(|d| {
            format!(
                "DDIM on {} training steps, {:?} spacing{}",
                d.train_steps,
                d.spacing,
                if d.clip.is_some() { ", x0 clipped" } else { "" }
            )
        }),
    })
}

/// The stored dtype(s) of the tensors and the checksum in the metadata of a safetensors file.
fn stored(spec: &str, bytes: &[u8]) -> Result<(String, Option<String>)> {
    let bad = |e: safetensors::SafeTensorError| {
        Error::file(
            spec,
            format!("not a valid safetensors file (truncated or another format?): {e}"),
        )
    };
    let (_, md) = safetensors::SafeTensors::read_metadata(bytes).map_err(bad)?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut dtypes: Vec<String> = st
        .tensors()
        .iter()
        .map(|(_, t)| format!("{:?}", t.dtype()))
        .collect();
    dtypes.sort();
    dtypes.dedup();
    let checksum = md
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CHECKSUM_KEY).cloned());
    Ok((dtypes.join("+"), checksum))
}

/// The metadata `tract-studio sample` wrote into a samples file ({"model", "steps", "seed",
/// "n", "data"}); `Null` when the file has none.
pub fn samples_meta(path: &Path) -> Result<serde_json::Value> {
    let bytes = crate::engine::error::read_file(path)?;
    let (_, md) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
        Error::file(
            path,
            format!("not a valid safetensors file (truncated or another format?): {e}"),
        )
    })?;
    Ok(md
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(serde_json::Value::Null))
}

/// One shipped model: its manifest entry and what the file says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Shipped {
    /// `asset:FILE`, as every command takes it
    pub spec: String,
    /// the manifest's name
    pub name: String,
    pub info: ModelInfo,
}

/// Every shipped model of the manifest (assets/manifest.json), described from its own file,
/// and the classifier `eval` uses.
pub fn shipped() -> Result<Vec<Shipped>> {
    let mut v = vec![];
    for e in crate::jobs::assets::manifest() {
        let spec = format!("asset:{}", e.path.trim_start_matches("asset:"));
        let info = model_info(&spec)?;
        v.push(Shipped {
            spec,
            name: e.name,
            info,
        });
    }
    Ok(v)
}
