//! Networks. A model's parameters live in one flat 1-D tensor with a named layout, so
//! one Adam, one EMA and one checkpoint format serve every model, each a handful of
//! fused tensor ops per step however many layers the model has.

pub mod mlp;
pub mod unet;

pub use mlp::{Mlp, MlpConfig};

use burn::tensor::{Device, Tensor};

use crate::tensors::{from_vec1, to_vec};

/// Names, shapes and offsets of the parameters inside the flat vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub names: Vec<String>,
    pub shapes: Vec<Vec<usize>>,
    pub offsets: Vec<usize>,
    pub total: usize,
}

impl Layout {
    pub fn new(names: Vec<String>, shapes: Vec<Vec<usize>>) -> Self {
        let mut offsets = vec![];
        let mut total = 0;
        for s in &shapes {
            offsets.push(total);
            total += s.iter().product::<usize>();
        }
        Layout { names, shapes, offsets, total }
    }
    pub fn len(&self, i: usize) -> usize {
        self.shapes[i].iter().product()
    }
    /// Parameter i of `flat` as a matrix [rows, cols].
    pub fn mat(&self, flat: &Tensor<1>, i: usize) -> Tensor<2> {
        let s = &self.shapes[i];
        let (r, c) = if s.len() == 2 { (s[0], s[1]) } else { (1, s[0]) };
        flat.clone().narrow(0, self.offsets[i], self.len(i)).reshape([r, c])
    }
    /// Split a host copy of the flat vector into named pieces.
    pub fn split<'a>(&self, flat: &'a [f32]) -> Vec<&'a [f32]> {
        (0..self.names.len()).map(|i| &flat[self.offsets[i]..self.offsets[i] + self.len(i)]).collect()
    }
}

pub fn flat_from_host(v: Vec<f32>, device: &Device) -> Tensor<1> {
    from_vec1(v, device)
}

pub fn flat_to_host(t: &Tensor<1>) -> Vec<f32> {
    to_vec(t.clone())
}
