//! Safetensors files: model files (weights + the config that made them) and full
//! training states (everything `--resume` needs to continue bit-for-bit).

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{read_file, write_atomic};
use crate::model::{Layout, MlpConfig, NetConfig, UnetConfig};
use crate::schedule::Param;
use crate::{Error, Result};

pub const META_KEY: &str = "tract_studio";

/// What a model file says about itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelMeta {
    pub format: String,
    /// The network: exactly one of `mlp` / `unet` (files from before UNets have `mlp` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp: Option<MlpConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unet: Option<UnetConfig>,
    pub param: Param,
    /// Base grid T the model samples on.
    pub grid_steps: usize,
    /// Steps the model was distilled for (T for a teacher).
    pub steps: usize,
    pub data: String,
    /// "fit", "tract", "btd", "teacher".
    pub kind: String,
    pub schedule: String,
    pub train_samples: u64,
    pub clip_x0: bool,
}

impl ModelMeta {
    pub fn net(&self) -> Option<NetConfig> {
        match (&self.mlp, &self.unet) {
            (Some(m), None) => Some(NetConfig::Mlp(m.clone())),
            (None, Some(u)) => Some(NetConfig::Unet(u.clone())),
            _ => None,
        }
    }
    pub fn set_net(&mut self, net: &NetConfig) {
        (self.mlp, self.unet) = match net {
            NetConfig::Mlp(m) => (Some(m.clone()), None),
            NetConfig::Unet(u) => (None, Some(u.clone())),
        };
    }
    pub fn dim(&self) -> usize {
        self.net().map(|n| n.dim()).unwrap_or(0)
    }
}

/// A loaded model file.
#[derive(Clone, Debug)]
pub struct ModelFile {
    pub meta: ModelMeta,
    pub flat: Vec<f32>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Serialize named f32 tensors plus JSON metadata.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    meta: &str,
) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), f32_bytes(v), s.clone()))
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, b, s)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches data"),
            )
        })
        .collect();
    let mut info = HashMap::new();
    info.insert(META_KEY.to_string(), meta.to_string());
    let out = safetensors::serialize(views, Some(info))
        .map_err(|e| Error::file(path, format!("cannot serialize: {e}")))?;
    write_atomic(path, &out)
}

/// A parsed safetensors file with its tract-studio metadata.
pub struct Reader {
    bytes: Vec<u8>,
    pub meta: String,
    path: String,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        Self::from_bytes(path, read_file(path)?)
    }

    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Reader> {
        let (_, md) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            Error::file(
                path,
                format!("not a valid safetensors file (truncated or another format?): {e}"),
            )
        })?;
        SafeTensors::deserialize(&bytes).map_err(|e| {
            Error::file(
                path,
                format!("not a valid safetensors file (truncated or another format?): {e}"),
            )
        })?;
        let meta = md
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY).cloned())
            .ok_or_else(|| Error::file(path, "a safetensors file without tract-studio metadata; expected a checkpoint written by tract-studio"))?;
        Ok(Reader {
            bytes,
            meta,
            path: path.display().to_string(),
        })
    }

    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let st = SafeTensors::deserialize(&self.bytes).expect("validated in open");
        let t = st
            .tensor(name)
            .map_err(|_| Error::file(&self.path, format!("tensor '{name}' is missing")))?;
        if t.dtype() != Dtype::F32 {
            return Err(Error::file(
                &self.path,
                format!("tensor '{name}' is {:?}, expected F32", t.dtype()),
            ));
        }
        if t.shape() != shape {
            return Err(Error::file(
                &self.path,
                format!(
                    "tensor '{name}' has shape {:?}, expected {:?}",
                    t.shape(),
                    shape
                ),
            ));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.bytes)
            .map(|st| st.names().contains(&name))
            .unwrap_or(false)
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Named tensors of one flat parameter vector, with a prefix.
pub fn named(prefix: &str, layout: &Layout, flat: &[f32]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    layout
        .split(flat)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            (
                format!("{prefix}{}", layout.names[i]),
                layout.shapes[i].clone(),
                v.to_vec(),
            )
        })
        .collect()
}

pub fn read_flat(r: &Reader, prefix: &str, layout: &Layout) -> Result<Vec<f32>> {
    let mut flat = Vec::with_capacity(layout.total);
    for (i, n) in layout.names.iter().enumerate() {
        flat.extend(r.tensor(&format!("{prefix}{n}"), &layout.shapes[i])?);
    }
    Ok(flat)
}

impl ModelFile {
    pub fn save(&self, path: &Path) -> Result<()> {
        let layout =
            crate::model::Net::new(&self.meta.net().expect("a model file describes one network"))
                .layout();
        let meta = serde_json::to_string(&self.meta).expect("meta serializes");
        write_tensors(path, &named("", &layout, &self.flat), &meta)
    }

    pub fn load(path: &Path) -> Result<ModelFile> {
        Self::parse(path, Reader::open(path)?)
    }

    /// A model file from memory (`name` is used in error messages).
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<ModelFile> {
        let path = Path::new(name);
        Self::parse(path, Reader::from_bytes(path, bytes.to_vec())?)
    }

    fn parse(path: &Path, r: Reader) -> Result<ModelFile> {
        let meta: ModelMeta = serde_json::from_str(&r.meta).map_err(|e| {
            Error::file(path, format!("tract-studio metadata is not a model description ({e}); is this a training state? use the student.safetensors or a phase file"))
        })?;
        if meta.format != "tract-studio-model/1" {
            return Err(Error::file(
                path,
                format!(
                    "unsupported model format '{}', expected tract-studio-model/1",
                    meta.format
                ),
            ));
        }
        let net = meta
            .net()
            .ok_or_else(|| Error::file(path, "the metadata describes no network (or two)"))?;
        let layout = crate::model::Net::new(&net).layout();
        let flat = read_flat(&r, "", &layout)?;
        if flat.iter().any(|v| !v.is_finite()) {
            return Err(Error::file(path, "weights contain NaN or infinity"));
        }
        Ok(ModelFile { meta, flat })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mlp;

    #[test]
    fn model_file_round_trip_and_truncation() {
        let cfg = MlpConfig::new(3, Param::Ve, 0.7);
        let flat = Mlp::new(cfg.clone()).init(&mut crate::rng::Rng::new(4));
        let meta = ModelMeta {
            format: "tract-studio-model/1".into(),
            mlp: Some(cfg),
            unet: None,
            param: Param::Ve,
            grid_steps: 40,
            steps: 1,
            data: "gmm:x.json".into(),
            kind: "tract".into(),
            schedule: "40,8,1".into(),
            train_samples: 123,
            clip_x0: false,
        };
        let dir = std::env::temp_dir().join(format!("tract-ckpt-{}", std::process::id()));
        let p = dir.join("m.safetensors");
        ModelFile {
            meta: meta.clone(),
            flat: flat.clone(),
        }
        .save(&p)
        .unwrap();
        let back = ModelFile::load(&p).unwrap();
        assert_eq!(back.meta, meta);
        assert_eq!(back.flat, flat);
        // no temp file is left beside it
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let bytes = std::fs::read(&p).unwrap();
        for cut in [0, 7, bytes.len() / 3, bytes.len() - 1] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let e = ModelFile::load(&p).unwrap_err().to_string();
            assert!(e.contains("not a valid safetensors file"), "cut {cut}: {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
