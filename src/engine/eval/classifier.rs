//! A small CNN classifier for image data sets with labels, whose penultimate features give
//! a classifier-feature FID (NOT comparable to Inception FID: another network, another
//! feature space; use it to rank models on one data set).
//!
//! conv3x3 C->32, SiLU, conv3x3/2 32->64, SiLU, conv3x3/2 64->64, SiLU, conv3x3/2 64->128,
//! SiLU, global mean, linear 128->128, SiLU (the features), linear 128->classes.

use std::path::Path;

use burn::tensor::activation::{log_softmax, silu};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::engine::checkpoint::{Reader, write_tensors};
use crate::engine::data::ImageSet;
use crate::engine::model::{Layout, Params, flat_from_host, flat_to_host};
use crate::engine::optim::{Adam, AdamConfig};
use crate::engine::rng::Rng;
use crate::engine::tensors::{from_vec2, to_vec};
use crate::{Error, Result};

pub const FEATURES: usize = 128;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassifierMeta {
    pub kind: String,
    pub data: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub train_samples: u64,
    pub test_accuracy: f64,
}

pub struct Classifier {
    pub meta: ClassifierMeta,
    layout: Layout,
    pub flat: Tensor<1>,
}

fn layout(c: usize, classes: usize) -> Layout {
    let convs = [(c, 32), (32, 64), (64, 64), (64, 128)];
    let mut names = vec![];
    let mut shapes = vec![];
    for (i, (a, b)) in convs.iter().enumerate() {
        names.push(format!("c{i}.w"));
        shapes.push(vec![*b, *a, 3, 3]);
        names.push(format!("c{i}.b"));
        shapes.push(vec![*b]);
    }
    for (n, (a, b)) in [("f", (128, FEATURES)), ("out", (FEATURES, classes))] {
        names.push(format!("{n}.w"));
        shapes.push(vec![a, b]);
        names.push(format!("{n}.b"));
        shapes.push(vec![b]);
    }
    Layout::new(names, shapes)
}

impl Classifier {
    pub fn new(meta: ClassifierMeta, rng: &mut Rng, device: &Device) -> Self {
        let layout = layout(meta.channels, meta.classes);
        let mut flat = Vec::with_capacity(layout.total);
        for s in &layout.shapes {
            let len: usize = s.iter().product();
            if s.len() == 1 {
                flat.extend(std::iter::repeat_n(0.0, len));
            } else {
                let fan_in: usize = if s.len() == 4 { s[1] * 9 } else { s[0] };
                let sc = (2.0 / fan_in as f32).sqrt();
                flat.extend(rng.normals(len).into_iter().map(|v| v * sc));
            }
        }
        Classifier {
            meta,
            layout,
            flat: flat_from_host(flat, device),
        }
    }

    fn param(&self, p: Params, i: usize) -> Tensor<1> {
        p.get(&self.layout, i)
    }

    /// (features [n, 128], logits [n, classes]) for images [n, C*H*W].
    pub fn forward<'a>(&self, p: impl Into<Params<'a>>, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let p = p.into();
        let m = &self.meta;
        let n = x.dims()[0];
        let mut h: Tensor<4> = x.reshape([n, m.channels, m.height, m.width]);
        for k in 0..4 {
            let s = &self.layout.shapes[2 * k];
            let w = self.param(p, 2 * k).reshape([s[0], s[1], 3, 3]);
            let b = self.param(p, 2 * k + 1);
            let stride = if k == 0 { 1 } else { 2 };
            h = silu(crate::engine::kernels::cpu::conv2d(h, w, b, stride, 1));
        }
        let [_, c, hh, ww] = h.dims();
        let pooled: Tensor<2> = h.reshape([n, c, hh * ww]).mean_dim(2).reshape([n, c]);
        let lin = |x: Tensor<2>, i: usize| {
            let s = &self.layout.shapes[i];
            x.matmul(self.param(p, i).reshape([s[0], s[1]]))
                + self.param(p, i + 1).reshape([1, s[1]])
        };
        let f = silu(lin(pooled, 8));
        let logits = lin(f.clone(), 10);
        (f, logits)
    }

    /// Features of host images [n, dim], in batches.
    pub fn features(&self, images: &[f32]) -> Vec<f32> {
        let dim = self.meta.channels * self.meta.height * self.meta.width;
        let dev = self.flat.device();
        let mut out = Vec::with_capacity(images.len() / dim * FEATURES);
        for chunk in images.chunks(256 * dim) {
            let x = from_vec2(chunk.to_vec(), [chunk.len() / dim, dim], &dev);
            out.extend(to_vec(self.forward(&self.flat, x).0));
        }
        out
    }

    /// Fraction of images classified as their label.
    pub fn accuracy(&self, set: &ImageSet) -> Result<f64> {
        let labels = set
            .labels
            .as_ref()
            .ok_or_else(|| Error::input("the test split has no labels"))?;
        let dev = self.flat.device();
        let dim = set.dim();
        let mut right = 0usize;
        for (k, chunk) in set.pixels.chunks(256 * dim).enumerate() {
            let n = chunk.len() / dim;
            let x = from_vec2(chunk.to_vec(), [n, dim], &dev);
            let logits = to_vec(self.forward(&self.flat, x).1);
            for i in 0..n {
                let row = &logits[i * self.meta.classes..(i + 1) * self.meta.classes];
                let arg = (0..row.len())
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap_or(0);
                right += (arg == labels[k * 256 + i] as usize) as usize;
            }
        }
        Ok(right as f64 / set.n as f64)
    }

    /// Train with Adam on cross-entropy; `report(step, steps, loss)` after each step.
    pub fn train(
        &mut self,
        set: &ImageSet,
        samples: u64,
        batch: usize,
        seed: u64,
        report: &mut dyn FnMut(u64, u64, f32),
    ) -> Result<()> {
        let labels = set.labels.as_ref().ok_or_else(|| {
            Error::input(format!(
                "{}: no labels; a classifier needs labelled data",
                self.meta.data
            ))
        })?;
        let classes = self.meta.classes;
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::input(format!(
                "label {bad} out of range; expected labels 0..{classes}"
            )));
        }
        let dev = self.flat.device();
        let dim = set.dim();
        let mut rng = Rng::new(seed ^ 0xC1A5_51F1);
        let mut adam = Adam::new(&self.flat);
        let cfg = AdamConfig {
            lr: 1e-3,
            ..AdamConfig::default()
        };
        let steps = samples.div_ceil(batch as u64).max(1);
        for step in 0..steps {
            let mut x = Vec::with_capacity(batch * dim);
            let mut onehot = vec![0.0f32; batch * classes];
            for i in 0..batch {
                let k = rng.below(set.n);
                x.extend_from_slice(set.image(k));
                onehot[i * classes + labels[k] as usize] = 1.0;
            }
            let x = from_vec2(x, [batch, dim], &dev);
            let y = from_vec2(onehot, [batch, classes], &dev);
            let leaves = self.layout.leaves(&self.flat);
            let (_, logits) = self.forward(&leaves, x);
            let loss = -(log_softmax(logits, 1) * y).sum().div_scalar(batch as f64);
            let lv = to_vec(loss.clone())[0];
            if !lv.is_finite() {
                return Err(Error::Diverged(format!(
                    "classifier loss is {lv} at step {step}"
                )));
            }
            #[cfg(feature = "train")]
            let g = self
                .layout
                .backward(&leaves, &loss)
                .ok_or_else(|| Error::Device("no gradient for the classifier".into()))?;
            #[cfg(not(feature = "train"))]
            let g: Tensor<1> = Err(Error::input("built without training (the `train` feature)"))?;
            self.flat = adam.step(&cfg, self.flat.clone(), g);
            report(step + 1, steps, lv);
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_tensors(
            path,
            &[(
                "classifier".into(),
                vec![self.layout.total],
                flat_to_host(&self.flat),
            )],
            &serde_json::to_string(&self.meta).expect("meta serializes"),
        )
    }

    pub fn load(path: &Path, device: &Device) -> Result<Classifier> {
        Self::from_reader(Reader::open(path)?, path, device)
    }

    pub fn from_bytes(name: &str, bytes: Vec<u8>, device: &Device) -> Result<Classifier> {
        Self::from_reader(
            Reader::from_bytes(Path::new(name), bytes)?,
            Path::new(name),
            device,
        )
    }

    fn from_reader(r: Reader, path: &Path, device: &Device) -> Result<Classifier> {
        let meta: ClassifierMeta = serde_json::from_str(&r.meta)
            .ok()
            .filter(|m: &ClassifierMeta| m.kind == "classifier")
            .ok_or_else(|| {
                Error::file(
                    path,
                    "not a classifier file; expected one written by `tract-studio classifier`",
                )
            })?;
        let layout = layout(meta.channels, meta.classes);
        let flat = r.tensor("classifier", &[layout.total])?;
        Ok(Classifier {
            meta,
            layout,
            flat: flat_from_host(flat, device),
        })
    }
}
