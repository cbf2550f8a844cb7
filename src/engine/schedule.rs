//! Noise schedules (docs/algorithm.md, "Noise schedules") and distillation schedule strings.
//!
//! All schedule arithmetic is f64; tensors get f32 coefficients computed from it.

use serde::{Deserialize, Serialize};

/// Which diffusion parameterisation: variance preserving (cosine log-SNR) or
/// variance exploding (EDM / Karras).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Param {
    Vp,
    Ve,
}

impl std::str::FromStr for Param {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vp" => Ok(Param::Vp),
            "ve" => Ok(Param::Ve),
            other => Err(crate::Error::input(format!(
                "unknown parameterisation '{other}': expected 'vp' or 've'"
            ))),
        }
    }
}

pub const LAMBDA_MAX: f64 = 20.0;
pub const LAMBDA_MIN: f64 = -20.0;
pub const KARRAS_RHO: f64 = 7.0;
pub const KARRAS_SIGMA_MIN: f64 = 0.002;
pub const KARRAS_SIGMA_MAX: f64 = 80.0;

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Coefficients of x_t = alpha x0 + sigma eps at one grid point, plus the network's
/// time input `tau` (continuous time u for VP, c_noise = ln(sigma)/4 for VE).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coef {
    pub alpha: f64,
    pub sigma: f64,
    /// log-SNR = ln(alpha^2 / sigma^2); +inf at sigma = 0.
    pub logsnr: f64,
    pub tau: f64,
}

impl Coef {
    pub fn snr(&self) -> f64 {
        (self.alpha / self.sigma).powi(2)
    }
}

/// VP cosine log-SNR at continuous time u in [0, 1].
pub fn vp_lambda(u: f64) -> f64 {
    let b = (-LAMBDA_MAX / 2.0).exp().atan();
    let a = (-LAMBDA_MIN / 2.0).exp().atan() - b;
    -2.0 * (a * u + b).tan().ln()
}

/// VP coefficients at continuous time u (sigma^2 = sigmoid(-lambda), never 1 - gamma).
pub fn vp_coef(u: f64) -> Coef {
    let l = vp_lambda(u);
    Coef {
        alpha: sigmoid(l).sqrt(),
        sigma: sigmoid(-l).sqrt(),
        logsnr: l,
        tau: u,
    }
}

/// Karras sigma for grid index t in 1..=T (sigma_1 = sigma_min, sigma_T = sigma_max), 0 at t = 0.
pub fn karras_sigma(t: usize, big_t: usize) -> f64 {
    if t == 0 {
        return 0.0;
    }
    if big_t == 1 {
        return KARRAS_SIGMA_MAX;
    }
    let (lo, hi) = (
        KARRAS_SIGMA_MIN.powf(1.0 / KARRAS_RHO),
        KARRAS_SIGMA_MAX.powf(1.0 / KARRAS_RHO),
    );
    let f = (t - 1) as f64 / (big_t - 1) as f64;
    (lo + f * (hi - lo)).powf(KARRAS_RHO)
}

pub fn ve_coef_sigma(sigma: f64) -> Coef {
    Coef {
        alpha: 1.0,
        sigma,
        logsnr: if sigma > 0.0 {
            -2.0 * sigma.ln()
        } else {
            f64::INFINITY
        },
        tau: if sigma > 0.0 {
            sigma.ln() / 4.0
        } else {
            f64::NEG_INFINITY
        },
    }
}

/// A discrete T-step noise grid, t in 0..=T: the continuous VP cosine or VE Karras schedule,
/// or a diffusers DDPM schedule (`ddpm`, see [`Ddpm`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub param: Param,
    pub steps: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddpm: Option<Ddpm>,
}

impl Grid {
    pub fn new(param: Param, steps: usize) -> Self {
        Grid {
            param,
            steps,
            ddpm: None,
        }
    }
    /// The grid of a diffusers scheduler: T = num_train_timesteps, VP.
    pub fn ddpm(d: Ddpm) -> Self {
        Grid {
            param: Param::Vp,
            steps: d.train_steps,
            ddpm: Some(d),
        }
    }
    pub fn coef(&self, t: usize) -> Coef {
        assert!(t <= self.steps);
        if let Some(d) = &self.ddpm {
            return d.coef(t);
        }
        match self.param {
            Param::Vp => vp_coef(t as f64 / self.steps as f64),
            Param::Ve => ve_coef_sigma(karras_sigma(t, self.steps)),
        }
    }
    /// The K-step sampling path t_k = round(k T / K), k = K..0 (descending, ends at 0).
    /// For a DDPM grid this is diffusers' trailing spacing (grid point g is timestep g - 1).
    pub fn path(&self, k_steps: usize) -> Vec<usize> {
        let k_steps = k_steps.clamp(1, self.steps);
        (0..=k_steps)
            .rev()
            .map(|k| ((k * self.steps) as f64 / k_steps as f64).round() as usize)
            .collect()
    }
    /// The K steps a sampler takes, as (from, to) grid points: consecutive points of `path`,
    /// or for a DDPM grid exactly the pairs diffusers' DDIMScheduler takes with its spacing
    /// (which need not chain: with linspace spacing it evaluates at a timestep other than
    /// the one the previous step landed on).
    pub fn steps_of(&self, k_steps: usize) -> Vec<(usize, usize)> {
        match &self.ddpm {
            Some(d) => d.ddim_pairs(k_steps.clamp(1, self.steps)),
            None => self
                .path(k_steps)
                .windows(2)
                .map(|w| (w[0], w[1]))
                .collect(),
        }
    }
}

/// diffusers' `beta_schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    Linear,
    ScaledLinear,
    SquaredcosCapV2,
}

/// diffusers' `timestep_spacing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

impl std::str::FromStr for Spacing {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "leading" => Ok(Spacing::Leading),
            "trailing" => Ok(Spacing::Trailing),
            "linspace" => Ok(Spacing::Linspace),
            o => Err(crate::Error::input(format!(
                "unknown timestep spacing '{o}': expected trailing, leading or linspace"
            ))),
        }
    }
}

/// A diffusers discrete-time VP schedule (DDPMScheduler / DDIMScheduler config), computed as
/// diffusers computes it: betas in f32 (linspace like torch's), alphas_cumprod in f32.
/// Grid point g in 1..=T is diffusers timestep g - 1; g = 0 is the end point, where
/// alpha_bar is 1 (`set_alpha_to_one`) or `alphas_cumprod[0]`. docs/algorithm.md, "DDPM grids".
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ddpm {
    pub train_steps: usize,
    pub beta_schedule: BetaSchedule,
    pub beta_start: f64,
    pub beta_end: f64,
    pub set_alpha_to_one: bool,
    pub spacing: Spacing,
    pub steps_offset: usize,
    /// `clip_sample_range` when `clip_sample` is on: DDIM clamps x0 (and keeps the
    /// network's epsilon).
    pub clip: Option<f64>,
}

/// The google/ddpm-* models' scheduler (linear betas 1e-4..0.02 over 1000 steps, trailing
/// spacing), with this `clip`: the schedule the unit tests share.
#[cfg(test)]
pub(crate) fn ddpm_linear_1000(clip: Option<f64>) -> Ddpm {
    Ddpm {
        train_steps: 1000,
        beta_schedule: BetaSchedule::Linear,
        beta_start: 1e-4,
        beta_end: 0.02,
        set_alpha_to_one: true,
        spacing: Spacing::Trailing,
        steps_offset: 0,
        clip,
    }
}

/// torch.linspace(a, b, n) in f32 (both halves, as torch computes them).
fn linspace_f32(a: f32, b: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                a + step * i as f32
            } else {
                b - step * (n - i - 1) as f32
            }
        })
        .collect()
}

impl Ddpm {
    /// The betas, f32 like diffusers'.
    pub fn betas(&self) -> Vec<f32> {
        let n = self.train_steps;
        match self.beta_schedule {
            BetaSchedule::Linear => linspace_f32(self.beta_start as f32, self.beta_end as f32, n),
            BetaSchedule::ScaledLinear => linspace_f32(
                (self.beta_start.sqrt()) as f32,
                (self.beta_end.sqrt()) as f32,
                n,
            )
            .into_iter()
            .map(|b| b * b)
            .collect(),
            BetaSchedule::SquaredcosCapV2 => {
                let f = |t: f64| {
                    ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
                        .cos()
                        .powi(2)
                };
                (0..n)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                        (1.0 - f(t2) / f(t1)).min(0.999) as f32
                    })
                    .collect()
            }
        }
    }
    /// `alphas_cumprod[i]`, i in 0..T (f32 values; the product accumulated in f64 as torch's
    /// CPU cumprod does).
    pub fn alphas_cumprod(&self) -> Vec<f32> {
        let mut acc = 1.0f64;
        self.betas()
            .into_iter()
            .map(|b| {
                acc *= (1.0f32 - b) as f64;
                acc as f32
            })
            .collect()
    }
    /// alpha_bar at grid point g (g = 0: the end point).
    pub fn alpha_bar(&self, g: usize) -> f64 {
        let ac = self.alphas_cumprod();
        if g == 0 {
            if self.set_alpha_to_one {
                1.0
            } else {
                ac[0] as f64
            }
        } else {
            ac[g - 1] as f64
        }
    }
    /// The coefficients at grid point g; `tau` is the diffusers timestep g - 1 (-1 at g = 0,
    /// where no network is evaluated).
    pub fn coef(&self, g: usize) -> Coef {
        let ab = self.alpha_bar(g);
        let (alpha, sigma) = (ab.sqrt(), (1.0 - ab).max(0.0).sqrt());
        Coef {
            alpha,
            sigma,
            logsnr: if sigma > 0.0 {
                (ab / (1.0 - ab)).ln()
            } else {
                f64::INFINITY
            },
            tau: g as f64 - 1.0,
        }
    }
    /// The timesteps diffusers' DDIMScheduler.set_timesteps(K) gives.
    pub fn timesteps(&self, k: usize) -> Vec<i64> {
        let t = self.train_steps as i64;
        let k = k as i64;
        match self.spacing {
            Spacing::Leading => {
                let ratio = t / k;
                (0..k)
                    .rev()
                    .map(|i| i * ratio + self.steps_offset as i64)
                    .collect()
            }
            Spacing::Trailing => {
                // np.round(np.arange(T, 0, -T / K)) - 1
                let ratio = t as f64 / k as f64;
                (0..k)
                    .map(|i| (t as f64 - i as f64 * ratio).round_ties_even() as i64 - 1)
                    .collect()
            }
            Spacing::Linspace => (0..k)
                .rev()
                .map(|i| {
                    // np.linspace(0, T - 1, K).round()[::-1]
                    let v = if k == 1 {
                        0.0
                    } else if i == k - 1 {
                        (t - 1) as f64
                    } else {
                        i as f64 * ((t - 1) as f64 / (k - 1) as f64)
                    };
                    v.round_ties_even() as i64
                })
                .collect(),
        }
    }
    /// DDIMScheduler's steps as (from, to) grid points: from the timestep t to
    /// t - T // K (the end point when that is negative).
    pub fn ddim_pairs(&self, k: usize) -> Vec<(usize, usize)> {
        let ratio = (self.train_steps / k) as i64;
        let last = self.train_steps as i64 - 1;
        self.timesteps(k)
            .into_iter()
            .map(|t| {
                let t = t.clamp(0, last);
                let prev = t - ratio;
                (t as usize + 1, if prev < 0 { 0 } else { prev as usize + 1 })
            })
            .collect()
    }
}

/// Default T for a parameterisation (the paper: 1024 for VP, 40 Karras steps for VE).
pub fn default_steps(param: Param) -> usize {
    match param {
        Param::Vp => 1024,
        Param::Ve => 40,
    }
}

/// The most steps a noise grid (and so a schedule's teacher) may have: 2^20. Beyond it a
/// sampling path alone takes gigabytes, and nobody trains a teacher that fine.
pub const MAX_STEPS: usize = 1 << 20;

/// A distillation schedule `1024,32,1`: the step counts each phase goes through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub steps: Vec<usize>,
}

impl Schedule {
    /// Parse and validate. Every number must be positive, strictly decreasing, and each
    /// must divide the previous one (group size S = T / T').
    pub fn parse(s: &str) -> Result<Schedule, crate::Error> {
        let bad = |why: String| {
            crate::Error::input(format!(
                "invalid distillation schedule '{s}': {why}; expected positive step counts, strictly decreasing, each dividing the one before, e.g. '1024,32,1'"
            ))
        };
        let steps = s
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<usize>()
                    .map_err(|_| bad(format!("'{}' is not a whole number", p.trim())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(big) = steps.iter().find(|&&n| n > MAX_STEPS) {
            return Err(bad(format!(
                "{big} steps is more than the most a grid may have ({MAX_STEPS})"
            )));
        }
        if steps.len() < 2 {
            return Err(bad(
                "it needs at least two step counts (a teacher and a student)".into(),
            ));
        }
        for w in steps.windows(2) {
            if w[0] == 0 || w[1] == 0 {
                return Err(bad("step counts must be positive".into()));
            }
            if w[1] >= w[0] {
                return Err(bad(format!("{} does not come down from {}", w[1], w[0])));
            }
            if w[0] % w[1] != 0 {
                return Err(bad(format!("{} does not divide {}", w[1], w[0])));
            }
        }
        Ok(Schedule { steps })
    }

    pub fn teacher_steps(&self) -> usize {
        self.steps[0]
    }
    pub fn final_steps(&self) -> usize {
        *self.steps.last().unwrap()
    }
    /// TRACT phases: (T, T') pairs.
    pub fn tract_phases(&self) -> Vec<(usize, usize)> {
        self.steps.windows(2).map(|w| (w[0], w[1])).collect()
    }
    /// BTD phases: halve from T to the final step count (a power-of-two ratio). Where T / K is
    /// not a power of two (a diffusers teacher's 1000 steps), a schedule `T,K1,...,K` whose
    /// K1 divides T and K1 / K is a power of two starts with one TRACT phase T -> K1 (BTD's
    /// two teacher steps cannot cover T / K1 steps) and halves from there: `1000,8,1` is
    /// TRACT 1000 -> 8, then BTD 8 -> 4 -> 2 -> 1. The first pair is then not binary
    /// (from / to > 2), which [`crate::engine::distill`]'s plan runs as a TRACT phase.
    pub fn btd_phases(&self) -> Result<Vec<(usize, usize)>, crate::Error> {
        let (t, k) = (self.teacher_steps(), self.final_steps());
        let halve = |from: usize| {
            let mut v = vec![];
            let mut cur = from;
            while cur > k {
                v.push((cur, cur / 2));
                cur /= 2;
            }
            v
        };
        if (t / k).is_power_of_two() {
            return Ok(halve(t));
        }
        let k1 = self.steps[1];
        if self.steps.len() > 2
            && t.is_multiple_of(k1)
            && k1.is_multiple_of(k)
            && (k1 / k).is_power_of_two()
        {
            let mut v = vec![(t, k1)];
            v.extend(halve(k1));
            return Ok(v);
        }
        Err(crate::Error::input(format!(
            "BTD halves the step count each phase, so {t} / {k} must be a power of two, or the schedule must name a first phase {t},K whose K divides {t} with K / {k} a power of two (for example {t},{},{k})",
            largest_binary_divisor(t, k).unwrap_or(k)
        )))
    }
}

/// The largest K dividing `t` with K / `k` a power of two (a BTD start from `t` steps).
fn largest_binary_divisor(t: usize, k: usize) -> Option<usize> {
    let mut best = None;
    let mut c = k;
    while c < t {
        if t.is_multiple_of(c) {
            best = Some(c);
        }
        c *= 2;
    }
    best
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s: Vec<String> = self.steps.iter().map(|s| s.to_string()).collect();
        write!(f, "{}", s.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp_cosine_matches_independent_values() {
        // Independent closed form: with b = atan(e^-10), a = atan(e^10) - b = pi/2 - 2b,
        // lambda(0) = 20, lambda(1) = -20, lambda(1/2) = -2 ln tan(pi/4) = 0.
        assert!((vp_lambda(0.0) - 20.0).abs() < 1e-9);
        assert!((vp_lambda(1.0) + 20.0).abs() < 1e-9);
        assert!(vp_lambda(0.5).abs() < 1e-12);
        // u = 1/4: tan(pi/8 - b/2 + b) computed by hand from the definition.
        let b = (-10.0f64).exp().atan();
        let expect = -2.0
            * ((std::f64::consts::PI / 2.0 - 2.0 * b) * 0.25 + b)
                .tan()
                .ln();
        assert!((vp_lambda(0.25) - expect).abs() < 1e-12);
        // 2 ln(tan(pi/8)) = 2 ln(sqrt(2) - 1) = -1.7627..., lambda(1/4) ~ +1.7627 (b is tiny)
        assert!((vp_lambda(0.25) - 1.762_747_174).abs() < 1e-3);
        // alpha^2 + sigma^2 = 1 and sigma stays accurate near t = 0.
        for u in [0.0, 1e-3, 0.3, 0.77, 1.0] {
            let c = vp_coef(u);
            assert!((c.alpha * c.alpha + c.sigma * c.sigma - 1.0).abs() < 1e-12);
        }
        let c0 = vp_coef(0.0);
        assert!((c0.sigma - (1.0 / (1.0 + 20f64.exp())).sqrt()).abs() < 1e-15);
        // gamma_T ~ 2e-9 (docs/algorithm.md, "Sampling").
        let gt = vp_coef(1.0).alpha.powi(2);
        assert!((gt - 2.06e-9).abs() < 0.01e-9, "{gt}");
    }

    #[test]
    fn karras_matches_closed_form() {
        let g = Grid::new(Param::Ve, 40);
        assert_eq!(g.coef(0).sigma, 0.0);
        assert!((g.coef(1).sigma - 0.002).abs() < 1e-12);
        assert!((g.coef(40).sigma - 80.0).abs() < 1e-9);
        // EDM's own formula, index i = 40 - t from sigma_max down: (smax^(1/7) + i/39 (smin^(1/7) - smax^(1/7)))^7
        let (smin, smax) = (0.002f64, 80f64);
        let i = 40 - 17;
        let edm = (smax.powf(1.0 / 7.0)
            + i as f64 / 39.0 * (smin.powf(1.0 / 7.0) - smax.powf(1.0 / 7.0)))
        .powf(7.0);
        assert!((g.coef(17).sigma - edm).abs() < 1e-9 * edm);
        // strictly increasing
        for t in 1..40 {
            assert!(g.coef(t + 1).sigma > g.coef(t).sigma);
        }
    }

    #[test]
    fn sampling_path() {
        let g = Grid::new(Param::Vp, 1024);
        assert_eq!(g.path(1), vec![1024, 0]);
        assert_eq!(g.path(4), vec![1024, 768, 512, 256, 0]);
        assert_eq!(g.path(1024).len(), 1025);
    }

    #[test]
    fn schedule_strings() {
        let s = Schedule::parse("1024,32,1").unwrap();
        assert_eq!(s.tract_phases(), vec![(1024, 32), (32, 1)]);
        assert_eq!(s.btd_phases().unwrap().len(), 10);
        assert_eq!(
            Schedule::parse(" 4096, 256,16 ,1").unwrap().steps,
            vec![4096, 256, 16, 1]
        );
        for bad in [
            "1024,33,1",
            "32,1024",
            "0",
            "",
            "1024",
            "1024,,1",
            "a,b",
            "1024,0",
            "64,64",
            "-4,1",
            "1099511627776,1",
            "2097152,1",
            "1024 32 1",
            "1024;32;1",
            "1e3,1",
        ] {
            let e = Schedule::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid distillation schedule"), "{bad}: {e}");
        }
        assert!(
            Schedule::parse("1024,33,1")
                .unwrap_err()
                .to_string()
                .contains("33 does not divide 1024")
        );
        assert!(
            Schedule::parse("32,1024")
                .unwrap_err()
                .to_string()
                .contains("does not come down")
        );
        assert!(Schedule::parse("96,1").unwrap().btd_phases().is_err());
        // a diffusers teacher's 1000 steps: one TRACT phase to 8, then binary
        assert_eq!(
            Schedule::parse("1000,8,1").unwrap().btd_phases().unwrap(),
            vec![(1000, 8), (8, 4), (4, 2), (2, 1)]
        );
        assert_eq!(
            Schedule::parse("1000,8,2").unwrap().btd_phases().unwrap(),
            vec![(1000, 8), (8, 4), (4, 2)]
        );
        let e = Schedule::parse("1000,1").unwrap().btd_phases().unwrap_err();
        assert!(e.to_string().contains("for example 1000,8,1"), "{e}");
        assert!(Schedule::parse("1000,40,1").unwrap().btd_phases().is_err());
        assert!(
            Schedule::parse("1099511627776,1")
                .unwrap_err()
                .to_string()
                .contains("more than the most a grid may have (1048576)")
        );
        assert_eq!(
            Schedule::parse("1048576,1").unwrap().steps,
            vec![MAX_STEPS, 1]
        );
    }

    #[test]
    fn ddpm_schedules_and_spacings_match_diffusers() {
        let mut d = ddpm_linear_1000(None);
        // closed form of the linear schedule: prod_i (1 - beta_i) at 999, computed in f64
        let want: f64 = (0..1000)
            .map(|i| 1.0 - (1e-4 + (0.02 - 1e-4) * i as f64 / 999.0))
            .product();
        let ab = d.alphas_cumprod();
        assert!(
            (ab[999] as f64 / want - 1.0).abs() < 1e-4,
            "{} {want}",
            ab[999]
        );
        assert!((ab[999] as f64 - 4.04e-5).abs() < 0.01e-5);
        let g = Grid::ddpm(d);
        assert_eq!(g.coef(0).alpha, 1.0);
        assert_eq!(g.coef(0).sigma, 0.0);
        assert!((g.coef(1000).alpha - (ab[999] as f64).sqrt()).abs() < 1e-12);
        assert_eq!(g.coef(1000).tau, 999.0);
        // trailing: K = 1 is t = 999, K = 2 is 999, 499 (the tool's default)
        assert_eq!(d.timesteps(1), vec![999]);
        assert_eq!(d.timesteps(2), vec![999, 499]);
        assert_eq!(g.steps_of(2), vec![(1000, 500), (500, 0)]);
        assert_eq!(
            g.steps_of(4),
            vec![(1000, 750), (750, 500), (500, 250), (250, 0)]
        );
        d.spacing = Spacing::Leading;
        d.steps_offset = 1;
        assert_eq!(d.timesteps(4), vec![751, 501, 251, 1]);
        assert_eq!(
            d.ddim_pairs(4),
            vec![(752, 502), (502, 252), (252, 2), (2, 0)]
        );
        d.spacing = Spacing::Linspace;
        assert_eq!(d.timesteps(4), vec![999, 666, 333, 0]);
        // DDIM's previous timestep is t - T // K, not the next timestep (the pairs do not chain)
        assert_eq!(d.ddim_pairs(4)[1], (667, 417));
        // set_alpha_to_one false: the end point is alphas_cumprod[0]
        d.set_alpha_to_one = false;
        assert!((d.alpha_bar(0) - (1.0 - 1e-4f32 as f64)).abs() < 1e-7);
        // scaled_linear and the cosine schedule: first and last betas in closed form
        d.beta_schedule = BetaSchedule::ScaledLinear;
        d.beta_start = 0.00085;
        d.beta_end = 0.012;
        let b = d.betas();
        assert!((b[0] as f64 - 0.00085).abs() < 1e-9 && (b[999] as f64 - 0.012).abs() < 1e-8);
        d.beta_schedule = BetaSchedule::SquaredcosCapV2;
        let b = d.betas();
        let f = |t: f64| {
            ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
                .cos()
                .powi(2)
        };
        assert!((b[0] as f64 - (1.0 - f(0.001) / f(0.0))).abs() < 1e-9);
        assert_eq!(b[999], 0.999);
    }
}
