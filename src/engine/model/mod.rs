//! Networks. A model's parameters live in one flat 1-D tensor with a named layout, so
//! one Adam, one EMA and one checkpoint format serve every model, each a handful of
//! fused tensor ops per step however many layers the model has.

pub mod diffusers;
pub mod mlp;
pub mod unet;

pub use diffusers::{DiffusersUnet, Prediction, Unet2dConfig};
pub use mlp::{Mlp, MlpConfig};
pub use unet::{Unet, UnetConfig};

use std::collections::HashMap;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::engine::diffusion::{Denoiser, Times};
use crate::engine::rng::Rng;

use crate::engine::tensors::{from_vec1, to_vec};

/// Names, shapes and offsets of the parameters inside the flat vector. The image networks'
/// forward passes look their tensors up by name (`Params::named`), so the order of the flat
/// vector is the builder's alone: model files store each tensor by name too.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub names: Vec<String>,
    pub shapes: Vec<Vec<usize>>,
    pub offsets: Vec<usize>,
    pub total: usize,
    /// Each name's position in `names`.
    index: HashMap<String, usize>,
}

impl Layout {
    /// Panics on a name given twice (a builder's mistake: one of the two could never be
    /// looked up).
    pub fn new(names: Vec<String>, shapes: Vec<Vec<usize>>) -> Self {
        assert_eq!(names.len(), shapes.len(), "one shape per name");
        let mut offsets = vec![];
        let mut total = 0;
        for s in &shapes {
            offsets.push(total);
            total += s.iter().product::<usize>();
        }
        let mut index = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if index.insert(n.clone(), i).is_some() {
                panic!("the layout names tensor '{n}' twice");
            }
        }
        Layout {
            names,
            shapes,
            offsets,
            total,
            index,
        }
    }
    /// The position of the tensor called `name`, if the layout has one.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
    pub fn len(&self, i: usize) -> usize {
        self.shapes[i].iter().product()
    }
    /// Parameter i as a matrix [rows, cols].
    pub fn mat(&self, p: Params, i: usize) -> Tensor<2> {
        let s = &self.shapes[i];
        let (r, c) = if s.len() == 2 {
            (s[0], s[1])
        } else {
            (1, s[0])
        };
        p.get(self, i).reshape([r, c])
    }
    /// For training: the flat vector (not autodiff) as autodiff leaves that keep their
    /// gradients: one leaf per tensor for a large vector (see `Params`); for a small one (an
    /// MLP) the flat vector as one leaf, where the per-tensor leaves cost more than they save
    /// (the demo took 218 s with them against 185 s).
    pub fn leaves(&self, flat: &Tensor<1>) -> Leaves {
        if self.total >= 100_000 {
            self.split_leaves(flat)
        } else {
            Leaves::Flat(flat.clone().autodiff().require_grad())
        }
    }
    /// One autodiff leaf per tensor, whatever the size.
    pub fn split_leaves(&self, flat: &Tensor<1>) -> Leaves {
        Leaves::Split(
            (0..self.names.len())
                .map(|i| {
                    flat.clone()
                        .narrow(0, self.offsets[i], self.len(i))
                        .autodiff()
                        .require_grad()
                })
                .collect(),
        )
    }
    /// The gradient of `loss` with respect to the flat vector that `leaves` came from (0 for a
    /// tensor the loss does not depend on); None when no leaf got a gradient.
    #[cfg(feature = "train")]
    pub fn backward(&self, leaves: &Leaves, loss: &Tensor<1>) -> Option<Tensor<1>> {
        let grads = loss.backward();
        let leaves = match leaves {
            Leaves::Flat(l) => return l.grad(&grads),
            Leaves::Split(v) => v,
        };
        let parts: Vec<Option<Tensor<1>>> = leaves.iter().map(|l| l.grad(&grads)).collect();
        let dev = parts.iter().flatten().next()?.device();
        let parts = parts
            .into_iter()
            .enumerate()
            .map(|(i, g)| g.unwrap_or_else(|| Tensor::zeros([self.len(i)], &dev)))
            .collect();
        Some(Tensor::cat(parts, 0))
    }
    /// Split a host copy of the flat vector into named pieces.
    pub fn split<'a>(&self, flat: &'a [f32]) -> Vec<&'a [f32]> {
        (0..self.names.len())
            .map(|i| &flat[self.offsets[i]..self.offsets[i] + self.len(i)])
            .collect()
    }
}

/// A network's parameters as its forward pass reads them: the flat vector (each tensor a
/// narrow of it) or split into its tensors. Training uses the split form, each tensor its own
/// autodiff leaf (`Layout::leaves`, `Layout::backward`): burn-autodiff's backward of a narrow
/// is a zero-filled tensor the size of the whole vector, which is then added to the vector's
/// gradient, so a flat leaf costs two full-size passes per parameter tensor (about a hundred
/// tensors in a UNet). The gradient is the same either way, value for value.
#[derive(Clone, Copy)]
pub enum Params<'a> {
    Flat(&'a Tensor<1>),
    Split(&'a [Tensor<1>]),
}

impl<'a> From<&'a Tensor<1>> for Params<'a> {
    fn from(p: &'a Tensor<1>) -> Self {
        Params::Flat(p)
    }
}

/// A training step's parameters as autodiff leaves (`Layout::leaves`).
// a Tensor is a handle (its size is the backend enum's, not the data's): boxing it would add
// an allocation per step for nothing
#[allow(clippy::large_enum_variant)]
pub enum Leaves {
    Flat(Tensor<1>),
    Split(Vec<Tensor<1>>),
}

impl<'a> From<&'a Leaves> for Params<'a> {
    fn from(l: &'a Leaves) -> Self {
        match l {
            Leaves::Flat(p) => Params::Flat(p),
            Leaves::Split(v) => Params::Split(v),
        }
    }
}

impl Params<'_> {
    /// Parameter i of the layout, as a flat tensor.
    pub fn get(&self, lay: &Layout, i: usize) -> Tensor<1> {
        match self {
            Params::Flat(p) => (*p).clone().narrow(0, lay.offsets[i], lay.len(i)),
            Params::Split(v) => v[i].clone(),
        }
    }
    /// The tensor called `name` in the layout (flat) with its shape: how the image networks'
    /// forward passes read their parameters, so that the order of the layout cannot put one
    /// tensor where another is expected. Panics, naming it, when the layout has no such
    /// tensor (a network asks only for the names its own builder made).
    pub fn named<'l>(&self, lay: &'l Layout, name: &str) -> (Tensor<1>, &'l [usize]) {
        let i = lay
            .find(name)
            .unwrap_or_else(|| panic!("the layout has no tensor '{name}'"));
        (self.get(lay, i), &lay.shapes[i])
    }
}

pub fn flat_from_host(v: Vec<f32>, device: &Device) -> Tensor<1> {
    from_vec1(v, device)
}

pub fn flat_to_host(t: &Tensor<1>) -> Vec<f32> {
    to_vec(t.clone())
}

/// Which network, with its hyper-parameters (saved in every checkpoint).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NetConfig {
    Mlp(MlpConfig),
    Unet(UnetConfig),
    /// diffusers' UNet2DModel (imported teachers and their students).
    Diffusers(Unet2dConfig),
}

impl NetConfig {
    /// Flattened sample size the network takes.
    pub fn dim(&self) -> usize {
        match self {
            NetConfig::Mlp(c) => c.dim,
            NetConfig::Unet(c) => c.channels * c.height * c.width,
            NetConfig::Diffusers(c) => c.in_channels * c.height * c.width,
        }
    }
    pub fn sigma_data(&self) -> f64 {
        match self {
            NetConfig::Mlp(c) => c.sigma_data,
            NetConfig::Unet(c) => c.sigma_data,
            NetConfig::Diffusers(_) => 0.5,
        }
    }
    pub fn param(&self) -> crate::engine::schedule::Param {
        match self {
            NetConfig::Mlp(c) => c.param,
            NetConfig::Unet(c) => c.param,
            NetConfig::Diffusers(_) => crate::engine::schedule::Param::Vp,
        }
    }
    /// Image shape [C, H, W] of an image network.
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self {
            NetConfig::Mlp(_) => None,
            NetConfig::Unet(c) => Some([c.channels, c.height, c.width]),
            NetConfig::Diffusers(c) => Some([c.in_channels, c.height, c.width]),
        }
    }
}

/// A network of either kind behind one interface.
#[derive(Clone, Debug)]
pub enum Net {
    Mlp(Mlp),
    Unet(Unet),
    Diffusers(DiffusersUnet),
}

impl Net {
    pub fn new(cfg: &NetConfig) -> Self {
        match cfg {
            NetConfig::Mlp(c) => Net::Mlp(Mlp::new(c.clone())),
            NetConfig::Unet(c) => Net::Unet(Unet::new(c.clone())),
            NetConfig::Diffusers(c) => Net::Diffusers(DiffusersUnet::new(c.clone())),
        }
    }
    pub fn layout(&self) -> Layout {
        match self {
            Net::Mlp(m) => m.layout(),
            Net::Unet(u) => u.layout(),
            Net::Diffusers(u) => u.layout(),
        }
    }
    pub fn init(&self, rng: &mut Rng) -> Vec<f32> {
        match self {
            Net::Mlp(m) => m.init(rng),
            Net::Unet(u) => u.init(rng),
            Net::Diffusers(u) => u.init(rng),
        }
    }
    /// x0_hat for flattened samples x [N, D].
    pub fn forward<'a>(&self, p: impl Into<Params<'a>>, x: Tensor<2>, times: &Times) -> Tensor<2> {
        let p = p.into();
        match self {
            Net::Mlp(m) => m.forward(p, x, times),
            Net::Unet(u) => u.forward(p, x, times),
            Net::Diffusers(u) => u.forward(p, x, times),
        }
    }
}

/// A network bound to parameter values: the `Denoiser` every sampler and teacher step uses.
pub struct Bound<'a> {
    pub model: &'a Net,
    pub params: &'a Tensor<1>,
}

impl Denoiser for Bound<'_> {
    fn denoise(&self, x: Tensor<2>, times: &Times) -> Tensor<2> {
        self.model.forward(self.params, x, times)
    }
}
