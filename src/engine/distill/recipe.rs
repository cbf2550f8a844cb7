//! Switches on the training recipe, all off by default (issue #18): the Salimans & Ho BTD
//! recipe's linear learning-rate decay within each phase, and the diagnostics of item 7
//! (flat loss weighting, extra weight at t = T in the final phase, the loss summed over
//! dimensions instead of averaged, x0 clipping on low-dimensional data, Adam state kept
//! across phases). Each is a pure function here; the training loop calls them, in
//! distillation phases only (the fit of a fresh student and teacher training are unchanged).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::engine::diffusion::{Denoiser, Times};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Recipe {
    /// The learning rate decays linearly to 0 within each phase (Salimans & Ho's BTD).
    pub lr_anneal: bool,
    /// Keep Adam's moments and step count across phases (ml-tract) instead of restarting.
    pub keep_adam: bool,
    /// Loss weight 1 at every t instead of max(1, SNR) (VP) / EDM's weight (VE).
    pub flat_weight: bool,
    /// Multiply the loss weight of samples at t = T (the top of the grid) in the final
    /// phase by this factor (1: off).
    pub final_t_weight: f64,
    /// Sum the squared error over dimensions (ml-tract) instead of averaging it: the loss
    /// and its gradient are D times larger, so gradient clipping bites more often.
    pub loss_sum: bool,
    /// Clip the teacher's and the self-teacher's x0 predictions to [-c, c] in the training
    /// targets (for low-dimensional data; images use `clip_x0`, which clips to [-1, 1]).
    pub clip_x0_range: Option<f64>,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            lr_anneal: false,
            keep_adam: false,
            flat_weight: false,
            final_t_weight: 1.0,
            loss_sum: false,
            clip_x0_range: None,
        }
    }
}

impl Recipe {
    pub fn is_default(&self) -> bool {
        *self == Recipe::default()
    }

    /// The learning rate of optimizer step `step` (0-based) of a phase of `steps` steps:
    /// constant, or `base (steps - step) / steps` (linear from base to base/steps, so the
    /// last update is small but not zero and the next one would be exactly 0).
    pub fn lr_at(&self, base: f64, step: u64, steps: u64) -> f64 {
        if !self.lr_anneal {
            return base;
        }
        let n = steps.max(1) as f64;
        base * (n - step.min(steps) as f64) / n
    }

    /// Per-sample loss weights from the schedule's weights `w`: flat (1), times
    /// `final_t_weight` where `at_top[i]` in the final phase, times `dim` for a summed loss.
    pub fn weights(&self, w: &[f64], at_top: &[bool], final_phase: bool, dim: usize) -> Vec<f64> {
        w.iter()
            .zip(at_top)
            .map(|(&w, &top)| {
                let mut v = if self.flat_weight { 1.0 } else { w };
                if final_phase && top {
                    v *= self.final_t_weight;
                }
                if self.loss_sum {
                    v *= dim as f64;
                }
                v
            })
            .collect()
    }

    /// Check the values a person typed.
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.final_t_weight.is_finite() && self.final_t_weight > 0.0) {
            return Err(crate::Error::input(format!(
                "--final-t-weight {} must be a positive number",
                self.final_t_weight
            )));
        }
        if let Some(c) = self.clip_x0_range
            && !(c.is_finite() && c > 0.0)
        {
            return Err(crate::Error::input(format!(
                "--clip-x0-range {c} must be a positive number"
            )));
        }
        Ok(())
    }
}

/// A denoiser whose x0 prediction is clipped to [-c, c].
pub struct Clipped<'a> {
    pub inner: &'a dyn Denoiser,
    pub c: f64,
}

impl Denoiser for Clipped<'_> {
    fn denoise(&self, x: Tensor<2>, times: &Times) -> Tensor<2> {
        self.inner.denoise(x, times).clamp(-self.c, self.c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tensors::{from_vec2, to_vec};
    use burn::tensor::Device;

    #[test]
    fn default_recipe_changes_nothing() {
        let r = Recipe::default();
        assert!(r.is_default());
        for s in [0, 5, 99] {
            assert_eq!(r.lr_at(1e-3, s, 100), 1e-3);
        }
        let w = [1.0, 2.5, 40.0];
        assert_eq!(r.weights(&w, &[true, false, true], true, 16), w.to_vec());
        // an old config without the field reads as the default
        let r2: Recipe = serde_json::from_str("{}").unwrap();
        assert_eq!(r2, r);
    }

    #[test]
    fn lr_anneals_linearly_to_zero_within_a_phase() {
        let r = Recipe {
            lr_anneal: true,
            ..Default::default()
        };
        let (base, n) = (1e-3, 4u64);
        // closed form base (n - i) / n: 1e-3, 7.5e-4, 5e-4, 2.5e-4, then 0
        let v: Vec<f64> = (0..=n).map(|i| r.lr_at(base, i, n)).collect();
        let want = [1e-3, 7.5e-4, 5e-4, 2.5e-4, 0.0];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{v:?}");
        }
        // the mean rate over the phase is (n + 1) / (2 n) of the base
        let mean: f64 = (0..n).map(|i| r.lr_at(base, i, n)).sum::<f64>() / n as f64;
        assert!((mean - base * (n + 1) as f64 / (2 * n) as f64).abs() < 1e-15);
    }

    #[test]
    fn loss_weight_switches() {
        let w = [1.0, 2.5, 40.0];
        let top = [false, true, true];
        let flat = Recipe {
            flat_weight: true,
            ..Default::default()
        };
        assert_eq!(flat.weights(&w, &top, true, 2), vec![1.0, 1.0, 1.0]);
        let extra = Recipe {
            final_t_weight: 32.0,
            ..Default::default()
        };
        assert_eq!(extra.weights(&w, &top, true, 2), vec![1.0, 80.0, 1280.0]);
        // only in the final phase
        assert_eq!(extra.weights(&w, &top, false, 2), w.to_vec());
        let sum = Recipe {
            loss_sum: true,
            ..Default::default()
        };
        assert_eq!(sum.weights(&w, &top, false, 16), vec![16.0, 40.0, 640.0]);
        assert!(
            Recipe {
                final_t_weight: 0.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    use crate::engine::data::Data;
    use crate::engine::distill::{DistillConfig, Method, Run};
    use crate::engine::schedule::Param;

    /// A tiny ring8 run: a 4-step fit, then the schedule at `samples` samples, batch 16.
    fn tiny(method: Method, schedule: &str, samples: u64, recipe: Recipe) -> DistillConfig {
        let data = Data::parse("toy:ring8").unwrap();
        let mut c = DistillConfig::new(&data, Param::Vp);
        c.method = method;
        c.schedule = schedule.into();
        c.batch = 16;
        c.fit_samples = 64;
        c.train_samples = samples;
        c.recipe = recipe;
        c
    }

    /// The loss log of a finished run: (phase, loss) per step.
    fn losses(c: DistillConfig) -> Vec<(usize, f32)> {
        let dir = tempfile::tempdir().unwrap();
        let dev = Device::flex();
        Run::new(c, dir.path(), &dev)
            .unwrap()
            .run_to_end(&mut |_: &crate::engine::distill::Event| true)
            .unwrap();
        // loss.csv: phase, step, global_step, loss (read here: the plot reader is a job)
        std::fs::read_to_string(dir.path().join(crate::engine::distill::LOSS_FILE))
            .unwrap()
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some((f.first()?.parse().ok()?, f.get(3)?.parse().ok()?))
            })
            .collect()
    }

    fn first_of(l: &[(usize, f32)], phase: usize) -> f32 {
        l.iter().find(|p| p.0 == phase).unwrap().1
    }

    #[test]
    fn summed_loss_is_dim_times_the_mean_and_t_top_weight_scales_the_final_phase() {
        // BTD 1024 -> 1: ten phases; the last (2 -> 1) trains only at t = T
        let base = losses(tiny(Method::Btd, "1024,1", 1600, Recipe::default()));
        let sum = losses(tiny(
            Method::Btd,
            "1024,1",
            1600,
            Recipe {
                loss_sum: true,
                ..Default::default()
            },
        ));
        // the fit is untouched; the first distillation step sees the same batch and weights
        // and its loss is exactly D = 2 times larger (scaling by 2 is exact in floats)
        assert_eq!(first_of(&base, 0), first_of(&sum, 0));
        assert_eq!(first_of(&sum, 1), 2.0 * first_of(&base, 1));
        let top = losses(tiny(
            Method::Btd,
            "1024,1",
            1600,
            Recipe {
                final_t_weight: 4.0,
                ..Default::default()
            },
        ));
        // every phase before the last is bit-identical; the last one's first loss is 4x
        let last = base.last().unwrap().0;
        assert_eq!(last, 10);
        let before: Vec<_> = base.iter().filter(|p| p.0 < last).collect();
        let before_top: Vec<_> = top.iter().filter(|p| p.0 < last).collect();
        assert_eq!(before, before_top);
        assert_eq!(first_of(&top, last), 4.0 * first_of(&base, last));
        // flat weights: at t = T the weight max(1, SNR) is 1 already, so the final phase's
        // first loss is the same; in the first phase (small t, SNR >> 1) it is smaller
        let flat = losses(tiny(
            Method::Btd,
            "1024,1",
            1600,
            Recipe {
                flat_weight: true,
                ..Default::default()
            },
        ));
        assert!(first_of(&flat, 1) < first_of(&base, 1));
    }

    #[test]
    fn adam_is_kept_across_phases_only_when_asked() {
        let dev = Device::flex();
        for keep in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let c = tiny(
                Method::Tract,
                "1024,32,1",
                96 * 6,
                Recipe {
                    keep_adam: keep,
                    ..Default::default()
                },
            );
            let mut run = Run::new(c, dir.path(), &dev).unwrap();
            // fit 4 steps, 1024 -> 32: 96 samples = 6 steps, then 1 step into 32 -> 1
            assert_eq!(
                run.phases.iter().map(|p| p.steps).collect::<Vec<_>>(),
                vec![4, 6, 30]
            );
            run.run(
                false,
                &mut |_: &crate::engine::distill::Event| true,
                Some(4 + 6 + 1),
            )
            .unwrap();
            let st = run.load_state().unwrap();
            assert_eq!((st.phase, st.step), (2, 1));
            // Adam restarts after the fit either way; kept: 6 + 1 steps of moments
            assert_eq!(st.adam.t, if keep { 7 } else { 1 }, "keep_adam {keep}");
        }
    }

    #[test]
    fn lr_anneal_leaves_the_first_step_and_changes_the_rest() {
        let a = losses(tiny(Method::Tract, "1024,32,1", 1200, Recipe::default()));
        let b = losses(tiny(
            Method::Tract,
            "1024,32,1",
            1200,
            Recipe {
                lr_anneal: true,
                ..Default::default()
            },
        ));
        // the fit and the first distillation step (lr = base at step 0) are identical
        assert_eq!(
            a.iter().take(5).collect::<Vec<_>>(),
            b.iter().take(5).collect::<Vec<_>>()
        );
        assert_ne!(a, b);
    }

    #[test]
    fn clipped_denoiser_clamps_x0() {
        struct Id;
        impl Denoiser for Id {
            fn denoise(&self, x: Tensor<2>, _t: &Times) -> Tensor<2> {
                x
            }
        }
        let dev = Device::flex();
        let x = from_vec2(vec![-3.0, 0.5, 2.2, -0.1], [2, 2], &dev);
        let c = Clipped { inner: &Id, c: 2.0 };
        let t = Times::same(crate::engine::schedule::vp_coef(0.5), 2, &dev);
        assert_eq!(to_vec(c.denoise(x, &t)), vec![-2.0, 0.5, 2.0, -0.1]);
    }
}
