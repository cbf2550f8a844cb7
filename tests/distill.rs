//! Distillation acceptance at a reduced budget: on toy:ring8 and on a mixture written
//! here (other weights, stds, dimension), TRACT 1-step students land near the exact
//! 1024-step sampler from the same noise, far nearer than the teacher's own 1 step.

use burn::tensor::Device;
use tract_studio::demo::{DemoConfig, run};
use tract_studio::distill::Event;

fn quiet(_: &Event) -> bool {
    true
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tract-acc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn tract_on_ring8_at_reduced_budget() {
    let cfg = DemoConfig {
        out: tmp("ring8"),
        fit_samples: 400_000,
        train_samples: 800_000,
        n_eval: 10_000,
        two_step: false,
        ..Default::default()
    };
    let res = run(&cfg, &Device::flex(), &mut quiet).unwrap();
    eprintln!("{}", res.table());
    let teacher1 = res.rows[1].rmse_to_teacher;
    let tract = res.row("TRACT");
    let btd = res.row("BTD");
    assert!(
        res.rows[0].sw2 < 0.08,
        "exact 1024-step SW2 {}",
        res.rows[0].sw2
    );
    assert!(
        tract.rmse_to_teacher <= 0.4 * teacher1,
        "TRACT 1-step RMSE {} vs teacher 1-step {}",
        tract.rmse_to_teacher,
        teacher1
    );
    assert!(tract.sw2 <= 0.25, "TRACT 1-step SW2 {}", tract.sw2);
    // BTD must at least beat the 1-step teacher too (it is a working baseline)
    assert!(
        btd.rmse_to_teacher < teacher1,
        "BTD {} vs teacher {}",
        btd.rmse_to_teacher,
        teacher1
    );
    assert!(cfg.out.join("demo.png").exists());
}

#[test]
fn tract_on_an_unequal_3d_mixture() {
    let dir = tmp("mix3");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("mix.json");
    std::fs::write(
        &spec,
        r#"{"components": [
            {"weight": 0.6, "mean": [1.0, 0.0, -0.5], "std": 0.25},
            {"weight": 0.3, "mean": [-1.0, 0.8, 0.5], "std": 0.4},
            {"weight": 0.1, "mean": [0.0, -1.2, 1.0], "std": 0.1}]}"#,
    )
    .unwrap();
    let cfg = DemoConfig {
        data: format!("gmm:{}", spec.display()),
        out: dir.join("out"),
        fit_samples: 400_000,
        train_samples: 800_000,
        n_eval: 10_000,
        two_step: false,
        ..Default::default()
    };
    let res = run(&cfg, &Device::flex(), &mut quiet).unwrap();
    eprintln!("{}", res.table());
    let teacher1 = res.rows[1].rmse_to_teacher;
    let tract = res.row("TRACT");
    assert!(
        tract.rmse_to_teacher <= 0.4 * teacher1,
        "TRACT {} vs teacher {}",
        tract.rmse_to_teacher,
        teacher1
    );
    assert!(
        tract.max_weight_error < 0.1,
        "mode weights off by {}",
        tract.max_weight_error
    );
}

#[test]
fn tract_ve_edm_path() {
    // VE (Karras sigmas, Heun teacher, EDM preconditioning, eq 14/15) through the CLI engine
    use tract_studio::diffusion::Solver;
    use tract_studio::distill::{DistillConfig, Outcome, Run};
    use tract_studio::generate::{Model, noise};
    use tract_studio::schedule::Param;
    let dev = Device::flex();
    let data = tract_studio::data::Data::parse("toy:ring8").unwrap();
    let mut cfg = DistillConfig::new(&data, Param::Ve);
    assert_eq!(cfg.schedule, "40,1");
    cfg.fit_samples = 300_000;
    cfg.train_samples = 500_000;
    let dir = tmp("ve");
    let mut run = Run::new(cfg, &dir, &dev).unwrap();
    let Outcome::Finished { student } = run.run(false, &mut quiet, None).unwrap() else {
        panic!()
    };
    let z = noise(1, 4000, 2);
    let exact = Model::load("exact:toy:ring8", Param::Ve, Some(40), &dev).unwrap();
    let reference = exact.sample(&z, 40, Solver::Heun, &dev).unwrap();
    let t1 = exact.sample(&z, 1, Solver::Ddim, &dev).unwrap();
    let s1 = Model::load(student.to_str().unwrap(), Param::Ve, None, &dev)
        .unwrap()
        .sample(&z, 1, Solver::Ddim, &dev)
        .unwrap();
    let (rt, rs) = (
        tract_studio::eval::rmse(&t1, &reference),
        tract_studio::eval::rmse(&s1, &reference),
    );
    eprintln!("VE: teacher 1 step RMSE {rt:.4}, TRACT 1 step RMSE {rs:.4}");
    // the two phases' 1-step student keeps the ring's radius (issue #28 item 2: with a Heun
    // step on the 8-step student as the second teacher it was 1.86 against 1.51; measured
    // 1.474 against 1.512 now, RMSE 0.121, the same as one phase 40,1 at this budget: 0.121)
    let radius = |v: &[f32]| {
        v.chunks(2)
            .map(|p| ((p[0] * p[0] + p[1] * p[1]) as f64).sqrt())
            .sum::<f64>()
            / (v.len() / 2) as f64
    };
    let (r_ref, r_s) = (radius(&reference), radius(&s1));
    assert!(
        (r_s - r_ref).abs() < 0.1,
        "mean radius {r_s:.3} against the reference's {r_ref:.3}"
    );
    assert!(rs < 0.5 * rt, "VE TRACT {rs} vs teacher {rt}");
}

// ----- One Gaussian N(m, s^2 I): the probability-flow map is affine and known in closed form
// (issue #28 items 2 and 6). Along the PF-ODE x_t = alpha_t m + sd_t z for a fixed z, with
// sd_t = sqrt(alpha_t^2 s^2 + sigma_t^2), so the map from t to 0 is
// x_0 = m + s (x_t - alpha_t m) / sd_t. The teacher's own T-step map (DDIM for VP, Heun for
// VE, with the exact denoiser) is affine too; it is recomputed here in f64, independently of
// the crate, and a distilled student must reproduce it.

mod one_gaussian {
    pub const M: [f64; 2] = [0.5, -0.3];
    pub const S: f64 = 0.4;

    pub fn spec() -> String {
        format!(
            r#"{{"components": [{{"weight": 1, "mean": [{}, {}], "std": {S}}}]}}"#,
            M[0], M[1]
        )
    }

    /// (alpha, sigma) of grid point t of a T-step grid: VP cosine log-SNR (lambda in
    /// [-20, 20]) or VE Karras (rho 7, sigma in [0.002, 80], sigma_0 = 0).
    pub fn coef(ve: bool, t: usize, big_t: usize) -> (f64, f64) {
        if ve {
            if t == 0 {
                return (1.0, 0.0);
            }
            let (lo, hi) = (0.002f64.powf(1.0 / 7.0), 80f64.powf(1.0 / 7.0));
            let f = (t - 1) as f64 / (big_t - 1) as f64;
            return (1.0, (lo + f * (hi - lo)).powf(7.0));
        }
        let u = t as f64 / big_t as f64;
        let b = (-10f64).exp().atan();
        let a = 10f64.exp().atan() - b;
        let l = -2.0 * (a * u + b).tan().ln();
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        (sig(l).sqrt(), sig(-l).sqrt())
    }

    /// E[x0 | x_t] in one coordinate with mean m.
    fn den(x: f64, m: f64, (a, sg): (f64, f64)) -> f64 {
        m + a * S * S * (x - a * m) / (a * a * S * S + sg * sg)
    }

    fn ddim(x: f64, m: f64, t: (f64, f64), s: (f64, f64)) -> f64 {
        let x0 = den(x, m, t);
        s.0 * x0 + s.1 * (x - t.0 * x0) / t.1
    }

    fn heun(x: f64, m: f64, t: (f64, f64), s: (f64, f64)) -> f64 {
        let x0 = den(x, m, t);
        let h = (s.1 - t.1) / t.1;
        let e = x + h * (x - x0);
        if s.1 == 0.0 {
            return e;
        }
        let x0b = den(e, m, s);
        x + h / 2.0 * (x - x0) + (s.1 - t.1) / s.1 / 2.0 * (e - x0b)
    }

    /// The teacher's T-step map of one coordinate, from x_T = sigma_T eps.
    pub fn teacher(ve: bool, big_t: usize, eps: f64, m: f64) -> f64 {
        let mut x = coef(ve, big_t, big_t).1 * eps;
        for t in (1..=big_t).rev() {
            let (ct, cs) = (coef(ve, t, big_t), coef(ve, t - 1, big_t));
            x = if ve {
                heun(x, m, ct, cs)
            } else {
                ddim(x, m, ct, cs)
            };
        }
        x
    }

    /// The exact probability-flow map from T to 0 of one coordinate.
    pub fn closed(ve: bool, big_t: usize, eps: f64, m: f64) -> f64 {
        let (a, sg) = coef(ve, big_t, big_t);
        let x = sg * eps;
        m + S * (x - a * m) / (a * a * S * S + sg * sg).sqrt()
    }
}

/// Distil the one-Gaussian data and return, for each (phase, K) asked for, the K-step
/// sampler of that phase's model: (RMSE to the teacher's T-step map, to the closed form, and
/// the teacher's map to the closed form), over 2000 noise draws.
fn one_gaussian_case(
    ve: bool,
    method: &str,
    schedule: &str,
    fit: u64,
    train: u64,
    checks: &[(usize, usize)],
) -> Vec<(f64, f64, f64)> {
    use tract_studio::diffusion::Solver;
    use tract_studio::distill::{DistillConfig, Method, Outcome, PhaseKind, Run};
    use tract_studio::generate::{Model, noise};
    use tract_studio::schedule::Param;
    let dev = Device::flex();
    let dir = tmp(&format!(
        "gauss-{ve}-{method}-{}",
        schedule.replace(',', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("one.json");
    std::fs::write(&spec, one_gaussian::spec()).unwrap();
    let data = tract_studio::data::Data::parse(&format!("gmm:{}", spec.display())).unwrap();
    let param = if ve { Param::Ve } else { Param::Vp };
    let mut cfg = DistillConfig::new(&data, param);
    cfg.method = method.parse::<Method>().unwrap();
    cfg.schedule = schedule.into();
    cfg.fit_samples = fit;
    cfg.train_samples = train;
    // a deterministic regression: a higher rate decaying linearly to 0 in each phase gets
    // about 4x nearer than the default constant 1e-3 at the same budget
    cfg.adam.lr = 3e-3;
    cfg.recipe.lr_anneal = true;
    let t0 = std::time::Instant::now();
    let mut run = Run::new(cfg, &dir.join("run"), &dev).unwrap();
    let big_t = run
        .phases
        .iter()
        .find_map(|p| match p.kind {
            PhaseKind::Tract { from, .. } | PhaseKind::Btd { from, .. } => Some(from),
            PhaseKind::Fit => None,
        })
        .unwrap();
    let Outcome::Finished { .. } = run.run(false, &mut quiet, None).unwrap() else {
        panic!()
    };
    let secs = t0.elapsed().as_secs_f64();
    let n = 2000;
    let z = noise(3, n, 2);
    let mut out = vec![];
    for &(phase, k) in checks {
        let file = run.phase_file(phase);
        let got = Model::load(file.to_str().unwrap(), param, None, &dev)
            .unwrap()
            .sample(&z, k, Solver::Ddim, &dev)
            .unwrap();
        let (mut st, mut sc, mut tc) = (0.0, 0.0, 0.0);
        for (i, (&e, &y)) in z.iter().zip(&got).enumerate() {
            let m = one_gaussian::M[i % 2];
            let teacher = one_gaussian::teacher(ve, big_t, e as f64, m);
            let closed = one_gaussian::closed(ve, big_t, e as f64, m);
            st += (y as f64 - teacher).powi(2);
            sc += (y as f64 - closed).powi(2);
            tc += (teacher - closed).powi(2);
        }
        let r = |v: f64| (v / z.len() as f64).sqrt();
        let res = (r(st), r(sc), r(tc));
        eprintln!(
            "one Gaussian, {} {method} {schedule}, phase {phase} at {k} step(s), fit {fit} train {train}: student-teacher {:.2e}, student-closed {:.2e}, teacher-closed {:.2e} ({secs:.1} s)",
            if ve { "VE" } else { "VP" },
            res.0,
            res.1,
            res.2,
        );
        out.push(res);
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// The check of one run: each (phase, K, bound) against the teacher's exact T-step map.
fn one_gaussian_check(
    ve: bool,
    method: &str,
    schedule: &str,
    train: u64,
    checks: &[(usize, usize, f64)],
) {
    let pk: Vec<(usize, usize)> = checks.iter().map(|c| (c.0, c.1)).collect();
    let got = one_gaussian_case(ve, method, schedule, 200_000, train, &pk);
    for ((phase, k, bound), (st, sc, tc)) in checks.iter().zip(got) {
        assert!(
            st < *bound,
            "{method} {schedule} ({}) phase {phase}, {k} step(s): RMSE {st:.2e} to the teacher's map, bound {bound:.1e}",
            if ve { "VE" } else { "VP" }
        );
        // and so within that of the closed-form flow, beside the teacher's own distance to it
        assert!(sc < tc + bound, "{sc} vs {tc}");
    }
}

// Short grids (8 steps) keep TRACT's bootstrap chains short enough to reach a few 1e-3 in
// about 15 s a run on the 2-core CPU; the teacher's 8-step map is then 0.08 (VP) and 0.17
// (VE) from the ODE's, so each student is held to the teacher's exact map, which is what
// distillation reproduces (`teacher_maps_approach_the_closed_form_flow` ties the two).
// Measured (CPU, seed 0): the RMSEs in the comments. A target whose coefficient a is 1% off
// misses every bound (tried: 3.5e-2, 5.7e-2, 2.4e-2, 3.9e-2 and 0.31 in these five runs), and
// so does Heun for a distilled VE teacher (issue #28 item 2: 0.32 on 40,8,1).

#[test]
fn one_gaussian_tract_vp_8_2_1() {
    // measured 2.1e-3 (2 steps), 2.2e-3 (1 step)
    one_gaussian_check(
        false,
        "tract",
        "8,2,1",
        1_000_000,
        &[(1, 2, 5e-3), (2, 1, 5e-3)],
    );
}

#[test]
fn one_gaussian_tract_ve_8_2_1() {
    // two VE phases: the second teacher is the first phase's student, which takes DDIM-VE
    // jumps (with Heun it was 0.32 from the teacher's map on 40,8,1). Measured 5.5e-3, 5.2e-3.
    one_gaussian_check(
        true,
        "tract",
        "8,2,1",
        2_000_000,
        &[(1, 2, 1.2e-2), (2, 1, 1.2e-2)],
    );
}

#[test]
fn one_gaussian_btd_vp_8_1() {
    // 8 -> 4 -> 2 -> 1: measured 5.1e-4 (2 steps), 9.8e-4 (1 step)
    one_gaussian_check(
        false,
        "btd",
        "8,1",
        1_000_000,
        &[(2, 2, 2.5e-3), (3, 1, 2.5e-3)],
    );
}

#[test]
fn one_gaussian_btd_ve_8_1() {
    // Heun on the first phase, DDIM-VE on the students after: measured 2.4e-3, 2.5e-3
    one_gaussian_check(true, "btd", "8,1", 1_000_000, &[(2, 2, 6e-3), (3, 1, 6e-3)]);
}

#[test]
fn one_gaussian_tract_ve_on_the_paper_grid_40_8_1() {
    // issue #28 item 2 on the 40-step Karras grid: a 2-phase VE run whose 1-step student was
    // 0.32 from the teacher's 40-step Heun map (the phase-2 teacher took Heun steps with the
    // 8-step student's x0); now measured 1.8e-2 (8 steps) and 2.1e-2 (1 step) at 400k
    one_gaussian_check(
        true,
        "tract",
        "40,8,1",
        400_000,
        &[(1, 8, 4e-2), (2, 1, 5e-2)],
    );
}

#[test]
fn teacher_maps_approach_the_closed_form_flow() {
    // the teacher's own T-step map (host f64) against the closed-form flow, over eps uniform
    // in [-3, 3]: DDIM at 1024 VP steps and Heun at 40 VE steps come within 2e-3 and 1e-2
    // (measured 1.2e-3, 7.2e-3; 7.0e-4 and 4.2e-3 over normal eps); 8 steps are further off
    // (0.14 and 0.30)
    for (ve, big_t, bound) in [
        (false, 1024, 2e-3),
        (true, 40, 1e-2),
        (false, 8, 0.2),
        (true, 8, 0.4),
    ] {
        let mut se = 0.0;
        let n = 601;
        for i in 0..n {
            let e = -3.0 + 6.0 * i as f64 / (n - 1) as f64;
            for m in one_gaussian::M {
                se += (one_gaussian::teacher(ve, big_t, e, m)
                    - one_gaussian::closed(ve, big_t, e, m))
                .powi(2);
            }
        }
        let rmse = (se / (2 * n) as f64).sqrt();
        assert!(rmse < bound, "ve {ve} T {big_t}: {rmse}");
        assert!(
            rmse > bound / 10.0,
            "ve {ve} T {big_t}: {rmse} (bound too loose)"
        );
    }
}

/// One TRACT / BTD target from `distill::tract_target` (the pure function a training step
/// calls) against the same target recomputed here in f64 on the host, with exact mixture
/// denoisers as the teacher and the self-teacher (two different mixtures, so a swap shows):
/// VP DDIM teacher, VE Heun teacher (the original teacher), VE DDIM teacher (a student of an
/// earlier phase), and BTD's two teacher steps.
#[test]
fn tract_target_matches_an_independent_f64_computation() {
    use tract_studio::data::Gmm;
    use tract_studio::distill::{Levels, TargetRule, Teachers, tract_target};
    use tract_studio::schedule::{Coef, Grid, Param};
    use tract_studio::tensors::{from_vec2, to_vec};
    let dev = Device::flex();
    let teacher = Gmm::ring(8, 1.5, 0.15);
    let mut other = Gmm::ring(5, 1.0, 0.3);
    for c in &mut other.components {
        c.mean[0] += 0.4;
    }
    let (td, sd_den) = (teacher.exact_denoiser(&dev), other.exact_denoiser(&dev));
    // host steps in f64
    let ddim = |g: &Gmm, x: &[f64], t: &Coef, s: &Coef| -> Vec<f64> {
        let x0 = g.denoise_host(x, t.alpha, t.sigma);
        x.iter()
            .zip(&x0)
            .map(|(xi, fi)| s.alpha * fi + s.sigma * (xi - t.alpha * fi) / t.sigma)
            .collect()
    };
    let heun = |g: &Gmm, x: &[f64], t: &Coef, s: &Coef| -> Vec<f64> {
        // Karras et al. Algorithm 1 (deterministic), alpha = 1
        let x0 = g.denoise_host(x, 1.0, t.sigma);
        let d: Vec<f64> = x.iter().zip(&x0).map(|(a, b)| (a - b) / t.sigma).collect();
        let e: Vec<f64> = x
            .iter()
            .zip(&d)
            .map(|(a, di)| a + (s.sigma - t.sigma) * di)
            .collect();
        if s.sigma == 0.0 {
            return e;
        }
        let x0b = g.denoise_host(&e, 1.0, s.sigma);
        x.iter()
            .zip(&d)
            .zip(e.iter().zip(&x0b))
            .map(|((a, di), (ei, fi))| a + (s.sigma - t.sigma) * 0.5 * (di + (ei - fi) / s.sigma))
            .collect()
    };
    for (param, steps, btd, distilled, pairs) in [
        (
            Param::Vp,
            1024,
            false,
            false,
            vec![(1usize, 0usize), (32, 0), (40, 32), (1024, 992), (517, 512)],
        ),
        (
            Param::Ve,
            40,
            false,
            false,
            vec![(1, 0), (5, 0), (8, 5), (40, 35), (23, 20)],
        ),
        (
            Param::Ve,
            40,
            false,
            true,
            vec![(1, 0), (5, 0), (8, 5), (40, 35), (23, 20)],
        ),
        (Param::Vp, 64, true, false, vec![(2, 0), (64, 62), (34, 32)]),
        (Param::Ve, 40, true, true, vec![(2, 0), (40, 38), (12, 10)]),
    ] {
        let g = Grid::new(param, steps);
        let levels: Vec<Levels> = pairs
            .iter()
            .map(|&(t, s)| Levels {
                t: g.coef(t),
                t1: g.coef(t - 1),
                s: g.coef(s),
            })
            .collect();
        let n = levels.len();
        let mut rng = tract_studio::rng::Rng::new(21);
        let x0 = teacher.sample(&mut rng, n);
        let eps = rng.normals(2 * n);
        let rule = TargetRule {
            param,
            sigma_data: 0.7,
            btd,
            clip_x0: false,
        };
        let teachers = Teachers {
            teacher: &td,
            distilled,
            self_teacher: &sd_den,
        };
        let got = tract_target(
            &rule,
            teachers,
            from_vec2(x0.clone(), [n, 2], &dev),
            from_vec2(eps.clone(), [n, 2], &dev),
            &levels,
        );
        let (xt_c, xs_c) = (to_vec(got.xt), to_vec(got.xs));
        for (i, l) in levels.iter().enumerate() {
            let what = format!(
                "{param:?} btd {btd} distilled {distilled} (t, s) = {:?}",
                pairs[i]
            );
            let xt: Vec<f64> = (0..2)
                .map(|j| l.t.alpha * x0[2 * i + j] as f64 + l.t.sigma * eps[2 * i + j] as f64)
                .collect();
            // the teacher's step t -> t-1: Heun for VE's original teacher, else DDIM
            let step = |x: &[f64], a: &Coef, b: &Coef| {
                if param == Param::Ve && !distilled {
                    heun(&teacher, x, a, b)
                } else {
                    ddim(&teacher, x, a, b)
                }
            };
            let xt1 = step(&xt, &l.t, &l.t1);
            let xs = if btd {
                step(&xt1, &l.t1, &l.s)
            } else if l.t1 == l.s {
                xt1
            } else {
                ddim(&other, &xt1, &l.t1, &l.s)
            };
            // eq 8 (VE eq 14: alpha = 1): the x0 whose DDIM step t -> s lands on x_s
            let den = l.s.alpha * l.t.sigma - l.t.alpha * l.s.sigma;
            let (a, b) = (l.t.sigma / den, -l.s.sigma / den);
            assert!(
                (got.a[i] - a).abs() <= 1e-12 * a.abs(),
                "{what}: a {} vs {a}",
                got.a[i]
            );
            assert!(
                (got.b[i] - b).abs() <= 1e-12 * b.abs().max(1e-300),
                "{what}: b {} vs {b}",
                got.b[i]
            );
            let w = match param {
                Param::Vp => (l.t.alpha / l.t.sigma).powi(2).max(1.0),
                Param::Ve => (l.t.sigma.powi(2) + 0.49) / (l.t.sigma * 0.7).powi(2),
            };
            assert!(
                (got.w[i] - w).abs() <= 1e-12 * w,
                "{what}: weight {} vs {w}",
                got.w[i]
            );
            for j in 0..2 {
                let scale = 1.0 + xt[j].abs();
                assert!(
                    (xt_c[2 * i + j] as f64 - xt[j]).abs() < 2e-6 * scale,
                    "{what}: x_t {} vs {}",
                    xt_c[2 * i + j],
                    xt[j]
                );
                assert!(
                    (xs_c[2 * i + j] as f64 - xs[j]).abs() < 2e-5 * scale,
                    "{what}: x_s {} vs {}",
                    xs_c[2 * i + j],
                    xs[j]
                );
                // the whole target, from the code's x_s and x_t, against the host's
                let tgt_c = got.a[i] * xs_c[2 * i + j] as f64 + got.b[i] * xt_c[2 * i + j] as f64;
                let tgt = a * xs[j] + b * xt[j];
                let tol = 2e-5 * (a.abs() + b.abs()) * scale;
                assert!((tgt_c - tgt).abs() < tol, "{what}: target {tgt_c} vs {tgt}");
            }
        }
    }
}

/// The golden loss curve: `tests/fixtures/golden-loss-ring8.json`.
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/golden-loss-ring8.json"
);

/// A fixed-seed loss curve of a short CPU run (a 32-wide MLP on toy:ring8: 8 fit steps, then
/// TRACT 64 -> 8 -> 1 in 5 + 25 steps, batch 64; under a second) against the golden file, step
/// by step to 1e-6 relative: the CPU path is deterministic, so any change to the data stream,
/// the targets, the network, the loss, Adam or the EMAs shows here. It compares what the run
/// records per step (`loss.csv`), whenever the losses reach the host. After an intended
/// change, regenerate with `TRACT_UPDATE_GOLDEN=1 cargo test --release --test distill --
/// golden` and say why in the commit. Seen to fail: with the TRACT target coefficient `a`
/// (diffusion::target_coefs) scaled by 1 + 1e-3 (a temporary edit), the 8 fit steps still
/// matched and global step 9, the first distillation step, was 8.5e-2 off (relative).
#[test]
fn golden_loss_curve_of_a_short_cpu_run() {
    use tract_studio::data::Data;
    use tract_studio::distill::{DistillConfig, Outcome, Run};
    use tract_studio::model::NetConfig;
    use tract_studio::schedule::Param;
    let dir = tmp("golden");
    let data = Data::parse("toy:ring8").unwrap();
    let mut cfg = DistillConfig::new(&data, Param::Vp);
    cfg.batch = 64;
    cfg.fit_samples = 8 * 64;
    cfg.train_samples = 30 * 64;
    cfg.schedule = "64,8,1".into();
    if let NetConfig::Mlp(m) = &mut cfg.net {
        m.hidden = 32;
    }
    let mut run = Run::new(cfg, &dir, &Device::flex()).unwrap();
    let r = run.run(false, &mut quiet, None).unwrap();
    assert!(matches!(r, Outcome::Finished { .. }));
    // phase,step,global_step,loss
    let csv = std::fs::read_to_string(dir.join(tract_studio::distill::LOSS_FILE)).unwrap();
    let rows: Vec<(u64, u64, f32)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 38, "{csv}");
    let _ = std::fs::remove_dir_all(&dir);
    let losses: Vec<f32> = rows.iter().map(|r| r.2).collect();
    if std::env::var("TRACT_UPDATE_GOLDEN").as_deref() == Ok("1") {
        // written by hand for f32's shortest form (serde_json's Value holds f64)
        let phases: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
        let values: Vec<String> = losses.iter().map(|l| format!("    {l}")).collect();
        let json = format!(
            "{{\n  \"what\": \"per-step losses (loss.csv) of tests/distill.rs golden_loss_curve_of_a_short_cpu_run: toy:ring8, 32-wide MLP, 8 fit + 5 + 25 TRACT steps, batch 64, seed 0, CPU; TRACT_UPDATE_GOLDEN=1 rewrites it\",\n  \"phase\": [{}],\n  \"loss\": [\n{}\n  ]\n}}\n",
            phases.join(", "),
            values.join(",\n")
        );
        std::fs::write(GOLDEN, json).unwrap();
        eprintln!("wrote {GOLDEN}");
        return;
    }
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(GOLDEN)
            .expect("the golden file (TRACT_UPDATE_GOLDEN=1 writes it)"),
    )
    .unwrap();
    let want: Vec<f32> = serde_json::from_value(golden["loss"].clone()).unwrap();
    assert_eq!(
        losses.len(),
        want.len(),
        "steps: {} vs golden {}",
        losses.len(),
        want.len()
    );
    for (i, (got, want)) in losses.iter().zip(&want).enumerate() {
        let rel = (got - want).abs() / want.abs().max(f32::MIN_POSITIVE);
        assert!(
            rel <= 1e-6,
            "global step {}: loss {got:e}, golden {want:e} (relative difference {rel:e}); if the change is intended, TRACT_UPDATE_GOLDEN=1 rewrites {GOLDEN}",
            i + 1
        );
    }
}
