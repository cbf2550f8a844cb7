//! A small UNet for signal prediction on images, with flat parameters (see `Layout`):
//! Fourier time / log-SNR embedding, residual blocks with GroupNorm and SiLU, self-attention
//! at the lowest resolution, channel multipliers and depth from the config. The same
//! preconditioning as the MLP (VP: v-prediction form; VE: EDM's c_skip, c_out, c_in).

use burn::tensor::{Tensor, activation::softmax};
use serde::{Deserialize, Serialize};

use super::mlp::precond;
use super::{Layout, Params};
use crate::engine::diffusion::Times;
use crate::engine::kernels::cpu::{self, silu};
use crate::engine::rng::Rng;
use crate::engine::schedule::Param;
use crate::engine::tensors::from_vec2;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnetConfig {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub base: usize,
    /// Channel multiplier per resolution level (downsampling by 2 between levels).
    pub mults: Vec<usize>,
    pub blocks: usize,
    pub groups: usize,
    pub freqs: usize,
    pub attention: bool,
    pub param: Param,
    pub sigma_data: f64,
}

impl UnetConfig {
    /// The default: small enough to train on 2 CPU cores (about 0.9M parameters at 32x32).
    pub fn small(channels: usize, height: usize, width: usize, param: Param) -> Self {
        UnetConfig {
            channels,
            height,
            width,
            base: 32,
            mults: vec![1, 2, 2],
            blocks: 1,
            groups: 8,
            freqs: 16,
            attention: true,
            param,
            sigma_data: 0.5,
        }
    }
    /// A tiny preset (about 0.27M parameters, roughly 3x faster than `small` on a CPU): for
    /// quick runs on 2 cores.
    pub fn tiny(channels: usize, height: usize, width: usize, param: Param) -> Self {
        UnetConfig {
            base: 16,
            ..Self::small(channels, height, width, param)
        }
    }
    /// The preset by name: tiny, small (the default) or large.
    pub fn preset(
        name: &str,
        channels: usize,
        height: usize,
        width: usize,
        param: Param,
    ) -> Option<Self> {
        match name {
            "tiny" => Some(Self::tiny(channels, height, width, param)),
            "small" => Some(Self::small(channels, height, width, param)),
            "large" => Some(Self::large(channels, height, width, param)),
            _ => None,
        }
    }
    /// A larger preset for GPUs.
    pub fn large(channels: usize, height: usize, width: usize, param: Param) -> Self {
        UnetConfig {
            base: 96,
            mults: vec![1, 2, 2, 2],
            blocks: 2,
            groups: 32,
            ..Self::small(channels, height, width, param)
        }
    }
    /// Whether the network can run on its own images: every count at least 1, the image
    /// halved `mults.len() - 1` times by stride-2 convolutions and doubled back (so the height
    /// and width must be multiples of 2^(levels - 1), or the skip connections do not line up),
    /// and a GroupNorm group count that divides the channels of every normalised layer.
    /// Checked wherever a configuration comes from data or a file, before anything runs.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::Error::input(m));
        for (what, v) in [
            ("channels", self.channels),
            ("height", self.height),
            ("width", self.width),
            ("base width", self.base),
            ("blocks per level", self.blocks),
        ] {
            if v == 0 {
                return bad(format!("the UNet's {what} is 0; expected at least 1"));
            }
        }
        if self.mults.is_empty() || self.mults.contains(&0) {
            return bad(format!(
                "the UNet's channel multipliers are {:?}; expected one positive multiplier per resolution level",
                self.mults
            ));
        }
        // far beyond any network that trains here; keeps the arithmetic below in range
        if self.mults.len() > 16
            || self.blocks > 64
            || self.freqs > 4096
            || self
                .base
                .saturating_mul(*self.mults.iter().max().unwrap_or(&1))
                > 1 << 16
        {
            return bad(format!(
                "the UNet's size (base {}, multipliers {:?}, {} blocks, {} frequencies) is beyond what this program builds",
                self.base, self.mults, self.blocks, self.freqs
            ));
        }
        if !(self.sigma_data.is_finite() && self.sigma_data > 0.0) {
            return bad(format!(
                "the UNet's sigma_data is {}; expected a positive number",
                self.sigma_data
            ));
        }
        let levels = self.mults.len();
        let f = 1usize << (levels - 1);
        if !self.height.is_multiple_of(f) || !self.width.is_multiple_of(f) {
            return bad(format!(
                "a UNet with {levels} resolution levels halves the image {} times, so its height and width must be multiples of {f}, but the images are {}x{}",
                levels - 1,
                self.height,
                self.width
            ));
        }
        // every GroupNorm of the network: its channels are the shape of its scale ("NAME.g")
        let layout = Unet::build(self);
        for (n, s) in layout.names.iter().zip(&layout.shapes) {
            if !n.ends_with(".g") {
                continue;
            }
            let c = s[0];
            let g = self.groups.min(c).max(1);
            if c % g != 0 {
                return bad(format!(
                    "GroupNorm with {} groups cannot split the {c} channels of layer {}; expected a group count that divides every layer's channels",
                    self.groups,
                    n.trim_end_matches(".g")
                ));
            }
        }
        Ok(())
    }
    fn emb_in(&self) -> usize {
        2 * self.freqs + 1
    }
    fn emb(&self) -> usize {
        4 * self.base
    }
}

#[derive(Clone, Debug)]
pub struct Unet {
    pub cfg: UnetConfig,
    layout: Layout,
}

/// Builds the parameter list: the order of the flat vector (and of model files' tensors);
/// `forward` finds each tensor by its name.
struct Builder {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
}

impl Builder {
    fn add(&mut self, name: String, shape: Vec<usize>) {
        self.names.push(name);
        self.shapes.push(shape);
    }
    fn conv(&mut self, name: &str, i: usize, o: usize, k: usize) {
        self.add(format!("{name}.w"), vec![o, i, k, k]);
        self.add(format!("{name}.b"), vec![o]);
    }
    fn norm(&mut self, name: &str, c: usize) {
        self.add(format!("{name}.g"), vec![c]);
        self.add(format!("{name}.b"), vec![c]);
    }
    fn res(&mut self, name: &str, i: usize, o: usize, e: usize) {
        self.norm(&format!("{name}.n1"), i);
        self.conv(&format!("{name}.c1"), i, o, 3);
        self.add(format!("{name}.e.w"), vec![e, o]);
        self.add(format!("{name}.e.b"), vec![o]);
        self.norm(&format!("{name}.n2"), o);
        self.conv(&format!("{name}.c2"), o, o, 3);
        if i != o {
            self.conv(&format!("{name}.skip"), i, o, 1);
        }
    }
    fn attn(&mut self, name: &str, c: usize) {
        self.norm(&format!("{name}.n"), c);
        self.conv(&format!("{name}.qkv"), c, 3 * c, 1);
        self.conv(&format!("{name}.proj"), c, c, 1);
    }
}

/// The forward pass's parameter lookup, by name (`Params::named`, as in diffusers.rs): each
/// layer names the tensors it reads, so the builder's order of the flat vector is free.
struct Fwd<'a> {
    lay: &'a Layout,
    p: Params<'a>,
}

impl Fwd<'_> {
    fn get(&self, name: &str) -> (Tensor<1>, &[usize]) {
        self.p.named(self.lay, name)
    }
    /// Convolution `name`'s (weights, bias, padding).
    fn conv_params(&self, name: &str) -> (Tensor<4>, Tensor<1>, usize) {
        let (w, s) = self.get(&format!("{name}.w"));
        let w = w.reshape([s[0], s[1], s[2], s[3]]);
        let pad = s[2] / 2;
        (w, self.get(&format!("{name}.b")).0, pad)
    }
    fn conv(&self, name: &str, x: Tensor<4>, stride: usize) -> Tensor<4> {
        let (w, b, pad) = self.conv_params(name);
        cpu::conv2d(x, w, b, stride, pad)
    }
    /// A 3x3 convolution of x upsampled 2x (nearest), as one op on the CPU.
    fn up_conv(&self, name: &str, x: Tensor<4>) -> Tensor<4> {
        let (w, b, _) = self.conv_params(name);
        cpu::upsample_conv2d(x, w, b)
    }
    /// GroupNorm with its affine parameters, then SiLU when `act` (one fused op on the CPU).
    fn norm(&self, name: &str, x: Tensor<4>, groups: usize, act: bool) -> Tensor<4> {
        let c = x.dims()[1];
        let g = groups.min(c).max(1);
        let gamma = self.get(&format!("{name}.g")).0;
        let beta = self.get(&format!("{name}.b")).0;
        cpu::group_norm(x, gamma, beta, g, act)
    }
    fn linear(&self, name: &str, x: Tensor<2>) -> Tensor<2> {
        let (w, s) = self.get(&format!("{name}.w"));
        let w = w.reshape([s[0], s[1]]);
        let b = self.get(&format!("{name}.b")).0.reshape([1, s[1]]);
        x.matmul(w) + b
    }
    /// skip(x) + c2(norm2(c1(norm1(x)) + e(emb))): the time embedding and the residual are
    /// added by the convolutions themselves (cpu::conv2d_fused).
    fn res(
        &self,
        name: &str,
        x: Tensor<4>,
        emb: &Tensor<2>,
        groups: usize,
        has_skip: bool,
    ) -> Tensor<4> {
        let hn = self.norm(&format!("{name}.n1"), x.clone(), groups, true);
        let (w1, b1, p1) = self.conv_params(&format!("{name}.c1"));
        let e = self.linear(&format!("{name}.e"), silu(emb.clone()));
        let h = cpu::conv2d_fused(hn, w1, b1, Some(e), None, 1, p1);
        let hn = self.norm(&format!("{name}.n2"), h, groups, true);
        let (w2, b2, p2) = self.conv_params(&format!("{name}.c2"));
        let skip = if has_skip {
            self.conv(&format!("{name}.skip"), x, 1)
        } else {
            x
        };
        cpu::conv2d_fused(hn, w2, b2, None, Some(skip), 1, p2)
    }
    fn attn(&self, name: &str, x: Tensor<4>, groups: usize) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let xn = self.norm(&format!("{name}.n"), x.clone(), groups, false);
        let qkv = self
            .conv(&format!("{name}.qkv"), xn, 1)
            .reshape([n, 3 * c, h * w]);
        let q = qkv.clone().narrow(1, 0, c);
        let k = qkv.clone().narrow(1, c, c);
        let v = qkv.narrow(1, 2 * c, c);
        let att = softmax(q.swap_dims(1, 2).matmul(k).div_scalar((c as f64).sqrt()), 2); // [n, hw, hw]
        let out = v.matmul(att.swap_dims(1, 2)).reshape([n, c, h, w]);
        x + self.conv(&format!("{name}.proj"), out, 1)
    }
}

impl Unet {
    pub fn new(cfg: UnetConfig) -> Self {
        let layout = Self::build(&cfg);
        Unet { cfg, layout }
    }

    /// The network over a flat vector in another order: `layout` must hold the tensors that
    /// `new` lays out (the same names and shapes), in any order. The forward pass finds each
    /// tensor by name, so the result is the same network (a test of that; a flat vector
    /// ordered by some other writer).
    pub fn with_layout(cfg: UnetConfig, layout: Layout) -> crate::Result<Self> {
        let own = Self::build(&cfg);
        for (n, s) in own.names.iter().zip(&own.shapes) {
            match layout.find(n) {
                None => {
                    return Err(crate::Error::input(format!(
                        "the layout has no tensor '{n}', which this UNet needs"
                    )));
                }
                Some(i) if &layout.shapes[i] != s => {
                    return Err(crate::Error::input(format!(
                        "tensor '{n}' has shape {:?} in the layout, expected {s:?}",
                        layout.shapes[i]
                    )));
                }
                Some(_) => {}
            }
        }
        if layout.names.len() != own.names.len() {
            return Err(crate::Error::input(format!(
                "the layout has {} tensors, this UNet {}",
                layout.names.len(),
                own.names.len()
            )));
        }
        Ok(Unet { cfg, layout })
    }

    fn build(cfg: &UnetConfig) -> Layout {
        let mut b = Builder {
            names: vec![],
            shapes: vec![],
        };
        let (e, ei) = (cfg.emb(), cfg.emb_in());
        b.add("temb0.w".into(), vec![ei, e]);
        b.add("temb0.b".into(), vec![e]);
        b.add("temb1.w".into(), vec![e, e]);
        b.add("temb1.b".into(), vec![e]);
        b.conv("in", cfg.channels, cfg.base, 3);
        let mut ch = cfg.base;
        let mut skips = vec![ch];
        for (l, m) in cfg.mults.iter().enumerate() {
            for k in 0..cfg.blocks {
                b.res(&format!("down{l}.{k}"), ch, cfg.base * m, e);
                ch = cfg.base * m;
                skips.push(ch);
            }
            if l + 1 < cfg.mults.len() {
                b.conv(&format!("down{l}.ds"), ch, ch, 3);
                skips.push(ch);
            }
        }
        b.res("mid.0", ch, ch, e);
        if cfg.attention {
            b.attn("mid.attn", ch);
        }
        b.res("mid.1", ch, ch, e);
        for (l, m) in cfg.mults.iter().enumerate().rev() {
            for k in 0..=cfg.blocks {
                let s = skips.pop().expect("skip");
                b.res(&format!("up{l}.{k}"), ch + s, cfg.base * m, e);
                ch = cfg.base * m;
            }
            if l > 0 {
                b.conv(&format!("up{l}.us"), ch, ch, 3);
            }
        }
        b.norm("out.n", ch);
        b.conv("out", ch, cfg.channels, 3);
        Layout::new(b.names, b.shapes)
    }

    pub fn layout(&self) -> Layout {
        self.layout.clone()
    }

    /// He-normal init; norms at (1, 0); the last conv of each block, the attention
    /// projection and the output conv start at zero (each block starts as the identity).
    pub fn init(&self, rng: &mut Rng) -> Vec<f32> {
        let l = &self.layout;
        let mut flat = Vec::with_capacity(l.total);
        for (n, s) in l.names.iter().zip(&l.shapes) {
            let len: usize = s.iter().product();
            let zero = n.ends_with(".b") && !n.ends_with(".n.b")
                || n.contains(".c2.")
                || n.contains(".proj.")
                || n.starts_with("out.w");
            if n.ends_with(".g") {
                flat.extend(std::iter::repeat_n(1.0, len));
            } else if zero || s.len() == 1 {
                flat.extend(std::iter::repeat_n(0.0, len));
            } else {
                let fan_in: usize = if s.len() == 4 {
                    s[1] * s[2] * s[3]
                } else {
                    s[0]
                };
                let scale = (1.0 / fan_in as f32).sqrt();
                flat.extend(rng.normals(len).into_iter().map(|v| v * scale));
            }
        }
        flat
    }

    fn embedding(&self, times: &Times) -> Tensor<2> {
        let e = self.cfg.emb_in();
        let mut v = Vec::with_capacity(times.coefs.len() * e);
        for c in &times.coefs {
            for k in 0..self.cfg.freqs {
                let f = (1.0 + k as f64).powf(1.5) * std::f64::consts::PI / 2.0;
                v.push((f * c.tau).sin() as f32);
                v.push((f * c.tau).cos() as f32);
            }
            v.push((c.logsnr / 20.0).clamp(-2.0, 2.0) as f32);
        }
        from_vec2(v, [times.coefs.len(), e], &times.device)
    }

    /// x0_hat for flattened images x [N, C*H*W].
    pub fn forward<'a>(&self, p: impl Into<Params<'a>>, x: Tensor<2>, times: &Times) -> Tensor<2> {
        let p = p.into();
        let cfg = &self.cfg;
        let n = x.dims()[0];
        let pc = |i: usize| {
            times.col(move |c| {
                let t = precond(cfg.param, cfg.sigma_data, c);
                [t.0, t.1, t.2][i]
            })
        };
        let (c_skip, c_out, c_in) = (pc(0), pc(1), pc(2));
        let f = Fwd {
            lay: &self.layout,
            p,
        };
        let emb = silu(f.linear("temb0", self.embedding(times)));
        let emb = f.linear("temb1", emb);
        let xin = (x.clone() * c_in).reshape([n, cfg.channels, cfg.height, cfg.width]);
        let mut h = f.conv("in", xin, 1);
        let mut skips = vec![h.clone()];
        let mut ch = cfg.base;
        for (l, m) in cfg.mults.iter().enumerate() {
            for k in 0..cfg.blocks {
                let o = cfg.base * m;
                h = f.res(&format!("down{l}.{k}"), h, &emb, cfg.groups, ch != o);
                ch = o;
                skips.push(h.clone());
            }
            if l + 1 < cfg.mults.len() {
                h = f.conv(&format!("down{l}.ds"), h, 2);
                skips.push(h.clone());
            }
        }
        h = f.res("mid.0", h, &emb, cfg.groups, false);
        if cfg.attention {
            h = f.attn("mid.attn", h, cfg.groups);
        }
        h = f.res("mid.1", h, &emb, cfg.groups, false);
        for l in (0..cfg.mults.len()).rev() {
            for k in 0..=cfg.blocks {
                let s = skips.pop().expect("skip");
                h = f.res(
                    &format!("up{l}.{k}"),
                    Tensor::cat(vec![h, s], 1),
                    &emb,
                    cfg.groups,
                    true,
                );
            }
            if l > 0 {
                h = f.up_conv(&format!("up{l}.us"), h);
            }
        }
        let h = f.norm("out.n", h, cfg.groups, true);
        let f = f
            .conv("out", h, 1)
            .reshape([n, cfg.channels * cfg.height * cfg.width]);
        x * c_skip + f * c_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::flat_from_host;
    use crate::engine::schedule::Grid;
    use crate::engine::tensors::to_vec;
    use burn::tensor::Device;

    #[test]
    fn validate_names_what_the_network_cannot_take() {
        // the presets at the sizes they are made for
        for (c, h, w) in [(1, 32, 32), (3, 64, 64), (1, 8, 8)] {
            UnetConfig::small(c, h, w, Param::Vp).validate().unwrap();
            UnetConfig::tiny(c, h, w, Param::Ve).validate().unwrap();
        }
        UnetConfig::large(1, 32, 32, Param::Vp).validate().unwrap();
        // 12x12 halved three times (large), 10x10 twice (small): the skips would not line up
        let e = UnetConfig::large(1, 12, 12, Param::Vp)
            .validate()
            .unwrap_err();
        assert!(
            e.to_string().contains("multiples of 8") && e.to_string().contains("12x12"),
            "{e}"
        );
        let e = UnetConfig::small(1, 10, 10, Param::Vp)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("multiples of 4"), "{e}");
        // groups that do not divide the channels (16 in the tiny preset's first level)
        let mut u = UnetConfig::tiny(1, 8, 8, Param::Vp);
        u.groups = 3;
        let e = u.validate().unwrap_err().to_string();
        assert!(e.contains("3 groups") && e.contains("16 channels"), "{e}");
        // more groups than channels is what the forward pass clamps (one channel a group)
        u.groups = 64;
        u.validate().unwrap();
        for f in [
            |u: &mut UnetConfig| u.mults.clear(),
            |u: &mut UnetConfig| u.mults[1] = 0,
            |u: &mut UnetConfig| u.base = 0,
            |u: &mut UnetConfig| u.channels = 0,
            |u: &mut UnetConfig| u.sigma_data = f64::NAN,
            |u: &mut UnetConfig| u.base = usize::MAX / 2,
        ] {
            let mut u = UnetConfig::tiny(1, 8, 8, Param::Vp);
            f(&mut u);
            assert!(u.validate().is_err(), "{u:?}");
        }
    }

    /// The forward pass finds its tensors by name: a layout with two same-shaped tensors
    /// swapped (and the flat vector with them) is the same network. Reading the tensors by
    /// position, as the forward pass did before (a cursor walking the layout in the
    /// builder's order), uses each one in the other's place and fails the first assertion
    /// (seen: outputs differing by up to 0.57).
    #[test]
    fn forward_finds_tensors_by_name_not_position() {
        let dev = Device::flex();
        let cfg = UnetConfig::tiny(1, 8, 8, Param::Vp);
        let u = Unet::new(cfg.clone());
        let lay = u.layout();
        // perturbed weights: the zero-initialised convs would hide the swap
        let mut rng = Rng::new(3);
        let host: Vec<f32> = u
            .init(&mut Rng::new(1))
            .iter()
            .zip(rng.normals(lay.total))
            .map(|(v, e)| v + 0.05 * e)
            .collect();
        // the two convolutions of the first residual block: 16 -> 16 channels, 3x3 each
        let (a, b) = ("down0.0.c1.w", "down0.0.c2.w");
        let (ia, ib) = (lay.find(a).unwrap(), lay.find(b).unwrap());
        assert_eq!(lay.shapes[ia], lay.shapes[ib]);
        let mut names = lay.names.clone();
        names.swap(ia, ib);
        let swapped = Layout::new(names, lay.shapes.clone());
        // the same tensors, stored in the swapped layout's order
        let parts = lay.split(&host);
        let host_swapped: Vec<f32> = swapped
            .names
            .iter()
            .flat_map(|n| parts[lay.find(n).unwrap()].iter().copied())
            .collect();
        let v = Unet::with_layout(cfg.clone(), swapped.clone()).unwrap();
        let n = 2;
        let x = from_vec2(rng.normals(n * 64), [n, 64], &dev);
        let g = Grid::new(Param::Vp, 1024);
        let times = Times::new(vec![g.coef(100), g.coef(900)], &dev);
        let run = |net: &Unet, h: &[f32]| {
            to_vec(net.forward(&flat_from_host(h.to_vec(), &dev), x.clone(), &times))
        };
        let y = run(&u, &host);
        let y_swapped = run(&v, &host_swapped);
        let d = y
            .iter()
            .zip(&y_swapped)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert_eq!(
            d, 0.0,
            "the swapped layout gives another network: max diff {d}"
        );
        // the swap is visible: the original network on the swapped vector is another one
        let y_wrong = run(&u, &host_swapped);
        assert!(y.iter().zip(&y_wrong).any(|(p, q)| (p - q).abs() > 1e-3));
        // every tensor of the layout is read: each per-tensor leaf gets a gradient
        let leaves = swapped.split_leaves(&flat_from_host(host_swapped, &dev));
        let out = v.forward(&leaves, x, &times);
        let grads = (out.clone() * out).mean().backward();
        let crate::engine::model::Leaves::Split(ls) = &leaves else {
            unreachable!()
        };
        for (l, name) in ls.iter().zip(&swapped.names) {
            assert!(l.grad(&grads).is_some(), "forward does not read '{name}'");
        }
        // a layout that lacks a tensor, or has it in another shape, is refused
        let mut names = lay.names.clone();
        names[ia] = "down0.0.c9.w".into();
        let e = Unet::with_layout(cfg.clone(), Layout::new(names, lay.shapes.clone()));
        assert!(e.unwrap_err().to_string().contains("down0.0.c1.w"));
        let mut shapes = lay.shapes.clone();
        shapes[ia] = vec![16, 16, 1, 9];
        let e = Unet::with_layout(cfg, Layout::new(lay.names.clone(), shapes));
        assert!(e.unwrap_err().to_string().contains("[16, 16, 1, 9]"));
    }

    #[test]
    fn unet_shapes_identity_init_and_gradients() {
        let dev = Device::flex();
        let cfg = UnetConfig::small(1, 16, 16, Param::Vp);
        let u = Unet::new(cfg.clone());
        let count = u.layout().total;
        let c32 = Unet::new(UnetConfig::small(1, 32, 32, Param::Vp))
            .layout()
            .total;
        assert_eq!(count, c32, "parameters do not depend on the image size");
        assert!((400_000..2_000_000).contains(&count), "{count} parameters");
        let flat = flat_from_host(u.init(&mut Rng::new(1)), &dev);
        let n = 3;
        let mut rng = Rng::new(2);
        let x = from_vec2(rng.normals(n * 256), [n, 256], &dev);
        let g = Grid::new(Param::Vp, 1024);
        let times = Times::new(vec![g.coef(10), g.coef(500), g.coef(1000)], &dev);
        // zero output conv: x0 = c_skip x = alpha x
        let out = to_vec(u.forward(&flat, x.clone(), &times));
        let xv = to_vec(x.clone());
        for i in 0..n {
            let a = times.coefs[i].alpha as f32;
            for j in 0..256 {
                assert!((out[i * 256 + j] - a * xv[i * 256 + j]).abs() < 1e-5);
            }
        }
        // after perturbing the weights the output depends on t, and gradients reach the input conv
        let mut host = u.init(&mut Rng::new(1));
        for v in host.iter_mut() {
            *v += 0.01;
        }
        let flat = flat_from_host(host, &dev);
        let leaf = flat.clone().autodiff().require_grad();
        let y = u.forward(&leaf, x.clone(), &times);
        let loss = (y.clone() * y).mean();
        let grads = loss.backward();
        let gv = to_vec(leaf.grad(&grads).unwrap());
        let lay = u.layout();
        // the parameters split into leaves (how training runs) give the same gradient
        let leaves = lay.split_leaves(&flat);
        let y = u.forward(&leaves, x, &times);
        let split = to_vec(lay.backward(&leaves, &(y.clone() * y).mean()).unwrap());
        assert_eq!(split, gv);
        let i_in = lay.names.iter().position(|n| n == "in.w").unwrap();
        let gin = &gv[lay.offsets[i_in]..lay.offsets[i_in] + lay.len(i_in)];
        assert!(gin.iter().any(|g| g.abs() > 0.0) && gv.iter().all(|g| g.is_finite()));
    }
}
