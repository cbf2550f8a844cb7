//! Adam with global grad-norm clipping, and the bias-corrected EMA (eq 16), on flat
//! parameter vectors.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip (None: off).
    pub clip: Option<f64>,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 2e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip: Some(1.0),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Adam {
    pub m: Tensor<1>,
    pub v: Tensor<1>,
    pub t: u64,
    /// Burn's ops even where the one-pass CPU kernel applies (the tests compare the two).
    pub burn_ops: bool,
}

impl Adam {
    pub fn new(like: &Tensor<1>) -> Self {
        Adam {
            m: like.zeros_like(),
            v: like.zeros_like(),
            t: 0,
            burn_ops: false,
        }
    }

    /// One step; returns the new parameters.
    pub fn step(&mut self, cfg: &AdamConfig, params: Tensor<1>, grad: Tensor<1>) -> Tensor<1> {
        // scale = min(1, c / norm), computed on the device (no sync)
        let scale = cfg.clip.map(|c| {
            let norm = (grad.clone() * grad.clone()).sum().sqrt();
            norm.add_scalar(1e-12).recip().mul_scalar(c).clamp_max(1.0)
        });
        self.t += 1;
        let bc1 = 1.0 - cfg.beta1.powi(self.t as i32);
        let bc2 = 1.0 - cfg.beta2.powi(self.t as i32);
        let step_size = cfg.lr / bc1;
        if crate::engine::kernels::cpu::adam_applies(&params) && !self.burn_ops {
            // one pass on the CPU, the same f32 operations as below (scalars rounded to f32
            // as Burn's scalar ops round them): the same bits
            let k = crate::engine::kernels::cpu_ops::AdamCoefs {
                beta1: cfg.beta1 as f32,
                one_minus_beta1: (1.0 - cfg.beta1) as f32,
                beta2: cfg.beta2 as f32,
                one_minus_beta2: (1.0 - cfg.beta2) as f32,
                bc2: bc2 as f32,
                eps: cfg.eps as f32,
                step: step_size as f32,
            };
            // m and v handed over (not cloned), so that the kernel can update them in place
            let dev = params.device();
            let m = std::mem::replace(&mut self.m, Tensor::empty([0], &dev));
            let v = std::mem::replace(&mut self.v, Tensor::empty([0], &dev));
            let (p, m, v) = crate::engine::kernels::cpu::adam(params, grad, m, v, scale, k);
            self.m = m;
            self.v = v;
            return p;
        }
        // Burn's ops (every other device)
        let grad = match scale {
            Some(s) => grad * s,
            None => grad,
        };
        self.m = self.m.clone().mul_scalar(cfg.beta1) + grad.clone().mul_scalar(1.0 - cfg.beta1);
        self.v = self.v.clone().mul_scalar(cfg.beta2)
            + (grad.clone() * grad).mul_scalar(1.0 - cfg.beta2);
        let denom = self.v.clone().div_scalar(bc2).sqrt().add_scalar(cfg.eps);
        params - (self.m.clone() / denom).mul_scalar(step_size)
    }
}

/// Bias-corrected EMA weight for update i >= 1 (eq 16): w = (1 - mu)/(1 - mu^i).
pub fn ema_weight(mu: f64, i: u64) -> f64 {
    assert!(i >= 1);
    if mu == 0.0 {
        return 1.0;
    }
    (1.0 - mu) / (1.0 - mu.powf(i as f64))
}

/// ema <- (1 - w) ema + w phi, written ema + w (phi - ema) (the form the WGSL kernel uses).
pub fn ema_mix(ema: Tensor<1>, phi: &Tensor<1>, w: f64) -> Tensor<1> {
    ema.clone() + (phi.clone() - ema).mul_scalar(w)
}

/// The bias-corrected EMA update number i (eq 16).
pub fn ema_update(ema: Tensor<1>, phi: &Tensor<1>, mu: f64, i: u64) -> Tensor<1> {
    ema_mix(ema, phi, ema_weight(mu, i))
}

/// Inference EMA momentum from the eps heuristic (A.7): mu_I = eps^(1/N).
pub fn inference_mu(eps: f64, steps: u64) -> f64 {
    eps.powf(1.0 / steps.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernels::cpu::adam_in_place_count;
    use crate::engine::tensors::{from_vec1, to_vec};
    use burn::tensor::Device;

    /// The one-pass CPU kernel, run in place, gives Burn's ops' bits: 6 steps, with the clip biting (a
    /// gradient of norm about 30 against clip 1), without a clip, and over more elements than
    /// one parallel chunk.
    #[test]
    fn the_cpu_kernel_is_burns_adam_bit_for_bit() {
        let dev = Device::flex();
        let mut rng = crate::engine::rng::Rng::new(9);
        for (n, clip) in [
            (1_000usize, Some(1.0)),
            (100_000, Some(1.0)),
            (70_001, None),
        ] {
            let cfg = AdamConfig {
                clip,
                lr: 3e-3,
                ..Default::default()
            };
            let p0: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let mut p = [from_vec1(p0.clone(), &dev), from_vec1(p0, &dev)];
            let like = p[0].clone();
            let mut a = [Adam::new(&like), Adam::new(&like)];
            a[1].burn_ops = true;
            assert!(crate::engine::kernels::cpu::adam_applies(&like));
            for _ in 0..6 {
                let before = adam_in_place_count();
                let g: Vec<f32> = (0..n).map(|_| rng.normal() as f32 * 0.1).collect();
                for i in 0..2 {
                    p[i] = a[i].step(&cfg, p[i].clone(), from_vec1(g.clone(), &dev));
                }
                // the kernel's step ran in place (the Burn-ops one does not count)
                assert_eq!(
                    adam_in_place_count(),
                    before + 1,
                    "the Adam step did not run in place"
                );
                for (x, y) in [(&p[0], &p[1]), (&a[0].m, &a[1].m), (&a[0].v, &a[1].v)] {
                    let (x, y) = (to_vec(x.clone()), to_vec(y.clone()));
                    let differ = x.iter().zip(&y).filter(|(a, b)| a.to_bits() != b.to_bits());
                    assert_eq!(differ.count(), 0, "n {n}, clip {clip:?}");
                }
            }
        }
    }

    #[test]
    fn bias_corrected_ema_is_the_weighted_mean() {
        // Independent computation: eq 16 makes the EMA after i updates equal to
        // sum_j mu^(i-j) phi_j / sum_j mu^(i-j), i.e. no bias toward the initial value.
        let dev = Device::flex();
        let mu = 0.9;
        let phis = [3.0f32, -1.0, 4.0, 1.5, 9.0, 2.0];
        let mut ema = from_vec1(vec![123.0], &dev);
        for (j, p) in phis.iter().enumerate() {
            ema = ema_update(ema, &from_vec1(vec![*p], &dev), mu, j as u64 + 1);
            let i = j + 1;
            let num: f64 = (0..i)
                .map(|k| mu.powi((i - 1 - k) as i32) * phis[k] as f64)
                .sum();
            let den: f64 = (0..i).map(|k| mu.powi((i - 1 - k) as i32)).sum();
            assert!((to_vec(ema.clone())[0] as f64 - num / den).abs() < 1e-5);
        }
        assert_eq!(ema_weight(0.5, 1), 1.0);
        assert!((inference_mu(1e-4, 4) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn adam_matches_hand_computation_and_clips() {
        let dev = Device::flex();
        let cfg = AdamConfig {
            lr: 0.1,
            clip: Some(1.0),
            ..Default::default()
        };
        let p = from_vec1(vec![1.0, 2.0], &dev);
        let mut a = Adam::new(&p);
        // grad (3, 4): norm 5, clipped to (0.6, 0.8); first Adam step moves each by -lr * sign
        let p1 = to_vec(a.step(&cfg, p.clone(), from_vec1(vec![3.0, 4.0], &dev)));
        assert!(
            (p1[0] - 0.9).abs() < 1e-6 && (p1[1] - 1.9).abs() < 1e-6,
            "{p1:?}"
        );
        // second step with grad (0.3, 0) (norm < 1, not clipped), by hand:
        let (b1, b2) = (0.9f64, 0.999f64);
        let g1 = [0.6f64, 0.8];
        let g2 = [0.3f64, 0.0];
        let p1h = [0.9f64, 1.9];
        let mut expect = [0.0; 2];
        for i in 0..2 {
            let m = b1 * (1.0 - b1) * g1[i] + (1.0 - b1) * g2[i];
            let v = b2 * (1.0 - b2) * g1[i] * g1[i] + (1.0 - b2) * g2[i] * g2[i];
            let (mh, vh) = (m / (1.0 - b1 * b1), v / (1.0 - b2 * b2));
            expect[i] = p1h[i] - 0.1 * mh / (vh.sqrt() + 1e-8);
        }
        let p2 = to_vec(a.step(&cfg, from_vec1(p1, &dev), from_vec1(vec![0.3, 0.0], &dev)));
        for i in 0..2 {
            assert!(
                (p2[i] as f64 - expect[i]).abs() < 1e-5,
                "{p2:?} vs {expect:?}"
            );
        }
    }
}
