//! One optimizer step of a phase, as docs/algorithm.md, "One TRACT step", writes it (the
//! paper's Algorithm 1 for VP, Algorithm 2 for VE), and its two relatives: BTD (eqs 3-5: two
//! teacher steps, no self-teacher) and the fit / teacher phase ("Teacher training": the
//! target is the teacher's x0, or the clean sample itself).
//!
//! 1. `x_t` from data and fresh noise (eq 1; VE eq 10)               [`noisify`]
//! 2. the teacher's step t -> t-1: DDIM for VP, Heun for VE (eq 11)  [`teacher_solver`]
//! 3. the self-teacher's DDIM step t-1 -> s, unless s = t-1          (EMA weights, no grad)
//! 4. the target `x_hat = a x_s + b x_t` (eq 8; VE eq 14)            [`target_coefs`]
//! 5. the weighted squared error (A.2; VE eq 15)                      [`loss_weight`]
//! 6. Adam, then the self-teacher and inference EMAs (eq 16, A.7)    [`Run::train_step`]
//!
//! Steps 1-5 are [`tract_target`], a pure function of the data, the noise, the per-sample
//! noise levels and the two denoisers (as NVlabs/edm keeps its loss apart from its training
//! loop); `Run` draws the levels from its RNG and picks the denoisers of the phase.

use burn::tensor::Tensor;

use super::{Phase, PhaseKind, Run, RunState, recipe};
use crate::engine::data::gmm::ExactDenoiser;
use crate::engine::diffusion::{Denoiser, Solver, Times, ddim_step, heun_step, target_coefs};
use crate::engine::kernels;
use crate::engine::model::{Bound, Net};
use crate::engine::optim::{AdamConfig, ema_weight};
use crate::engine::rng::Rng;
use crate::engine::schedule::{self, Coef, Param};
use crate::engine::tensors::{from_vec1, from_vec2, to_vec};
use crate::{Error, Result};

/// The teacher of a run's first phase (later phases learn from the previous phase's EMA).
// one value per run, never stored in bulk: the variants' sizes do not matter
#[allow(clippy::large_enum_variant)]
pub(super) enum TeacherNet {
    Exact(ExactDenoiser),
    /// A model file: a teacher (or fit), or a student distilled by an earlier run
    /// (`distilled`: it takes DDIM steps, see [`teacher_solver`]).
    Net {
        params: Tensor<1>,
        distilled: bool,
        /// the teacher's own network (a diffusers student may predict another quantity)
        net: Net,
    },
    /// Teacher training: the target is the clean sample itself.
    Data,
}

/// The step a teacher takes from t to t-1. VP: DDIM (Algorithm 1). VE: Heun (Algorithm 2,
/// eq 11) for a denoiser of the continuous noise levels, the original teacher (the exact
/// one, a trained teacher or a fit); but a student of an earlier phase (`distilled`) was
/// trained so that one DDIM-VE jump from t lands where the teacher's steps land, and only
/// DDIM-VE steps reproduce that: Heun with its x0 overshoots (on ring8, 40,8,1 reached a mean
/// radius of 1.86 against the data's 1.51).
pub fn teacher_solver(param: Param, distilled: bool) -> Solver {
    match (param, distilled) {
        (Param::Ve, false) => Solver::Heun,
        _ => Solver::Ddim,
    }
}

/// The loss weight at level `c`: VP max(1, SNR) (A.2); VE EDM's (sigma^2 + sd^2) /
/// (sigma sd)^2 (eq 15), sd = sigma_data.
pub fn loss_weight(param: Param, sigma_data: f64, c: &Coef) -> f64 {
    match param {
        Param::Vp => c.snr().max(1.0),
        Param::Ve => {
            let sd = sigma_data;
            (c.sigma * c.sigma + sd * sd) / (c.sigma * sd).powi(2)
        }
    }
}

/// One sample's noise levels in a TRACT / BTD target: the student's input level `t`, the end
/// of the teacher's step `t1` (t-1) and the target's level `s` (s = t-1 or below; BTD: t-2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Levels {
    pub t: Coef,
    pub t1: Coef,
    pub s: Coef,
}

/// How a target is formed: the parametrisation (teacher step and loss weight), EDM's
/// sigma_data (VE weight), BTD (two teacher steps, no self-teacher) or TRACT, and whether the
/// teachers' x0 is clipped to [-1, 1] (images).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetRule {
    pub param: Param,
    pub sigma_data: f64,
    pub btd: bool,
    pub clip_x0: bool,
}

/// The denoisers a target comes from: the phase's teacher (`distilled` when it is a student of
/// an earlier phase or run, see [`teacher_solver`]) and the self-teacher (the student's EMA).
#[derive(Clone, Copy)]
pub struct Teachers<'a> {
    pub teacher: &'a dyn Denoiser,
    pub distilled: bool,
    pub self_teacher: &'a dyn Denoiser,
}

/// What the student is trained towards: `g(x_t, t)` should be `a x_s + b x_t` per sample,
/// with weight `w` in the mean squared error (before any recipe switch).
pub struct Target {
    pub ct: Vec<Coef>,
    pub xt: Tensor<2>,
    pub xs: Tensor<2>,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub w: Vec<f64>,
}

/// Steps 1-5 of one TRACT (or BTD) update, per sample, as a pure function: x_t = alpha_t x0 +
/// sigma_t eps; the teacher's step t -> t-1; the self-teacher's DDIM step t-1 -> s (BTD: the
/// teacher's second step; none when every s = t-1); the target coefficients of eq 8 / 14 and
/// the loss weight of A.2 / eq 15.
pub fn tract_target(
    rule: &TargetRule,
    teachers: Teachers,
    x0: Tensor<2>,
    eps: Tensor<2>,
    levels: &[Levels],
) -> Target {
    let ct: Vec<Coef> = levels.iter().map(|l| l.t).collect();
    let ct1: Vec<Coef> = levels.iter().map(|l| l.t1).collect();
    let cs: Vec<Coef> = levels.iter().map(|l| l.s).collect();
    let solver = teacher_solver(rule.param, teachers.distilled);
    let teacher_step = |x: Tensor<2>, from: &[Coef], to: &[Coef]| match solver {
        Solver::Ddim => ddim_step(teachers.teacher, x, from, to, rule.clip_x0),
        Solver::Heun => heun_step(teachers.teacher, x, from, to, rule.clip_x0),
    };
    // 1. x_t
    let xt = noisify(x0, eps, &ct);
    // 2. the teacher: t -> t-1
    let xt1 = teacher_step(xt.clone(), &ct, &ct1);
    // 3. t-1 -> s: BTD's second teacher step, else the self-teacher (if s < t-1)
    let xs = if rule.btd {
        teacher_step(xt1, &ct1, &cs)
    } else if levels.iter().all(|l| l.t1 == l.s) {
        xt1
    } else {
        ddim_step(teachers.self_teacher, xt1, &ct1, &cs, rule.clip_x0)
    };
    // 4. the x0 whose DDIM step t -> s lands on x_s
    let (a, b): (Vec<f64>, Vec<f64>) = ct.iter().zip(&cs).map(|(t, s)| target_coefs(t, s)).unzip();
    // 5. the weight
    let w = ct
        .iter()
        .map(|c| loss_weight(rule.param, rule.sigma_data, c))
        .collect();
    Target {
        ct,
        xt,
        xs,
        a,
        b,
        w,
    }
}

impl Run {
    /// One step of `phase`, update number `i` of the phase: the student takes an Adam step,
    /// then its self-teacher EMA (momentum mu_S) and inference EMA (`mu_i`) follow.
    /// Returns the (device) loss.
    pub(super) fn train_step(
        &self,
        phase: &Phase,
        st: &mut RunState,
        i: u64,
        mu_i: f64,
    ) -> Result<Tensor<1>> {
        let (gb, d) = (self.cfg.batch, self.data.dim());
        let dev = &self.device;
        // the data and the noise from the host RNG (in this order), uploaded in one transfer;
        // data-parallel: every rank draws the whole global batch and keeps its rows
        // (engine::collective), so a step's numbers are those of one process
        let rows = self.collective.rows(gb);
        let b = rows.len();
        let mut host = self.data.sample(&mut st.rng, gb);
        let noise = st.rng.normals(gb * d);
        if b != gb {
            host = host[rows.start * d..rows.end * d].to_vec();
            host.extend_from_slice(&noise[rows.start * d..rows.end * d]);
        } else {
            host.extend(noise);
        }
        let both = from_vec2(host, [2 * b, d], dev);
        let (x0, eps) = (both.clone().slice(0..b), both.slice(b..2 * b));
        let target = match phase.kind {
            PhaseKind::Fit => self.fit_target(x0, eps, st),
            PhaseKind::Tract { from, to } => self.tract_target(x0, eps, st, from, to, false),
            PhaseKind::Btd { from, to } => self.tract_target(x0, eps, st, from, to, true),
        };
        // 5. w(t) |g(x_t, t) - (a x_s + b x_t)|^2 averaged; the target carries no gradient
        let Target {
            ct,
            xt,
            xs,
            a,
            b: bb,
            w,
        } = target;
        // the recipe switches act on distillation phases only (a fit or a teacher is as before)
        let distilling = phase.kind != PhaseKind::Fit;
        let w = if self.cfg.recipe.is_default() || !distilling {
            w
        } else {
            let top = self.grid.coef(self.grid.steps);
            let at_top: Vec<bool> = ct.iter().map(|c| *c == top).collect();
            let last = st.phase + 1 == self.phases.len();
            self.cfg.recipe.weights(&w, &at_top, last, d)
        };
        let times = Times::new(ct, dev);
        // the student's tensors as autodiff leaves (model::Params)
        let layout = self.net.layout();
        let leaves = layout.leaves(&st.student);
        let g = self.net.forward(&leaves, xt.clone(), &times);
        let loss = kernels::tract_loss(g, xs, xt, &a, &bb, &w);
        // 6. Adam on the student, then the EMAs (Algorithm 1 line 21, A.7)
        #[cfg(feature = "train")]
        let grad = layout
            .backward(&leaves, &loss)
            .ok_or_else(|| Error::Diverged("no gradient for the student".into()))?;
        #[cfg(not(feature = "train"))]
        let grad: Tensor<1> = Err(Error::input("built without training (the `train` feature)"))?;
        // data-parallel: the mean of the ranks' gradients (and losses), one all-reduce
        let (grad, loss) = self.all_reduce_mean(grad, loss.inner())?;
        let adam = AdamConfig {
            lr: if distilling {
                self.cfg
                    .recipe
                    .lr_at(self.cfg.adam.lr, st.step, phase.steps)
            } else {
                self.cfg.adam.lr
            },
            ..self.cfg.adam.clone()
        };
        st.student = st.adam.step(&adam, st.student.clone(), grad);
        let (ws, wi) = (ema_weight(self.cfg.mu_s, i), ema_weight(mu_i, i));
        let (s, e) = kernels::ema2(&st.student, st.self_teacher.clone(), st.ema.clone(), ws, wi);
        st.self_teacher = s;
        st.ema = e;
        Ok(loss)
    }

    /// The mean over the ranks of the gradient and the loss: ONE all-reduce on the flat
    /// gradient with the loss appended (device -> host -> MPI -> host -> device), timed into
    /// `last_allreduce_s`. In one process both come back untouched.
    fn all_reduce_mean(&self, grad: Tensor<1>, loss: Tensor<1>) -> Result<(Tensor<1>, Tensor<1>)> {
        let ranks = self.collective.size();
        if ranks <= 1 {
            return Ok((grad, loss));
        }
        let start = web_time::Instant::now();
        let dev = &self.device;
        let mut host = to_vec(Tensor::cat(vec![grad, loss], 0));
        self.collective.all_reduce_sum(&mut host)?;
        let inv = 1.0 / ranks as f32;
        host.iter_mut().for_each(|v| *v *= inv);
        let l = host.pop().expect("the loss was appended");
        let out = (from_vec1(host, dev), from_vec1(vec![l], dev));
        self.last_allreduce_s.set(start.elapsed().as_secs_f64());
        Ok(out)
    }

    /// Steps 1-5 of a TRACT phase `from` -> `to` steps (group S = from / to), or of BTD
    /// (`btd`: S = 2, two teacher steps): the levels drawn from the run's RNG, the target
    /// from [`tract_target`] with this phase's teacher and self-teacher.
    fn tract_target(
        &self,
        x0: Tensor<2>,
        eps: Tensor<2>,
        st: &mut RunState,
        from: usize,
        to: usize,
        btd: bool,
    ) -> Target {
        let gb = self.cfg.batch;
        let stride = self.grid.steps / from;
        let group = from / to;
        // per sample: s ~ {0, S, ..., T-S}, p ~ {1..S}, t = s + p (BTD: t = s + 2)
        let c = |i: usize| self.grid.coef(i * stride);
        let mut levels = Vec::with_capacity(gb);
        for _ in 0..gb {
            let s = group * st.rng.below(to);
            let t = if btd {
                s + 2
            } else {
                s + 1 + st.rng.below(group)
            };
            levels.push(Levels {
                t: c(t),
                t1: c(t - 1),
                s: c(s),
            });
        }
        // every rank draws the global batch's levels and keeps its rows
        let levels = &levels[self.collective.rows(gb)];
        // the teacher and the self-teacher (with the recipe's x0 clip, both are clipped)
        let teacher_box = self.teacher_den(st);
        let self_teacher = Bound {
            model: &self.net,
            params: &st.self_teacher,
        };
        let (tc, sc);
        let (teacher, self_teacher): (&dyn Denoiser, &dyn Denoiser) =
            match self.cfg.recipe.clip_x0_range {
                Some(c) => {
                    tc = recipe::Clipped {
                        inner: teacher_box.as_ref(),
                        c,
                    };
                    sc = recipe::Clipped {
                        inner: &self_teacher,
                        c,
                    };
                    (&tc, &sc)
                }
                None => (teacher_box.as_ref(), &self_teacher),
            };
        let rule = TargetRule {
            param: self.cfg.param,
            sigma_data: self.cfg.net.sigma_data(),
            btd,
            clip_x0: self.cfg.clip_x0,
        };
        let teachers = Teachers {
            teacher,
            distilled: self.teacher_is_distilled(st),
            self_teacher,
        };
        tract_target(&rule, teachers, x0, eps, levels)
    }

    /// The fit / teacher phase at continuous noise levels: the target is the teacher's x0
    /// (the data itself when training a teacher), a = 1, b = 0.
    fn fit_target(&self, x0: Tensor<2>, eps: Tensor<2>, st: &mut RunState) -> Target {
        let gb = self.cfg.batch;
        let all: Vec<Coef> = (0..gb)
            .map(|_| random_level(&self.grid, &mut st.rng))
            .collect();
        // every rank draws the global batch's levels and keeps its rows
        let ct = all[self.collective.rows(gb)].to_vec();
        let b = ct.len();
        let times = Times::new(ct.clone(), &self.device);
        let xt = noisify(x0.clone(), eps, &ct);
        let xs = match self.original {
            TeacherNet::Data => x0,
            _ => self.teacher_den(st).denoise(xt.clone(), &times),
        };
        let w = ct
            .iter()
            .map(|c| loss_weight(self.cfg.param, self.cfg.net.sigma_data(), c))
            .collect();
        Target {
            ct,
            xt,
            xs,
            a: vec![1.0; b],
            b: vec![0.0; b],
            w,
        }
    }

    /// The teacher of the current phase: the previous phase's EMA, else the run's own.
    fn teacher_den<'a>(&'a self, st: &'a RunState) -> Box<dyn Denoiser + 'a> {
        match (&st.teacher, &self.original) {
            (Some(t), _) => Box::new(Bound {
                model: &self.net,
                params: t,
            }),
            (None, TeacherNet::Exact(e)) => Box::new(e.clone()),
            (None, TeacherNet::Net { params, net, .. }) => Box::new(Bound { model: net, params }),
            (None, TeacherNet::Data) => {
                unreachable!("a data teacher has no denoiser; train_step uses x0")
            }
        }
    }

    /// Whether the current phase's teacher is a distilled student (of an earlier phase, or
    /// given as the run's teacher), which takes DDIM steps (see [`teacher_solver`]).
    fn teacher_is_distilled(&self, st: &RunState) -> bool {
        st.teacher.is_some()
            || matches!(
                self.original,
                TeacherNet::Net {
                    distilled: true,
                    ..
                }
            )
    }
}

/// A fit / teacher phase's noise level: u ~ U(0, 1] in continuous time (VP), or a uniform
/// position on the Karras curve sigma^(1/rho), rho = 7 (VE); on a diffusers teacher's discrete
/// grid one of its timesteps, uniformly (the only levels that network knows, as diffusers
/// trains it).
pub fn random_level(grid: &schedule::Grid, rng: &mut Rng) -> Coef {
    if grid.ddpm.is_some() {
        return grid.coef(1 + rng.below(grid.steps));
    }
    match grid.param {
        Param::Vp => schedule::vp_coef(1.0 - rng.uniform()),
        Param::Ve => {
            let (lo, hi) = (
                schedule::KARRAS_SIGMA_MIN.powf(1.0 / 7.0),
                schedule::KARRAS_SIGMA_MAX.powf(1.0 / 7.0),
            );
            schedule::ve_coef_sigma((lo + rng.uniform() * (hi - lo)).powf(7.0))
        }
    }
}

/// x_t = alpha x0 + sigma eps per sample (eq 1; VE: alpha = 1).
fn noisify(x0: Tensor<2>, eps: Tensor<2>, c: &[Coef]) -> Tensor<2> {
    let (a, s): (Vec<f64>, Vec<f64>) = c.iter().map(|c| (c.alpha, c.sigma)).unzip();
    kernels::row_axpby(x0, eps, &a, &s, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schedule::{Grid, ddpm_linear_1000};

    /// A diffusers teacher's network knows its timesteps only: a fit on its grid (the re-fit
    /// of a re-parametrised student) must draw those, with the grid's own alpha and sigma.
    /// Drawing continuous cosine levels there, as before, gave tau in (0, 1] and fails this.
    #[test]
    fn fit_levels_on_a_ddpm_grid_are_its_timesteps() {
        let g = Grid::ddpm(ddpm_linear_1000(Some(1.0)));
        let mut rng = Rng::new(3);
        let taus: Vec<f64> = (0..4000)
            .map(|_| {
                let c = random_level(&g, &mut rng);
                assert_eq!(c.tau.fract(), 0.0, "timestep {} is not an integer", c.tau);
                assert!((0.0..1000.0).contains(&c.tau), "timestep {}", c.tau);
                assert_eq!(c, g.coef(c.tau as usize + 1));
                c.tau
            })
            .collect();
        // uniform over 0..999: both ends are reached and the mean is near 499.5
        let mean = taus.iter().sum::<f64>() / taus.len() as f64;
        assert!(taus.iter().any(|t| *t < 5.0) && taus.iter().any(|t| *t > 994.0));
        assert!((mean - 499.5).abs() < 15.0, "mean timestep {mean}");
        // the project's own continuous VP grid keeps continuous levels in (0, 1]
        let v = random_level(&Grid::new(Param::Vp, 1024), &mut rng);
        assert!(v.tau > 0.0 && v.tau <= 1.0);
    }
}
