//! Time-conditioned residual MLP for low-dimensional data, with the preconditioning
//! x0_hat = c_skip x + c_out F(c_in x, t):
//! VP: c_skip = alpha, c_out = -sigma, c_in = 1 (v-prediction, well conditioned at both ends);
//! VE: EDM's c_skip, c_out, c_in with sigma_data (docs/algorithm.md, "Noise schedules").

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{Layout, Params};
use crate::engine::diffusion::Times;
use crate::engine::kernels::cpu::silu;
use crate::engine::rng::Rng;
use crate::engine::schedule::{Coef, Param};
use crate::engine::tensors::from_vec2;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MlpConfig {
    pub dim: usize,
    pub hidden: usize,
    pub blocks: usize,
    pub freqs: usize,
    pub param: Param,
    pub sigma_data: f64,
}

impl MlpConfig {
    pub fn new(dim: usize, param: Param, sigma_data: f64) -> Self {
        MlpConfig {
            dim,
            hidden: 128,
            blocks: 3,
            freqs: 8,
            param,
            sigma_data,
        }
    }
    fn emb_dim(&self) -> usize {
        2 * self.freqs + 1
    }
}

#[derive(Clone, Debug)]
pub struct Mlp {
    pub cfg: MlpConfig,
}

/// (c_skip, c_out, c_in) for one noise level.
pub fn precond(param: Param, sigma_data: f64, c: &Coef) -> (f64, f64, f64) {
    match param {
        Param::Vp => (c.alpha, -c.sigma, 1.0),
        Param::Ve => {
            let (s, sd) = (c.sigma, sigma_data);
            let r = (s * s + sd * sd).sqrt();
            (sd * sd / (r * r), s * sd / r, 1.0 / r)
        }
    }
}

impl Mlp {
    pub fn new(cfg: MlpConfig) -> Self {
        Mlp { cfg }
    }

    pub fn layout(&self) -> Layout {
        let (d, h, e) = (self.cfg.dim, self.cfg.hidden, self.cfg.emb_dim());
        let mut names = vec!["in.w".to_string(), "in.b".into()];
        let mut shapes = vec![vec![d + e, h], vec![h]];
        for l in 0..self.cfg.blocks {
            names.extend([
                format!("block{l}.w"),
                format!("block{l}.e"),
                format!("block{l}.b"),
            ]);
            shapes.extend([vec![h, h], vec![e, h], vec![h]]);
        }
        names.extend(["out.w".to_string(), "out.b".into()]);
        shapes.extend([vec![h, d], vec![d]]);
        Layout::new(names, shapes)
    }

    /// Random init (normal / sqrt(fan_in)); the output layer starts at zero. Host values.
    pub fn init(&self, rng: &mut Rng) -> Vec<f32> {
        let l = self.layout();
        let mut flat = Vec::with_capacity(l.total);
        for (n, s) in l.names.iter().zip(&l.shapes) {
            let len: usize = s.iter().product();
            if n.ends_with(".b") || n.starts_with("out.") {
                flat.extend(std::iter::repeat_n(0.0, len));
            } else {
                let scale = 1.0 / (s[0] as f32).sqrt();
                flat.extend(rng.normals(len).into_iter().map(|v| v * scale));
            }
        }
        flat
    }

    fn embedding(&self, times: &Times) -> Tensor<2> {
        let e = self.cfg.emb_dim();
        let mut v = Vec::with_capacity(times.coefs.len() * e);
        for c in &times.coefs {
            for k in 0..self.cfg.freqs {
                let f = (1u64 << k) as f64 * std::f64::consts::PI / 2.0;
                v.push((f * c.tau).sin() as f32);
                v.push((f * c.tau).cos() as f32);
            }
            v.push((c.logsnr / 20.0).clamp(-2.0, 2.0) as f32);
        }
        from_vec2(v, [times.coefs.len(), e], &times.device)
    }

    /// x0_hat for x [N, D]; `p` is this model's flat parameter vector (plain or an autodiff leaf).
    pub fn forward<'a>(&self, p: impl Into<Params<'a>>, x: Tensor<2>, times: &Times) -> Tensor<2> {
        let p = p.into();
        let (d, h, e) = (self.cfg.dim, self.cfg.hidden, self.cfg.emb_dim());
        let pc: Vec<(f64, f64, f64)> = times
            .coefs
            .iter()
            .map(|c| precond(self.cfg.param, self.cfg.sigma_data, c))
            .collect();
        let c_skip = times.col(|c| precond(self.cfg.param, self.cfg.sigma_data, c).0);
        let c_out = times.col(|c| precond(self.cfg.param, self.cfg.sigma_data, c).1);
        let xin = if pc.iter().all(|c| c.2 == 1.0) {
            x.clone()
        } else {
            x.clone() * times.col(|c| precond(self.cfg.param, self.cfg.sigma_data, c).2)
        };
        let emb = self.embedding(times);
        let lay = self.layout();
        let w = |i: usize, _r: usize, _c: usize| lay.mat(p, i);
        let b = |i: usize, _c: usize| lay.mat(p, i);
        let mut hcur =
            silu(Tensor::cat(vec![xin, emb.clone()], 1).matmul(w(0, d + e, h)) + b(1, h));
        for l in 0..self.cfg.blocks {
            let i = 2 + 3 * l;
            hcur = hcur.clone()
                + silu(hcur.matmul(w(i, h, h)) + emb.clone().matmul(w(i + 1, e, h)) + b(i + 2, h));
        }
        let i = 2 + 3 * self.cfg.blocks;
        let f = hcur.matmul(w(i, h, d)) + b(i + 1, d);
        x * c_skip + f * c_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schedule::Grid;

    #[test]
    fn edm_preconditioning_closed_form() {
        // sigma = sigma_data: c_skip = 1/2, c_out = sd/sqrt2, c_in = 1/(sd sqrt2)
        let sd = 0.5;
        let (cs, co, ci) = precond(Param::Ve, sd, &crate::engine::schedule::ve_coef_sigma(sd));
        assert!(
            (cs - 0.5).abs() < 1e-12
                && (co - sd / 2f64.sqrt()).abs() < 1e-12
                && (ci - 1.0 / (sd * 2f64.sqrt())).abs() < 1e-12
        );
        // the x0 of a zero network is c_skip x; VP: alpha x
        let dev = burn::tensor::Device::flex();
        let m = Mlp::new(MlpConfig::new(2, Param::Vp, 1.0));
        let p = crate::engine::model::flat_from_host(m.init(&mut Rng::new(1)), &dev);
        let g = Grid::new(Param::Vp, 1024);
        let c = g.coef(300);
        let x = from_vec2(vec![1.0, 2.0], [1, 2], &dev);
        let out = crate::engine::tensors::to_vec(m.forward(&p, x, &Times::same(c, 1, &dev)));
        assert!(
            (out[0] as f64 - c.alpha).abs() < 1e-6 && (out[1] as f64 - 2.0 * c.alpha).abs() < 1e-6
        );
    }
}
