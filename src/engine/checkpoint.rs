//! Safetensors files: model files (weights + the config that made them) and full
//! training states (everything `--resume` needs to continue bit-for-bit).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::engine::error::{read_file, write_atomic};
use crate::engine::model::{Layout, MlpConfig, NetConfig, Unet2dConfig, UnetConfig};
use crate::engine::schedule::{Ddpm, Grid, Param};
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
    /// A diffusers UNet2DModel (imported teachers and their students).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffusers: Option<Unet2dConfig>,
    /// The diffusers scheduler's discrete grid (with `diffusers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddpm: Option<Ddpm>,
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
        match (&self.mlp, &self.unet, &self.diffusers) {
            (Some(m), None, None) => Some(NetConfig::Mlp(m.clone())),
            (None, Some(u), None) => Some(NetConfig::Unet(u.clone())),
            (None, None, Some(d)) => Some(NetConfig::Diffusers(d.clone())),
            _ => None,
        }
    }
    pub fn set_net(&mut self, net: &NetConfig) {
        (self.mlp, self.unet, self.diffusers) = match net {
            NetConfig::Mlp(m) => (Some(m.clone()), None, None),
            NetConfig::Unet(u) => (None, Some(u.clone()), None),
            NetConfig::Diffusers(d) => (None, None, Some(d.clone())),
        };
    }
    /// The noise grid the model samples on.
    pub fn grid(&self) -> Grid {
        match self.ddpm {
            Some(d) => Grid::ddpm(d),
            None => Grid::new(self.param, self.grid_steps),
        }
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

/// The metadata key of a file's checksum (see [`checksum`]).
pub const CHECKSUM_KEY: &str = "tract.checksum";

/// FNV-1a, 64 bits.
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    pub(crate) fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    /// The hash so far as 16 lowercase hex digits.
    pub(crate) fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// A variable-length field: its length (u64, little endian), then its bytes.
    fn field(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }
}

/// The checksum a file carries under [`CHECKSUM_KEY`]: FNV-1a-64, as 16 lowercase hex
/// digits, over the tract-studio metadata string, then every tensor in name order: its
/// name, its dtype (as safetensors spells it: "F32"), its shape (the rank, then each
/// dimension, u64 little endian) and its bytes. Variable-length parts are preceded by their
/// length (u64 little endian), so no two different contents hash the same bytes.
pub fn checksum<'a>(
    meta: &str,
    tensors: impl IntoIterator<Item = (&'a str, &'a str, &'a [usize], &'a [u8])>,
) -> String {
    let mut ts: Vec<_> = tensors.into_iter().collect();
    ts.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Fnv64::new();
    h.field(meta.as_bytes());
    for (name, dtype, shape, data) in ts {
        h.field(name.as_bytes());
        h.field(dtype.as_bytes());
        h.write(&(shape.len() as u64).to_le_bytes());
        for d in shape {
            h.write(&(*d as u64).to_le_bytes());
        }
        h.field(data);
    }
    h.hex()
}

/// The bytes of a safetensors file of named f32 tensors with the tract-studio metadata and
/// its checksum. The header is written here rather than by `safetensors::serialize`, whose
/// metadata map has a random order: the same content always gives the same bytes (a resumed
/// run's files are byte-identical to an uninterrupted run's).
pub fn serialize_tensors(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    meta: &str,
) -> std::result::Result<Vec<u8>, String> {
    serialize_tensors_as(tensors, meta, Storage::F32)
}

/// How a model file stores its weights. Training states are always F32 (a resumed run
/// continues bit for bit); a model file for shipping may be F16, half the bytes (the browser
/// fetches them), read back as f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    F32,
    F16,
}

impl Storage {
    fn name(self) -> &'static str {
        match self {
            Storage::F32 => "F32",
            Storage::F16 => "F16",
        }
    }
    fn bytes(self, v: &[f32]) -> Vec<u8> {
        match self {
            Storage::F32 => f32_bytes(v),
            Storage::F16 => v
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
        }
    }
}

impl std::str::FromStr for Storage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Storage::F32),
            "f16" => Ok(Storage::F16),
            o => Err(Error::input(format!(
                "unknown storage type '{o}': expected f32 or f16"
            ))),
        }
    }
}

/// `serialize_tensors` with the weights stored as `storage`.
pub fn serialize_tensors_as(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    meta: &str,
    storage: Storage,
) -> std::result::Result<Vec<u8>, String> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(&tensors[b].0));
    for w in order.windows(2) {
        if tensors[w[0]].0 == tensors[w[1]].0 {
            return Err(format!("two tensors are named '{}'", tensors[w[0]].0));
        }
    }
    let mut data: Vec<Vec<u8>> = Vec::with_capacity(tensors.len());
    for &i in &order {
        let (name, shape, v) = &tensors[i];
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| format!("tensor '{name}': shape {shape:?} overflows"))?;
        if n != v.len() {
            return Err(format!(
                "tensor '{name}': shape {shape:?} holds {n} values but {} were given",
                v.len()
            ));
        }
        if storage == Storage::F16
            && let Some(x) = v.iter().find(|x| x.abs() > f32::from(half::f16::MAX))
        {
            return Err(format!(
                "tensor '{name}' holds {x}, beyond f16's range (65504): store it as f32"
            ));
        }
        data.push(storage.bytes(v));
    }
    let sum = checksum(
        meta,
        order.iter().zip(&data).map(|(&i, d)| {
            (
                tensors[i].0.as_str(),
                storage.name(),
                &tensors[i].1[..],
                &d[..],
            )
        }),
    );
    let json = |v: &str| serde_json::to_string(v).expect("a string serializes");
    let mut header = format!(
        "{{\"__metadata__\":{{{}:{},{}:{}}}",
        json(CHECKSUM_KEY),
        json(&sum),
        json(META_KEY),
        json(meta)
    );
    let mut offset = 0usize;
    for (&i, d) in order.iter().zip(&data) {
        let shape: Vec<String> = tensors[i].1.iter().map(|d| d.to_string()).collect();
        header.push_str(&format!(
            ",{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            json(&tensors[i].0),
            storage.name(),
            shape.join(","),
            offset,
            offset + d.len()
        ));
        offset += d.len();
    }
    header.push('}');
    // the data starts 8-byte aligned, as safetensors writes it
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for d in &data {
        out.extend_from_slice(d);
    }
    Ok(out)
}

/// Serialize named f32 tensors plus JSON metadata (and a checksum), atomically.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    meta: &str,
) -> Result<()> {
    let out = serialize_tensors(tensors, meta)
        .map_err(|e| Error::file(path, format!("cannot serialize: {e}")))?;
    write_atomic(path, &out)
}

/// Check a parsed file against the checksum in its metadata (files without one pass).
pub fn verify_checksum(
    path: &Path,
    st: &SafeTensors,
    md: &safetensors::tensor::Metadata,
) -> Result<()> {
    let Some(m) = md.metadata().as_ref() else {
        return Ok(());
    };
    let Some(stored) = m.get(CHECKSUM_KEY) else {
        return Ok(());
    };
    let meta = m.get(META_KEY).map(|s| s.as_str()).unwrap_or("");
    let tensors = st.tensors();
    let dtypes: Vec<String> = tensors
        .iter()
        .map(|(_, t)| format!("{:?}", t.dtype()))
        .collect();
    let found = checksum(
        meta,
        tensors
            .iter()
            .zip(&dtypes)
            .map(|((n, t), d)| (n.as_str(), d.as_str(), t.shape(), t.data())),
    );
    if &found != stored {
        return Err(Error::file(
            path,
            format!(
                "checksum mismatch: {} is corrupt (its contents hash to {found}, but it was written with checksum {stored}); it cannot be trusted: restore it from a copy or start again",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// A parsed safetensors file with its tract-studio metadata. The header is parsed once, in
/// `open`: `tensor` and `has` look names up in its index.
pub struct Reader {
    bytes: Vec<u8>,
    /// name -> (dtype, shape, where its bytes are in `bytes`)
    index: BTreeMap<String, (Dtype, Vec<usize>, Range<usize>)>,
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
        let st = SafeTensors::deserialize(&bytes).map_err(|e| {
            Error::file(
                path,
                format!("not a valid safetensors file (truncated or another format?): {e}"),
            )
        })?;
        let Some(meta) = md
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY).cloned())
        else {
            let mut names = st.names();
            names.sort();
            let shown: Vec<&str> = names.iter().take(3).copied().collect();
            return Err(Error::file(
                path,
                format!(
                    "a safetensors file without tract-studio metadata (tensors {}{}; from another program?); expected a checkpoint written by tract-studio",
                    if shown.is_empty() {
                        "none".to_string()
                    } else {
                        shown.join(", ")
                    },
                    if names.len() > 3 {
                        format!(" and {} more", names.len() - 3)
                    } else {
                        String::new()
                    }
                ),
            ));
        };
        verify_checksum(path, &st, &md)?;
        let base = bytes.as_ptr() as usize;
        let index = st
            .tensors()
            .into_iter()
            .map(|(name, t)| {
                let start = t.data().as_ptr() as usize - base;
                let range = start..start + t.data().len();
                (name, (t.dtype(), t.shape().to_vec(), range))
            })
            .collect();
        drop(st);
        Ok(Reader {
            bytes,
            index,
            meta,
            path: path.display().to_string(),
        })
    }

    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (dtype, has, range) = self
            .index
            .get(name)
            .ok_or_else(|| Error::file(&self.path, format!("tensor '{name}' is missing")))?;
        if has != shape {
            return Err(Error::file(
                &self.path,
                format!("tensor '{name}' has shape {has:?}, expected {shape:?}"),
            ));
        }
        // model files store F32 or F16 (Storage); BF16 comes only from imported pipelines
        match dtype {
            Dtype::F32 | Dtype::F16 => float_values(*dtype, &self.bytes[range.clone()]),
            _ => None,
        }
        .ok_or_else(|| {
            Error::file(
                &self.path,
                format!("tensor '{name}' is {dtype:?}, expected F32 or F16"),
            )
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Little-endian F32, F16 or BF16 values as f32 (None for another dtype).
pub fn float_values(dtype: Dtype, b: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::F16 => Some(
            b.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        Dtype::BF16 => Some(
            b.chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        _ => None,
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
        self.save_as(path, Storage::F32)
    }

    /// Save with the weights stored as `storage` (F16: half the bytes, for shipping).
    pub fn save_as(&self, path: &Path, storage: Storage) -> Result<()> {
        let layout = crate::engine::model::Net::new(
            &self.meta.net().expect("a model file describes one network"),
        )
        .layout();
        let meta = serde_json::to_string(&self.meta).expect("meta serializes");
        let out = serialize_tensors_as(&named("", &layout, &self.flat), &meta, storage)
            .map_err(|e| Error::file(path, format!("cannot serialize: {e}")))?;
        write_atomic(path, &out)
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
        // a network that cannot run (image sizes it cannot halve, groups that do not divide
        // the channels) is refused here, before any tensor op can panic on it
        match &net {
            NetConfig::Unet(u) => u.validate().map_err(|e| Error::file(path, e.to_string()))?,
            NetConfig::Diffusers(d) => {
                if let Some(p) = d.problem() {
                    return Err(Error::file(path, p));
                }
            }
            NetConfig::Mlp(_) => {}
        }
        let max = crate::engine::schedule::MAX_STEPS;
        if !(1..=max).contains(&meta.grid_steps) || !(1..=meta.grid_steps).contains(&meta.steps) {
            return Err(Error::file(
                path,
                format!(
                    "the metadata says {} steps on a grid of {}; expected 1 <= steps <= grid <= {max}",
                    meta.steps, meta.grid_steps
                ),
            ));
        }
        let layout = crate::engine::model::Net::new(&net).layout();
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
    use crate::engine::model::Mlp;

    #[test]
    fn model_file_round_trip_and_truncation() {
        let cfg = MlpConfig::new(3, Param::Ve, 0.7);
        let flat = Mlp::new(cfg.clone()).init(&mut crate::engine::rng::Rng::new(4));
        let meta = ModelMeta {
            format: "tract-studio-model/1".into(),
            mlp: Some(cfg),
            unet: None,
            diffusers: None,
            ddpm: None,
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

    #[test]
    fn f16_storage_halves_the_file_and_reads_back_the_rounded_weights() {
        let cfg = MlpConfig::new(2, Param::Vp, 0.5);
        let flat = Mlp::new(cfg.clone()).init(&mut crate::engine::rng::Rng::new(9));
        let meta = ModelMeta {
            format: "tract-studio-model/1".into(),
            mlp: Some(cfg),
            unet: None,
            diffusers: None,
            ddpm: None,
            param: Param::Vp,
            grid_steps: 1024,
            steps: 1,
            data: "toy:ring8".into(),
            kind: "tract".into(),
            schedule: "1024,32,1".into(),
            train_samples: 1,
            clip_x0: false,
        };
        let dir = std::env::temp_dir().join(format!("tract-f16-{}", std::process::id()));
        let (p32, p16) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
        let m = ModelFile {
            meta: meta.clone(),
            flat: flat.clone(),
        };
        m.save(&p32).unwrap();
        m.save_as(&p16, Storage::F16).unwrap();
        let back = ModelFile::load(&p16).unwrap();
        assert_eq!(back.meta, meta);
        // each weight is its nearest f16 (computed independently of the writer: the
        // binary16 rounding of half::f16), so within half an f16 ulp of the f32 one
        for (&x, &y) in flat.iter().zip(&back.flat) {
            assert_eq!(y, half::f16::from_f32(x).to_f32());
            let ulp = (x.abs().max(6.1e-5) * 2f32.powi(-10)) as f64;
            assert!(((x - y) as f64).abs() <= 0.5 * ulp + 1e-12, "{x} -> {y}");
        }
        let (n32, n16) = (
            std::fs::metadata(&p32).unwrap().len() as usize,
            std::fs::metadata(&p16).unwrap().len() as usize,
        );
        // 2 bytes a weight instead of 4; the headers differ only in the digits of the data
        // offsets ("F16" for "F32")
        let header_diff = (n32 - n16).abs_diff(2 * flat.len());
        assert!(header_diff <= 256, "{n16} vs {n32} bytes");
        // the checksum covers the f16 data: a flipped byte is caught
        let mut bytes = std::fs::read(&p16).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let e = Reader::from_bytes(Path::new("b.safetensors"), bytes)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        // a value beyond f16's range is refused, naming the tensor
        let big = vec![("w".to_string(), vec![2], vec![1.0, 1e5])];
        let e = serialize_tensors_as(&big, "{}", Storage::F16).unwrap_err();
        assert!(e.contains("'w'") && e.contains("f16"), "{e}");
        assert!("f64".parse::<Storage>().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn checksum_detects_a_flipped_byte_and_files_are_deterministic() {
        let ts = vec![
            (
                "b".to_string(),
                vec![2, 3],
                (0..6).map(|i| i as f32 * 0.5).collect(),
            ),
            ("a".to_string(), vec![4], vec![1.0, -2.0, 3.5, 1e-3]),
        ];
        let bytes = serialize_tensors(&ts, "{\"x\":1}").unwrap();
        // the same content, the same bytes (the metadata order is fixed)
        assert_eq!(bytes, serialize_tensors(&ts, "{\"x\":1}").unwrap());
        // safetensors reads it, with the tensors as given
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let b = st.tensor("b").unwrap();
        assert_eq!(b.shape(), &[2, 3]);
        assert_eq!(&b.data()[4..8], &0.5f32.to_le_bytes());
        let r = Reader::from_bytes(Path::new("ok.safetensors"), bytes.clone()).unwrap();
        assert_eq!(r.tensor("a", &[4]).unwrap(), vec![1.0, -2.0, 3.5, 1e-3]);
        // every byte of the tensor data flipped in turn is caught
        let data_start = bytes.len() - 10 * 4;
        for i in data_start..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            let e = Reader::from_bytes(Path::new("bad.safetensors"), bad)
                .err()
                .unwrap_or_else(|| panic!("flip at {i} not detected"))
                .to_string();
            assert!(
                e.contains("checksum mismatch: bad.safetensors is corrupt"),
                "{e}"
            );
        }
        // the checksum is an independent FNV-1a-64 over the documented fields
        let mut h: u64 = 0xcbf29ce484222325;
        let mut feed = |b: &[u8]| {
            for &x in b {
                h = (h ^ x as u64).wrapping_mul(0x100000001b3);
            }
        };
        let meta = b"{\"x\":1}";
        feed(&(meta.len() as u64).to_le_bytes());
        feed(meta);
        for (name, shape, v) in [&ts[1], &ts[0]] {
            feed(&(name.len() as u64).to_le_bytes());
            feed(name.as_bytes());
            feed(&3u64.to_le_bytes());
            feed(b"F32");
            feed(&(shape.len() as u64).to_le_bytes());
            for d in shape {
                feed(&(*d as u64).to_le_bytes());
            }
            feed(&(v.len() as u64 * 4).to_le_bytes());
            for x in v {
                feed(&x.to_le_bytes());
            }
        }
        let want = format!("{h:016x}");
        let md = SafeTensors::read_metadata(&bytes).unwrap().1;
        assert_eq!(md.metadata().as_ref().unwrap()[CHECKSUM_KEY], want);
        // bad input to the writer is an error, not a panic
        assert!(serialize_tensors(&[("a".into(), vec![3], vec![1.0])], "{}").is_err());
        assert!(
            serialize_tensors(
                &[
                    ("a".into(), vec![1], vec![1.0]),
                    ("a".into(), vec![1], vec![1.0])
                ],
                "{}"
            )
            .is_err()
        );
    }

    #[test]
    fn files_without_a_checksum_still_load() {
        // as written before checksums (and by safetensors itself)
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![2], &data).unwrap();
        let mut md = std::collections::HashMap::new();
        md.insert(META_KEY.to_string(), "{}".to_string());
        let bytes = safetensors::serialize(vec![("w", view)], Some(md)).unwrap();
        let r = Reader::from_bytes(Path::new("old.safetensors"), bytes).unwrap();
        assert_eq!(r.tensor("w", &[2]).unwrap(), vec![1.0, 2.0]);
    }
}
