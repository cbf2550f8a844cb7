//! diffusers pipeline folders in and out: `diffusers:DIR` teachers (UNet2DModel + a DDPM or
//! DDIM scheduler config) become model files in memory, and a model with a diffusers network
//! is written back as a DDIMPipeline folder that `DDIMPipeline.from_pretrained` loads.
//! Every config field is either supported or must hold diffusers' default; anything else is
//! refused with one line naming the file, the field, its value and what is supported
//! (docs/diffusers.md has the table).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::{Value, json};

use crate::engine::checkpoint::{ModelFile, ModelMeta, Storage, serialize_tensors_as};
use crate::engine::error::{read_file, write_atomic};
use crate::engine::model::{DiffusersUnet, Prediction, Unet2dConfig};
use crate::engine::schedule::{BetaSchedule, Ddpm, MAX_STEPS, Param, Spacing};
use crate::{Error, Result};

const WEIGHTS: &str = "diffusion_pytorch_model.safetensors";

/// Where the parts of a pipeline are.
struct Parts {
    unet_dir: PathBuf,
    scheduler: PathBuf,
}

/// `DIR` (a pipeline folder, or a unet folder with scheduler_config.json beside it or in
/// ../scheduler/) or `DIR,SCHEDULER_CONFIG`.
fn parts(spec: &str) -> Result<Parts> {
    let (dir, sched) = match spec.split_once(',') {
        Some((d, s)) => (PathBuf::from(d), Some(PathBuf::from(s))),
        None => (PathBuf::from(spec), None),
    };
    if !dir.is_dir() {
        return Err(Error::file(
            &dir,
            "no such folder; expected a diffusers pipeline folder (model_index.json, unet/, scheduler/)",
        ));
    }
    let unet_dir = if dir.join("unet").join("config.json").is_file() {
        dir.join("unet")
    } else if dir.join("config.json").is_file() {
        dir.clone()
    } else {
        return Err(Error::file(
            &dir,
            "not a diffusers folder: neither unet/config.json nor config.json is there; expected a pipeline folder (model_index.json, unet/, scheduler/) or a unet folder",
        ));
    };
    let scheduler = match sched {
        Some(s) => s,
        None => {
            let cands = [
                dir.join("scheduler").join("scheduler_config.json"),
                unet_dir.join("scheduler_config.json"),
                unet_dir
                    .join("..")
                    .join("scheduler")
                    .join("scheduler_config.json"),
            ];
            match cands.iter().find(|c| c.is_file()) {
                Some(c) => c.clone(),
                None => {
                    return Err(Error::file(
                        &dir,
                        "no scheduler config (looked for scheduler/scheduler_config.json and scheduler_config.json); give it as diffusers:DIR,PATH/scheduler_config.json",
                    ));
                }
            }
        }
    };
    Ok(Parts {
        unet_dir,
        scheduler,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let bytes = read_file(path)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::file(
            path,
            "not a JSON object; expected a diffusers config",
        )),
        Err(e) => Err(Error::file(path, format!("not valid JSON: {e}"))),
    }
}

/// Reads fields of one config file, each with diffusers' default, and remembers which
/// fields it has seen so that the rest can be checked against their defaults.
struct Fields<'a> {
    path: &'a Path,
    m: &'a serde_json::Map<String, Value>,
    seen: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn bad(&self, key: &str, v: &Value, supported: &str) -> Error {
        Error::file(
            self.path,
            format!("field '{key}' is {v}; supported: {supported}"),
        )
    }
    fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        self.m.get(key)
    }
    fn usize(&mut self, key: &'static str, default: usize) -> Result<usize> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| self.bad(key, v, "a whole number")),
        }
    }
    fn f64(&mut self, key: &'static str, default: f64) -> Result<f64> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.bad(key, v, "a number")),
        }
    }
    fn bool(&mut self, key: &'static str, default: bool) -> Result<bool> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.bad(key, v, "true or false")),
        }
    }
    fn str(&mut self, key: &'static str, default: &'static str) -> Result<String> {
        match self.raw(key) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(String::from)
                .ok_or_else(|| self.bad(key, v, "a string")),
        }
    }
    /// A field that must hold one of `allowed` (absent: its default, which is allowed).
    fn only(&mut self, key: &'static str, allowed: &[Value]) -> Result<()> {
        if let Some(v) = self.raw(key)
            && !allowed.contains(v)
        {
            let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            return Err(self.bad(key, v, &list.join(" or ")));
        }
        Ok(())
    }
    /// Every field not read must be metadata (`_...`) or a field this tool ignores.
    fn rest(&self, ignored: &[&str]) -> Result<()> {
        for (k, v) in self.m {
            if k.starts_with('_')
                || self.seen.contains(&k.as_str())
                || ignored.contains(&k.as_str())
            {
                continue;
            }
            return Err(Error::file(
                self.path,
                format!(
                    "field '{k}' ({v}) is not supported by tract-studio's UNet2DModel/scheduler import"
                ),
            ));
        }
        Ok(())
    }
}

/// A UNet2DModel config.json, checked.
pub fn unet_config(path: &Path, prediction: Prediction) -> Result<Unet2dConfig> {
    let m = read_json(path)?;
    let mut f = Fields {
        path,
        m: &m,
        seen: vec![],
    };
    if let Some(c) = m.get("_class_name")
        && c != "UNet2DModel"
    {
        return Err(f.bad("_class_name", c, "\"UNet2DModel\""));
    }
    let (height, width) = match f.raw("sample_size") {
        None | Some(Value::Null) => {
            return Err(Error::file(
                path,
                "field 'sample_size' is missing; expected the image size (an integer or [height, width])",
            ));
        }
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            let s = n.as_u64().unwrap_or(0) as usize;
            (s, s)
        }
        Some(Value::Array(a)) if a.len() == 2 && a.iter().all(|x| x.as_u64().is_some()) => (
            a[0].as_u64().unwrap_or(0) as usize,
            a[1].as_u64().unwrap_or(0) as usize,
        ),
        Some(v) => return Err(f.bad("sample_size", v, "an integer or [height, width]")),
    };
    let in_channels = f.usize("in_channels", 3)?;
    let out_channels = f.usize("out_channels", 3)?;
    if out_channels != in_channels {
        return Err(Error::file(
            path,
            format!(
                "out_channels {out_channels} differs from in_channels {in_channels}; a diffusion UNet predicts a tensor of its input's shape"
            ),
        ));
    }
    let block_out_channels: Vec<usize> = match f.raw("block_out_channels") {
        None => vec![224, 448, 672, 896],
        Some(Value::Array(a)) if a.iter().all(|x| x.as_u64().is_some()) => {
            a.iter().map(|x| x.as_u64().unwrap_or(0) as usize).collect()
        }
        Some(v) => return Err(f.bad("block_out_channels", v, "a list of whole numbers")),
    };
    let blocks = |f: &mut Fields,
                  key: &'static str,
                  plain: &str,
                  attn: &str,
                  default: Vec<bool>|
     -> Result<Vec<bool>> {
        match f.raw(key) {
            None => Ok(default),
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| match t.as_str() {
                    Some(s) if s == plain => Ok(false),
                    Some(s) if s == attn => Ok(true),
                    _ => Err(f.bad(key, t, &format!("\"{plain}\" or \"{attn}\" in each place"))),
                })
                .collect(),
            Some(v) => Err(f.bad(key, v, "a list of block type names")),
        }
    };
    let down_attention = blocks(
        &mut f,
        "down_block_types",
        "DownBlock2D",
        "AttnDownBlock2D",
        vec![false, true, true, true],
    )?;
    let up_attention = blocks(
        &mut f,
        "up_block_types",
        "UpBlock2D",
        "AttnUpBlock2D",
        vec![true, true, true, false],
    )?;
    let layers_per_block = f.usize("layers_per_block", 2)?;
    let attention_head_dim =
        match f.raw("attention_head_dim") {
            None => Some(8),
            Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                f.bad("attention_head_dim", v, "null (one head) or a whole number")
            })? as usize),
        };
    let norm_num_groups = match f.raw("norm_num_groups") {
        None => 32,
        Some(v) => v.as_u64().ok_or_else(|| {
            f.bad(
                "norm_num_groups",
                v,
                "a whole number (null is not supported)",
            )
        })? as usize,
    };
    let norm_eps = f.f64("norm_eps", 1e-5)?;
    let downsample_padding = f.usize("downsample_padding", 1)?;
    let flip_sin_to_cos = f.bool("flip_sin_to_cos", true)?;
    let freq_shift = match f.raw("freq_shift") {
        None => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| f.bad("freq_shift", v, "a whole number"))?,
    };
    let mid_attention = f.bool("add_attention", true)?;
    f.only("center_input_sample", &[json!(false)])?;
    f.only("time_embedding_type", &[json!("positional")])?;
    f.only("time_embedding_dim", &[Value::Null])?;
    f.only("mid_block_type", &[json!("UNetMidBlock2D")])?;
    f.only("mid_block_scale_factor", &[json!(1), json!(1.0)])?;
    f.only("downsample_type", &[json!("conv")])?;
    f.only("upsample_type", &[json!("conv")])?;
    f.only("act_fn", &[json!("silu")])?;
    f.only("attn_norm_num_groups", &[Value::Null])?;
    f.only("resnet_time_scale_shift", &[json!("default")])?;
    f.only("class_embed_type", &[Value::Null])?;
    f.only("num_class_embeds", &[Value::Null])?;
    // dropout only acts in training, which here never uses it; num_train_timesteps only
    // matters for the fourier embedding, which is refused above
    f.rest(&["dropout", "num_train_timesteps"])?;
    let cfg = Unet2dConfig {
        in_channels,
        out_channels,
        height,
        width,
        block_out_channels,
        layers_per_block,
        down_attention,
        up_attention,
        mid_attention,
        attention_head_dim,
        norm_num_groups,
        norm_eps,
        downsample_padding,
        flip_sin_to_cos,
        freq_shift,
        prediction,
    };
    if let Some(p) = cfg.problem() {
        return Err(Error::file(path, p));
    }
    Ok(cfg)
}

/// A DDPMScheduler / DDIMScheduler config, as DDIMScheduler reads it (its defaults for
/// absent fields, except the spacing: absent means trailing, the tool's default).
pub fn scheduler_config(path: &Path) -> Result<(Ddpm, Prediction)> {
    let m = read_json(path)?;
    let mut f = Fields {
        path,
        m: &m,
        seen: vec![],
    };
    let train_steps = f.usize("num_train_timesteps", 1000)?;
    if !(1..=MAX_STEPS).contains(&train_steps) {
        return Err(f.bad(
            "num_train_timesteps",
            &json!(train_steps),
            &format!("1 to {MAX_STEPS}"),
        ));
    }
    let beta_start = f.f64("beta_start", 0.0001)?;
    let beta_end = f.f64("beta_end", 0.02)?;
    let bs = f.str("beta_schedule", "linear")?;
    let beta_schedule = match bs.as_str() {
        "linear" => BetaSchedule::Linear,
        "scaled_linear" => BetaSchedule::ScaledLinear,
        "squaredcos_cap_v2" => BetaSchedule::SquaredcosCapV2,
        _ => {
            return Err(f.bad(
                "beta_schedule",
                &json!(bs),
                "\"linear\", \"scaled_linear\" or \"squaredcos_cap_v2\"",
            ));
        }
    };
    if beta_schedule != BetaSchedule::SquaredcosCapV2
        && !(0.0 < beta_start && beta_start <= beta_end && beta_end < 1.0)
    {
        return Err(Error::file(
            path,
            format!(
                "beta_start {beta_start} and beta_end {beta_end}: expected 0 < beta_start <= beta_end < 1"
            ),
        ));
    }
    let pt = f.str("prediction_type", "epsilon")?;
    let prediction = Prediction::parse(&pt).ok_or_else(|| {
        f.bad(
            "prediction_type",
            &json!(pt),
            "\"epsilon\", \"v_prediction\" or \"sample\"",
        )
    })?;
    let clip_sample = f.bool("clip_sample", true)?;
    let range = f.f64("clip_sample_range", 1.0)?;
    if clip_sample && (range.is_nan() || range <= 0.0) {
        return Err(f.bad("clip_sample_range", &json!(range), "a positive number"));
    }
    let set_alpha_to_one = f.bool("set_alpha_to_one", true)?;
    let steps_offset = f.usize("steps_offset", 0)?;
    let sp = f.str("timestep_spacing", "trailing")?;
    let spacing: Spacing = sp.parse().map_err(|_| {
        f.bad(
            "timestep_spacing",
            &json!(sp),
            "\"trailing\", \"leading\" or \"linspace\"",
        )
    })?;
    f.only("trained_betas", &[Value::Null])?;
    f.only("thresholding", &[json!(false)])?;
    f.only("rescale_betas_zero_snr", &[json!(false)])?;
    // DDPMScheduler's stochastic-sampling and thresholding fields do not act in DDIM (eta 0)
    // or are off
    f.rest(&[
        "variance_type",
        "dynamic_thresholding_ratio",
        "sample_max_value",
    ])?;
    Ok((
        Ddpm {
            train_steps,
            beta_schedule,
            beta_start,
            beta_end,
            set_alpha_to_one,
            spacing,
            steps_offset,
            clip: clip_sample.then_some(range),
        },
        prediction,
    ))
}

/// The safetensors files that hold the weights: one file, or the shards of an index.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(format!("{WEIGHTS}.index.json"));
    if index.is_file() {
        let m = read_json(&index)?;
        let Some(Value::Object(map)) = m.get("weight_map") else {
            return Err(Error::file(
                &index,
                "no 'weight_map' object; expected a sharded safetensors index",
            ));
        };
        let mut files: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    for variant in ["fp16", "bf16"] {
        let p = dir.join(format!("diffusion_pytorch_model.{variant}.safetensors"));
        if p.is_file() {
            return Ok(vec![p]);
        }
    }
    if dir.join("diffusion_pytorch_model.bin").is_file() {
        return Err(Error::file(
            dir,
            "only diffusion_pytorch_model.bin (a pickle) is here; tract-studio reads safetensors. Convert once with: python3 -c \"from diffusers import UNet2DModel as U; U.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\" (DIR = this folder)",
        ));
    }
    Err(Error::file(
        dir,
        format!("no weights: expected {WEIGHTS} or its .index.json with shards"),
    ))
}

/// A current parameter name for a legacy one (google/ddpm-* files still carry
/// query/key/value/proj_attn, which diffusers renames on load).
fn modern_name(name: &str) -> String {
    for (old, new) in [
        (".query.", ".to_q."),
        (".key.", ".to_k."),
        (".value.", ".to_v."),
        (".proj_attn.", ".to_out.0."),
    ] {
        if name.contains(old) {
            return name.replacen(old, new, 1);
        }
    }
    name.to_string()
}

fn to_f32(path: &Path, name: &str, dtype: Dtype, b: &[u8]) -> Result<Vec<f32>> {
    crate::engine::checkpoint::float_values(dtype, b).ok_or_else(|| {
        Error::file(
            path,
            format!("tensor '{name}' is {dtype:?}; supported: F32, F16, BF16"),
        )
    })
}

/// The weights of `net`, read from the folder's safetensors file(s); (flat, stored dtype).
fn read_weights(dir: &Path, net: &DiffusersUnet) -> Result<(Vec<f32>, String, Option<ModelMeta>)> {
    let layout = net.layout();
    let mut found: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut dtypes = vec![];
    let mut ours = None;
    for file in weight_files(dir)? {
        let bytes = read_file(&file)?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::file(&file, format!("not a valid safetensors file: {e}")))?;
        // a folder tract-studio exported: its own description of the model (kind, steps)
        if let Ok((_, md)) = SafeTensors::read_metadata(&bytes)
            && let Some(m) = md
                .metadata()
                .as_ref()
                .and_then(|m| m.get(crate::engine::checkpoint::META_KEY))
        {
            ours = serde_json::from_str::<ModelMeta>(m).ok();
        }
        for (name, t) in st.tensors() {
            let key = modern_name(&name);
            let Some(i) = layout.names.iter().position(|n| *n == key) else {
                return Err(Error::file(
                    &file,
                    format!(
                        "tensor '{name}' is not part of the network config.json describes (weights of another model, or another configuration?)"
                    ),
                ));
            };
            if t.shape() != layout.shapes[i].as_slice() {
                return Err(Error::file(
                    &file,
                    format!(
                        "tensor '{name}' has shape {:?}, config.json implies {:?} (weights of another model?)",
                        t.shape(),
                        layout.shapes[i]
                    ),
                ));
            }
            let v = to_f32(&file, &name, t.dtype(), t.data())?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(Error::file(
                    &file,
                    format!("tensor '{name}' contains NaN or infinity"),
                ));
            }
            dtypes.push(format!("{:?}", t.dtype()).to_lowercase());
            found.insert(key, v);
        }
    }
    let mut flat = Vec::with_capacity(layout.total);
    for n in &layout.names {
        match found.remove(n) {
            Some(v) => flat.extend(v),
            None => {
                return Err(Error::file(
                    dir,
                    format!("tensor '{n}' is missing from the weights (config.json needs it)"),
                ));
            }
        }
    }
    dtypes.sort();
    dtypes.dedup();
    Ok((flat, dtypes.join("+"), ours))
}

/// A diffusers pipeline (spec as in `parts`) as a model file: a teacher on the scheduler's
/// grid, with the stored dtype of its weights.
pub fn load(spec: &str) -> Result<(ModelFile, String)> {
    let p = parts(spec)?;
    let (ddpm, prediction) = scheduler_config(&p.scheduler)?;
    let cfg = unet_config(&p.unet_dir.join("config.json"), prediction)?;
    let net = DiffusersUnet::new(cfg.clone());
    let (flat, dtype, ours) = read_weights(&p.unet_dir, &net)?;
    let mut meta = ModelMeta {
        format: "tract-studio-model/1".into(),
        mlp: None,
        unet: None,
        diffusers: Some(cfg),
        ddpm: Some(ddpm),
        param: Param::Vp,
        grid_steps: ddpm.train_steps,
        steps: ddpm.train_steps,
        data: format!("diffusers:{spec}"),
        kind: "teacher".into(),
        schedule: String::new(),
        train_samples: 0,
        clip_x0: ddpm.clip.is_some(),
    };
    if let Some(o) = ours.filter(|o| (1..=meta.grid_steps).contains(&o.steps)) {
        (meta.kind, meta.steps, meta.schedule) = (o.kind, o.steps, o.schedule);
        (meta.data, meta.train_samples) = (o.data, o.train_samples);
    }
    Ok((ModelFile { meta, flat }, dtype))
}

/// A model file by path, or a diffusers pipeline folder (`diffusers:DIR`): the one place the
/// engine resolves a model spec (`jobs::generate::model_file` adds shipped `asset:` models).
pub fn open(spec: &str) -> Result<ModelFile> {
    match spec.strip_prefix("diffusers:") {
        Some(dir) => load(dir).map(|(f, _)| f),
        None => ModelFile::load(Path::new(spec)),
    }
}

/// UNet2DModel's config.json for `cfg`, every field written out (diffusers' defaults differ
/// from the DDPM models' for flip_sin_to_cos, freq_shift, norm_eps and attention_head_dim).
pub fn unet_config_json(cfg: &Unet2dConfig) -> Value {
    let n = cfg.block_out_channels.len();
    let down: Vec<&str> = (0..n)
        .map(|i| {
            if cfg.down_attention[i] {
                "AttnDownBlock2D"
            } else {
                "DownBlock2D"
            }
        })
        .collect();
    let up: Vec<&str> = (0..n)
        .map(|i| {
            if cfg.up_attention[i] {
                "AttnUpBlock2D"
            } else {
                "UpBlock2D"
            }
        })
        .collect();
    let sample_size = if cfg.height == cfg.width {
        json!(cfg.height)
    } else {
        json!([cfg.height, cfg.width])
    };
    json!({
        "_class_name": "UNet2DModel",
        "act_fn": "silu",
        "add_attention": cfg.mid_attention,
        "attention_head_dim": cfg.attention_head_dim,
        "attn_norm_num_groups": null,
        "block_out_channels": cfg.block_out_channels,
        "center_input_sample": false,
        "class_embed_type": null,
        "down_block_types": down,
        "downsample_padding": cfg.downsample_padding,
        "downsample_type": "conv",
        "dropout": 0.0,
        "flip_sin_to_cos": cfg.flip_sin_to_cos,
        "freq_shift": cfg.freq_shift,
        "in_channels": cfg.in_channels,
        "layers_per_block": cfg.layers_per_block,
        "mid_block_scale_factor": 1,
        "norm_eps": cfg.norm_eps,
        "norm_num_groups": cfg.norm_num_groups,
        "num_class_embeds": null,
        "out_channels": cfg.out_channels,
        "resnet_time_scale_shift": "default",
        "sample_size": sample_size,
        "time_embedding_type": "positional",
        "up_block_types": up,
        "upsample_type": "conv"
    })
}

/// DDIMScheduler's config for a grid, with trailing spacing (so that K steps start at the
/// last timestep, as the tool samples).
pub fn scheduler_config_json(d: &Ddpm, prediction: Prediction) -> Value {
    let bs = match d.beta_schedule {
        BetaSchedule::Linear => "linear",
        BetaSchedule::ScaledLinear => "scaled_linear",
        BetaSchedule::SquaredcosCapV2 => "squaredcos_cap_v2",
    };
    json!({
        "_class_name": "DDIMScheduler",
        "beta_end": d.beta_end,
        "beta_schedule": bs,
        "beta_start": d.beta_start,
        "clip_sample": d.clip.is_some(),
        "clip_sample_range": d.clip.unwrap_or(1.0),
        "num_train_timesteps": d.train_steps,
        "prediction_type": prediction.name(),
        "rescale_betas_zero_snr": false,
        "set_alpha_to_one": d.set_alpha_to_one,
        "steps_offset": 0,
        "thresholding": false,
        "timestep_spacing": "trailing",
        "trained_betas": null
    })
}

/// Write a model with a diffusers network as a DDIMPipeline folder: model_index.json,
/// unet/config.json, unet/diffusion_pytorch_model.safetensors (f32; it also carries the
/// tract-studio metadata, so the file is a tract-studio model file too),
/// scheduler/scheduler_config.json and a README.md saying how many steps to sample with.
pub fn export(file: &ModelFile, out: &Path) -> Result<()> {
    let (Some(cfg), Some(ddpm)) = (&file.meta.diffusers, &file.meta.ddpm) else {
        return Err(Error::input(
            "only models with a diffusers network (a diffusers:DIR teacher or a student distilled from one) can be exported to diffusers; tract-studio's own UNet has a continuous-time embedding and EDM preconditioning that UNet2DModel cannot express",
        ));
    };
    let mut meta = file.meta.clone();
    // the exported scheduler samples with trailing spacing: say so in the file too
    let mut d = *ddpm;
    d.spacing = Spacing::Trailing;
    d.steps_offset = 0;
    meta.ddpm = Some(d);
    let layout = DiffusersUnet::new(cfg.clone()).layout();
    let tensors = crate::engine::checkpoint::named("", &layout, &file.flat);
    let meta_json = serde_json::to_string(&meta).expect("meta serializes");
    let weights = serialize_tensors_as(&tensors, &meta_json, Storage::F32)
        .map_err(|e| Error::file(out, format!("cannot serialize: {e}")))?;
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).expect("json serializes");
    let index = json!({
        "_class_name": "DDIMPipeline",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DModel"]
    });
    let card = format!(
        "# {kind} ({steps} step{s})\n\nWritten by `tract-studio export`. A diffusers DDIMPipeline: load it with\n\n```python\nfrom diffusers import DDIMPipeline\npipe = DDIMPipeline.from_pretrained(\"DIR\")\nimages = pipe(num_inference_steps={steps}, eta=0.0).images\n```\n\nKind: {kind}; distillation schedule: {sched}; data: {data}; training samples: {n}.\nThe scheduler samples with trailing timestep spacing ({steps} step{s} start at timestep {last}).\n",
        kind = meta.kind,
        steps = meta.steps,
        s = if meta.steps == 1 { "" } else { "s" },
        sched = if meta.schedule.is_empty() {
            "-"
        } else {
            &meta.schedule
        },
        data = meta.data,
        n = meta.train_samples,
        last = d.train_steps - 1,
    );
    write_atomic(&out.join("model_index.json"), &pretty(&index))?;
    write_atomic(
        &out.join("unet").join("config.json"),
        &pretty(&unet_config_json(cfg)),
    )?;
    write_atomic(&out.join("unet").join(WEIGHTS), &weights)?;
    write_atomic(
        &out.join("scheduler").join("scheduler_config.json"),
        &pretty(&scheduler_config_json(&d, cfg.prediction)),
    )?;
    write_atomic(&out.join("README.md"), card.as_bytes())?;
    Ok(())
}
