//! diffusers' UNet2DModel as a flat-parameter network: the layer layout, names and shapes are
//! diffusers' own (`down_blocks.0.resnets.0.conv1.weight`, Linear weights [out, in]), so a
//! pipeline's safetensors file maps onto the flat vector name for name and an exported
//! student is that file again. The forward pass is diffusers' (positional timestep
//! embedding of the discrete timestep, ResnetBlock2D, multi-head Attention, Downsample2D with
//! padding 0 or 1, nearest Upsample2D), on the project's CPU kernels (convolutions, fused
//! GroupNorm+SiLU, attention) on the CPU backend and Burn's ops elsewhere. What comes out is
//! converted to x0 by the prediction type, so every sampler, teacher step and distillation
//! target works with it unchanged. Supported fields and what is refused: docs/diffusers.md.

use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;
use serde::{Deserialize, Serialize};

use super::{Layout, Params};
use crate::engine::diffusion::Times;
use crate::engine::kernels::cpu::{self, silu};
use crate::engine::rng::Rng;
use crate::engine::tensors::{column, from_vec2};

/// What the network predicts (diffusers' `prediction_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    Epsilon,
    VPrediction,
    Sample,
}

impl Prediction {
    pub fn name(&self) -> &'static str {
        match self {
            Prediction::Epsilon => "epsilon",
            Prediction::VPrediction => "v_prediction",
            Prediction::Sample => "sample",
        }
    }
    pub fn parse(s: &str) -> Option<Prediction> {
        match s {
            "epsilon" => Some(Prediction::Epsilon),
            "v_prediction" => Some(Prediction::VPrediction),
            "sample" => Some(Prediction::Sample),
            _ => None,
        }
    }
}

/// The UNet2DModel fields this network supports (every other field of a config.json must
/// hold diffusers' default: `engine::pipeline` checks that).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Unet2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    /// Per down block: AttnDownBlock2D (true) or DownBlock2D.
    pub down_attention: Vec<bool>,
    /// Per up block: AttnUpBlock2D (true) or UpBlock2D.
    pub up_attention: Vec<bool>,
    /// The mid block's attention (`add_attention`).
    pub mid_attention: bool,
    /// Channels per head; None: one head.
    pub attention_head_dim: Option<usize>,
    pub norm_num_groups: usize,
    pub norm_eps: f64,
    pub downsample_padding: usize,
    pub flip_sin_to_cos: bool,
    pub freq_shift: i64,
    pub prediction: Prediction,
}

impl Unet2dConfig {
    pub fn temb(&self) -> usize {
        4 * self.block_out_channels[0]
    }
    /// google/ddpm-cifar10-32's network (35,746,307 parameters), for benchmarks.
    pub fn ddpm_cifar10() -> Self {
        Unet2dConfig {
            in_channels: 3,
            out_channels: 3,
            height: 32,
            width: 32,
            block_out_channels: vec![128, 256, 256, 256],
            layers_per_block: 2,
            down_attention: vec![false, true, false, false],
            up_attention: vec![false, false, true, false],
            mid_attention: true,
            attention_head_dim: None,
            norm_num_groups: 32,
            norm_eps: 1e-6,
            downsample_padding: 0,
            flip_sin_to_cos: false,
            freq_shift: 1,
            prediction: Prediction::Epsilon,
        }
    }
    /// Every reason this configuration cannot run, as one line (None when it can).
    pub fn problem(&self) -> Option<String> {
        let n = self.block_out_channels.len();
        if n == 0 {
            return Some("block_out_channels is empty".into());
        }
        if self.down_attention.len() != n || self.up_attention.len() != n {
            return Some(format!(
                "{} down and {} up block types for {n} block_out_channels; expected {n} of each",
                self.down_attention.len(),
                self.up_attention.len()
            ));
        }
        if self.in_channels == 0 || self.out_channels == 0 || self.layers_per_block == 0 {
            return Some("in_channels, out_channels and layers_per_block must be positive".into());
        }
        if self.block_out_channels[0] < 2 {
            return Some(
                "block_out_channels[0] must be at least 2 (the timestep embedding)".into(),
            );
        }
        let g = self.norm_num_groups;
        if let Some(c) = self
            .block_out_channels
            .iter()
            .find(|&&c| g == 0 || c % g != 0)
        {
            return Some(format!(
                "norm_num_groups {g} does not divide block_out_channels {c}"
            ));
        }
        if let Some(d) = self.attention_head_dim {
            let attn_ch = (0..n)
                .filter(|&i| self.down_attention[i])
                .map(|i| self.block_out_channels[i])
                .chain(
                    (0..n)
                        .filter(|&i| self.up_attention[i])
                        .map(|i| self.block_out_channels[n - 1 - i]),
                )
                .chain(self.mid_attention.then(|| self.block_out_channels[n - 1]));
            for c in attn_ch {
                if d == 0 || c % d != 0 {
                    return Some(format!(
                        "attention_head_dim {d} does not divide the {c} channels of an attention block"
                    ));
                }
            }
        }
        if !(self.norm_eps > 0.0 && self.norm_eps.is_finite()) {
            return Some(format!("norm_eps {} must be positive", self.norm_eps));
        }
        if self.downsample_padding > 1 {
            return Some(format!(
                "downsample_padding {} (supported: 0 or 1)",
                self.downsample_padding
            ));
        }
        let f = 1usize << (n - 1);
        if self.height == 0
            || self.width == 0
            || !self.height.is_multiple_of(f)
            || !self.width.is_multiple_of(f)
        {
            return Some(format!(
                "sample_size {}x{} is not divisible by {f}, which {} downsamplings need",
                self.height,
                self.width,
                n - 1
            ));
        }
        if self.freq_shift >= (self.block_out_channels[0] / 2) as i64 {
            return Some(format!(
                "freq_shift {} must be less than half of block_out_channels[0] ({})",
                self.freq_shift, self.block_out_channels[0]
            ));
        }
        None
    }
}

#[derive(Clone, Debug)]
pub struct DiffusersUnet {
    pub cfg: Unet2dConfig,
    layout: Layout,
}

struct Builder {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
}

impl Builder {
    fn add(&mut self, name: String, shape: Vec<usize>) {
        self.names.push(name);
        self.shapes.push(shape);
    }
    fn wb(&mut self, name: &str, w: Vec<usize>, b: usize) {
        self.add(format!("{name}.weight"), w);
        self.add(format!("{name}.bias"), vec![b]);
    }
    fn conv(&mut self, name: &str, i: usize, o: usize, k: usize) {
        self.wb(name, vec![o, i, k, k], o);
    }
    fn linear(&mut self, name: &str, i: usize, o: usize) {
        self.wb(name, vec![o, i], o);
    }
    fn norm(&mut self, name: &str, c: usize) {
        self.wb(name, vec![c], c);
    }
    fn resnet(&mut self, name: &str, i: usize, o: usize, temb: usize) {
        self.norm(&format!("{name}.norm1"), i);
        self.conv(&format!("{name}.conv1"), i, o, 3);
        self.linear(&format!("{name}.time_emb_proj"), temb, o);
        self.norm(&format!("{name}.norm2"), o);
        self.conv(&format!("{name}.conv2"), o, o, 3);
        if i != o {
            self.conv(&format!("{name}.conv_shortcut"), i, o, 1);
        }
    }
    fn attention(&mut self, name: &str, c: usize) {
        self.norm(&format!("{name}.group_norm"), c);
        for p in ["to_q", "to_k", "to_v", "to_out.0"] {
            self.linear(&format!("{name}.{p}"), c, c);
        }
    }
}

/// The up blocks' resnets take (previous output + skip) channels; this walks diffusers'
/// construction once for the builder and once for the forward pass.
fn skip_channels(cfg: &Unet2dConfig) -> Vec<usize> {
    let b = &cfg.block_out_channels;
    let mut skips = vec![b[0]];
    for (i, &o) in b.iter().enumerate() {
        for _ in 0..cfg.layers_per_block {
            skips.push(o);
        }
        if i + 1 < b.len() {
            skips.push(o);
        }
    }
    skips
}

impl DiffusersUnet {
    pub fn new(cfg: Unet2dConfig) -> Self {
        let layout = Self::build(&cfg);
        DiffusersUnet { cfg, layout }
    }

    fn build(cfg: &Unet2dConfig) -> Layout {
        let mut b = Builder {
            names: vec![],
            shapes: vec![],
        };
        let ch = &cfg.block_out_channels;
        let temb = cfg.temb();
        b.conv("conv_in", cfg.in_channels, ch[0], 3);
        b.linear("time_embedding.linear_1", ch[0], temb);
        b.linear("time_embedding.linear_2", temb, temb);
        let mut c = ch[0];
        for (i, &o) in ch.iter().enumerate() {
            for j in 0..cfg.layers_per_block {
                b.resnet(&format!("down_blocks.{i}.resnets.{j}"), c, o, temb);
                c = o;
                if cfg.down_attention[i] {
                    b.attention(&format!("down_blocks.{i}.attentions.{j}"), o);
                }
            }
            if i + 1 < ch.len() {
                b.conv(&format!("down_blocks.{i}.downsamplers.0.conv"), o, o, 3);
            }
        }
        b.resnet("mid_block.resnets.0", c, c, temb);
        if cfg.mid_attention {
            b.attention("mid_block.attentions.0", c);
        }
        b.resnet("mid_block.resnets.1", c, c, temb);
        let mut skips = skip_channels(cfg);
        for (i, &o) in ch.iter().rev().enumerate() {
            for j in 0..=cfg.layers_per_block {
                let s = skips.pop().expect("one skip per up resnet");
                b.resnet(&format!("up_blocks.{i}.resnets.{j}"), c + s, o, temb);
                c = o;
                if cfg.up_attention[i] {
                    b.attention(&format!("up_blocks.{i}.attentions.{j}"), o);
                }
            }
            if i + 1 < ch.len() {
                b.conv(&format!("up_blocks.{i}.upsamplers.0.conv"), o, o, 3);
            }
        }
        b.norm("conv_norm_out", c);
        b.conv("conv_out", c, cfg.out_channels, 3);
        Layout::new(b.names, b.shapes)
    }

    pub fn layout(&self) -> Layout {
        self.layout.clone()
    }

    /// A random start (for benchmarks and tests; real weights come from a pipeline): He-normal
    /// weights, zero biases, norms at (1, 0).
    pub fn init(&self, rng: &mut Rng) -> Vec<f32> {
        let mut flat = Vec::with_capacity(self.layout.total);
        for (n, s) in self.layout.names.iter().zip(&self.layout.shapes) {
            let len: usize = s.iter().product();
            if s.len() == 1 {
                let v = if n.ends_with(".weight") { 1.0 } else { 0.0 };
                flat.extend(std::iter::repeat_n(v, len));
            } else {
                let fan_in: usize = s[1..].iter().product();
                let scale = (1.0 / fan_in as f32).sqrt();
                flat.extend(rng.normals(len).into_iter().map(|v| v * scale));
            }
        }
        flat
    }

    /// diffusers' positional embedding of the timesteps `tau`, computed in f32 as torch does.
    fn time_proj(&self, times: &Times) -> Tensor<2> {
        let dim = self.cfg.block_out_channels[0];
        let half = dim / 2;
        let den = (half as i64 - self.cfg.freq_shift) as f32;
        let lnp = (10000f64).ln() as f32;
        let freqs: Vec<f32> = (0..half).map(|i| ((-lnp * i as f32) / den).exp()).collect();
        let mut v = Vec::with_capacity(times.coefs.len() * dim);
        for c in &times.coefs {
            let t = c.tau as f32;
            let args: Vec<f32> = freqs.iter().map(|f| t * f).collect();
            let sin = args.iter().map(|a| (*a as f64).sin() as f32);
            let cos = args.iter().map(|a| (*a as f64).cos() as f32);
            let row: Vec<f32> = if self.cfg.flip_sin_to_cos {
                cos.chain(sin).collect()
            } else {
                sin.chain(cos).collect()
            };
            v.extend(row);
            if dim % 2 == 1 {
                v.push(0.0);
            }
        }
        from_vec2(v, [times.coefs.len(), dim], &times.device)
    }

    /// The network's own output (epsilon, v or x0 by `prediction`) for flattened x [N, D].
    pub fn raw<'a>(&self, p: impl Into<Params<'a>>, x: Tensor<2>, times: &Times) -> Tensor<2> {
        let cfg = &self.cfg;
        let f = Fwd {
            net: self,
            p: p.into(),
        };
        let n = x.dims()[0];
        let ch = &cfg.block_out_channels;
        let emb = silu(f.linear("time_embedding.linear_1", self.time_proj(times)));
        let emb = f.linear("time_embedding.linear_2", emb);
        let semb = silu(emb);
        let x = x.reshape([n, cfg.in_channels, cfg.height, cfg.width]);
        let mut h = f.conv("conv_in", x, 1, 1);
        let mut skips = vec![h.clone()];
        for i in 0..ch.len() {
            for j in 0..cfg.layers_per_block {
                h = f.resnet(&format!("down_blocks.{i}.resnets.{j}"), h, &semb);
                if cfg.down_attention[i] {
                    h = f.attention(&format!("down_blocks.{i}.attentions.{j}"), h);
                }
                skips.push(h.clone());
            }
            if i + 1 < ch.len() {
                let name = format!("down_blocks.{i}.downsamplers.0.conv");
                h = if cfg.downsample_padding == 0 {
                    // diffusers pads right and bottom only, then convolves without padding
                    let h = h.pad((0, 1, 0, 1), PadMode::Constant(0.0));
                    f.conv(&name, h, 2, 0)
                } else {
                    f.conv(&name, h, 2, 1)
                };
                skips.push(h.clone());
            }
        }
        h = f.resnet("mid_block.resnets.0", h, &semb);
        if cfg.mid_attention {
            h = f.attention("mid_block.attentions.0", h);
        }
        h = f.resnet("mid_block.resnets.1", h, &semb);
        for i in 0..ch.len() {
            for j in 0..=cfg.layers_per_block {
                let s = skips.pop().expect("one skip per up resnet");
                h = f.resnet(
                    &format!("up_blocks.{i}.resnets.{j}"),
                    Tensor::cat(vec![h, s], 1),
                    &semb,
                );
                if cfg.up_attention[i] {
                    h = f.attention(&format!("up_blocks.{i}.attentions.{j}"), h);
                }
            }
            if i + 1 < ch.len() {
                let (w, b) = f.wb4(&format!("up_blocks.{i}.upsamplers.0.conv"));
                h = cpu::upsample_conv2d(h, w, b);
            }
        }
        let h = f.norm("conv_norm_out", h, true);
        f.conv("conv_out", h, 1, 1)
            .reshape([n, cfg.out_channels * cfg.height * cfg.width])
    }

    /// x0_hat for flattened samples x [N, D] at the times' diffusers timesteps (`tau`).
    pub fn forward<'a>(&self, p: impl Into<Params<'a>>, x: Tensor<2>, times: &Times) -> Tensor<2> {
        let out = self.raw(p, x.clone(), times);
        to_x0(self.cfg.prediction, x, out, times)
    }
}

/// x0 from the network's output: epsilon (x - sigma eps) / alpha, v: alpha x - sigma v,
/// sample: itself (diffusers' DDIMScheduler.step, pred_original_sample).
pub fn to_x0(pred: Prediction, x: Tensor<2>, out: Tensor<2>, times: &Times) -> Tensor<2> {
    let dev = &times.device;
    match pred {
        Prediction::Sample => out,
        Prediction::Epsilon => {
            let inv_a: Vec<f64> = times.coefs.iter().map(|c| 1.0 / c.alpha).collect();
            let s_a: Vec<f64> = times.coefs.iter().map(|c| -c.sigma / c.alpha).collect();
            x * column(&inv_a, dev) + out * column(&s_a, dev)
        }
        Prediction::VPrediction => {
            let a: Vec<f64> = times.coefs.iter().map(|c| c.alpha).collect();
            let s: Vec<f64> = times.coefs.iter().map(|c| -c.sigma).collect();
            x * column(&a, dev) + out * column(&s, dev)
        }
    }
}

/// The forward pass's parameter lookup, by name (`Params::named`, as in the project's UNet).
struct Fwd<'a> {
    net: &'a DiffusersUnet,
    p: Params<'a>,
}

impl Fwd<'_> {
    fn get(&self, name: &str) -> (Tensor<1>, &[usize]) {
        self.p.named(&self.net.layout, name)
    }
    fn wb4(&self, name: &str) -> (Tensor<4>, Tensor<1>) {
        let (w, s) = self.get(&format!("{name}.weight"));
        let w = w.reshape([s[0], s[1], s[2], s[3]]);
        (w, self.get(&format!("{name}.bias")).0)
    }
    fn conv(&self, name: &str, x: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
        let (w, b) = self.wb4(name);
        cpu::conv2d(x, w, b, stride, pad)
    }
    /// x [N, in] -> [N, out] with a PyTorch Linear weight [out, in].
    fn linear(&self, name: &str, x: Tensor<2>) -> Tensor<2> {
        let (w, s) = self.get(&format!("{name}.weight"));
        let (o, i) = (s[0], s[1]);
        let w = w.reshape([o, i]);
        let b = self.get(&format!("{name}.bias")).0.reshape([1, o]);
        x.matmul(w.transpose()) + b
    }
    /// GroupNorm with norm_eps, then SiLU when `act`.
    fn norm(&self, name: &str, x: Tensor<4>, act: bool) -> Tensor<4> {
        let g = self.get(&format!("{name}.weight")).0;
        let b = self.get(&format!("{name}.bias")).0;
        let eps = self.net.cfg.norm_eps as f32;
        cpu::group_norm_eps(x, g, b, self.net.cfg.norm_num_groups, eps, act)
    }
    /// ResnetBlock2D: shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb)))))
    fn resnet(&self, name: &str, x: Tensor<4>, semb: &Tensor<2>) -> Tensor<4> {
        let h = self.norm(&format!("{name}.norm1"), x.clone(), true);
        let (w1, b1) = self.wb4(&format!("{name}.conv1"));
        let e = self.linear(&format!("{name}.time_emb_proj"), semb.clone());
        let h = cpu::conv2d_fused(h, w1, b1, Some(e), None, 1, 1);
        let h = self.norm(&format!("{name}.norm2"), h, true);
        let (w2, b2) = self.wb4(&format!("{name}.conv2"));
        let sc = format!("{name}.conv_shortcut");
        let skip = if self.net.layout.find(&format!("{sc}.weight")).is_some() {
            self.conv(&sc, x, 1, 0)
        } else {
            x
        };
        cpu::conv2d_fused(h, w2, b2, None, Some(skip), 1, 1)
    }
    /// Attention over the pixels: GroupNorm, q/k/v projections, heads of
    /// attention_head_dim channels (one head when None), softmax(q k^T / sqrt(d)) v,
    /// to_out, plus the input (`kernels::cpu::attention`: one CPU op each way on the CPU
    /// backend, Burn's ops elsewhere).
    fn attention(&self, name: &str, x: Tensor<4>) -> Tensor<4> {
        let c = x.dims()[1];
        let d = self.net.cfg.attention_head_dim.unwrap_or(c);
        let xn = self.norm(&format!("{name}.group_norm"), x.clone(), false);
        let lin = |p: &str| {
            let (w, s) = self.get(&format!("{name}.{p}.weight"));
            let w = w.reshape([s[0], s[1]]);
            (w, self.get(&format!("{name}.{p}.bias")).0)
        };
        let [(wq, bq), (wk, bk), (wv, bv), (wo, bo)] =
            ["to_q", "to_k", "to_v", "to_out.0"].map(lin);
        cpu::attention(xn, [wq, wk, wv, wo], [bq, bk, bv, bo], c / d, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddpm_cifar10_layout_has_diffusers_parameter_count() {
        let u = DiffusersUnet::new(Unet2dConfig::ddpm_cifar10());
        let l = u.layout();
        assert_eq!(l.total, 35_746_307);
        assert_eq!(l.names.len(), 328);
        assert!(u.cfg.problem().is_none());
    }
}
