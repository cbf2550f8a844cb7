//! The wgpu backend (lavapipe here, a real GPU elsewhere) computes what the CPU backend
//! computes: sampling with the exact teacher, distillation steps, and the image networks
//! (the project's UNet and a diffusers UNet2DModel, forward and gradient).
//! Skips with a message when no adapter exists, unless TRACT_REQUIRE_WGPU=1 (the test
//! script sets it after installing lavapipe) makes a missing adapter a failure.

use tract_studio::device::{self, Choice};
use tract_studio::diffusion::Solver;
use tract_studio::distill::{DistillConfig, Event, Outcome, Run};
use tract_studio::eval::rmse;
use tract_studio::generate::{Model, noise};
use tract_studio::rng::{Rng, purpose};
use tract_studio::schedule::Param;

fn wgpu_or_skip() -> Option<device::Picked> {
    match device::pick(Choice::Wgpu) {
        Ok(p) => {
            eprintln!("{}", p.label);
            Some(p)
        }
        Err(e) => {
            if std::env::var("TRACT_REQUIRE_WGPU").as_deref() == Ok("1") {
                panic!("wgpu required but unavailable: {e}");
            }
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn wgpu_matches_cpu() {
    let Some(gpu) = wgpu_or_skip() else { return };
    let cpu = device::cpu();
    // sampling with the exact teacher
    let z = noise(9, 37, 2);
    let sample = |d: &burn::tensor::Device| {
        Model::load("exact:toy:ring8", Param::Vp, Some(1024), d)
            .unwrap()
            .sample(&z, 8, Solver::Ddim, d)
            .unwrap()
    };
    let (a, b) = (sample(&cpu.device), sample(&gpu.device));
    let d = max_diff(&a, &b);
    eprintln!("exact teacher, 8 DDIM steps: max |cpu - wgpu| = {d:e}");
    assert!(d < 1e-3, "{d}");
    // a few TRACT steps (fit phase, then distillation) from the same seed
    let dir = std::env::temp_dir().join(format!("tract-wgpu-{}", std::process::id()));
    let mut weights = vec![];
    let mut start = vec![];
    for (name, dev) in [("cpu", &cpu.device), ("wgpu", &gpu.device)] {
        let data = tract_studio::data::Data::parse("toy:ring8").unwrap();
        let mut cfg = DistillConfig::new(&data, Param::Vp);
        cfg.batch = 64;
        cfg.fit_samples = 128;
        cfg.train_samples = 256;
        cfg.schedule = "64,8,1".into();
        if let tract_studio::model::NetConfig::Mlp(m) = &mut cfg.net {
            m.hidden = 32;
        }
        // the starting weights: Run::new draws them from this stream
        start =
            tract_studio::model::Net::new(&cfg.net).init(&mut Rng::stream(cfg.seed, purpose::INIT));
        let out = dir.join(name);
        let mut run = Run::new(cfg, &out, dev).unwrap();
        let r = run.run(false, &mut |_: &Event| true, None).unwrap();
        assert!(matches!(r, Outcome::Finished { .. }));
        weights.push(
            tract_studio::checkpoint::ModelFile::load(&out.join("student.safetensors"))
                .unwrap()
                .flat,
        );
    }
    let d = max_diff(&weights[0], &weights[1]);
    let moved = max_diff(&weights[0], &start);
    eprintln!(
        "a short run (2 fit + 5 TRACT steps): max |cpu - wgpu| weight difference = {d:e} (rms {:e}); max movement from the start {moved:e} (rms {:e})",
        rmse(&weights[0], &weights[1]),
        rmse(&weights[0], &start)
    );
    // On lavapipe (2026-12-06, 2 cores): max difference 4.5e-7 (rms 9e-9), while the weights
    // moved up to 6.7e-3 from their start (rms 3.0e-3). The tolerance is about 4x the
    // difference and over 3000x below the movement (the former 1e-3 was a sixth of it). Seen
    // to fail: the wgpu gradient alone given a 1% error (grad * (1 +- 0.01), the sign that of
    // the mirror component, so it varies from step to step; a temporary edit of
    // distill/step.rs) gave a difference of 1.7e-3 (rms 3.9e-5), and 1% of the mirror image
    // added (grad + 0.01 grad.flip) 9.0e-3. A real GPU (not measured) may round differently
    // from lavapipe; Adam turns any sign flip of a near-zero gradient component into a
    // difference of order lr = 1e-3.
    const TOL: f32 = 2e-6;
    assert!(
        d < TOL,
        "max |cpu - wgpu| weight difference {d:e} > {TOL:e}"
    );
    assert!(moved > 1000.0 * TOL, "the weights moved only {moved:e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Forward and gradient of a network on `dev`: (output, d mean(out^2) / d params).
fn forward_backward(
    net: &tract_studio::model::Net,
    flat: &[f32],
    x: &[f32],
    n: usize,
    coefs: &[tract_studio::schedule::Coef],
    dev: &burn::tensor::Device,
) -> (Vec<f32>, Vec<f32>) {
    use tract_studio::diffusion::Times;
    use tract_studio::model::flat_from_host;
    use tract_studio::tensors::{from_vec2, to_vec};
    let p = flat_from_host(flat.to_vec(), dev);
    let times = Times::new(coefs.to_vec(), dev);
    let d = x.len() / n;
    let xt = from_vec2(x.to_vec(), [n, d], dev);
    let y = to_vec(net.forward(&p, xt.clone(), &times));
    let lay = net.layout();
    let leaves = lay.split_leaves(&p);
    let out = net.forward(&leaves, xt, &times);
    let g = to_vec(lay.backward(&leaves, &(out.clone() * out).mean()).unwrap());
    (y, g)
}

fn rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|v| v.abs()).fold(0.0f32, f32::max).max(1e-12);
    max_diff(a, b) / scale
}

#[test]
fn image_networks_match_on_wgpu_and_cpu() {
    // the image networks run the project's CPU kernels on the CPU backend and Burn's ops on
    // wgpu: forward and gradient must agree (max difference relative to the largest value)
    let Some(gpu) = wgpu_or_skip() else { return };
    let cpu = device::cpu();
    use tract_studio::model::{Net, NetConfig, UnetConfig};
    use tract_studio::schedule::Grid;
    // the project's tiny UNet, VP and VE, with perturbed weights (its init zeroes the last convs)
    for param in [Param::Vp, Param::Ve] {
        let cfg = NetConfig::Unet(UnetConfig::tiny(1, 16, 16, param));
        let net = Net::new(&cfg);
        let mut flat = net.init(&mut tract_studio::rng::Rng::new(3));
        let pert = tract_studio::rng::Rng::new(4).normals(flat.len());
        for (w, p) in flat.iter_mut().zip(pert) {
            *w += 0.02 * p;
        }
        let n = 3;
        let x = tract_studio::rng::Rng::new(5).normals(n * 256);
        let g = Grid::new(param, if param == Param::Vp { 1024 } else { 40 });
        let coefs = [g.coef(g.steps), g.coef(g.steps / 2), g.coef(1)];
        let (yc, gc) = forward_backward(&net, &flat, &x, n, &coefs, &cpu.device);
        let (yw, gw) = forward_backward(&net, &flat, &x, n, &coefs, &gpu.device);
        let (ey, eg) = (rel(&yw, &yc), rel(&gw, &gc));
        eprintln!("tiny UNet {param:?}: forward rel diff {ey:.2e}, gradient {eg:.2e}");
        assert!(
            ey < 1e-4 && eg < 1e-3,
            "{param:?}: forward {ey:e}, gradient {eg:e}"
        );
    }
    // a diffusers pipeline (legacy names, one head, padding 0, eps 1e-6) against diffusers'
    // own output on wgpu, and the gradient against the CPU's
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diffusers/ddpm_legacy");
    let (file, _) = tract_studio::pipeline::load(&dir.display().to_string()).unwrap();
    let net = Net::new(&file.meta.net().unwrap());
    let grid = file.meta.grid();
    let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f = |name: &str| -> Vec<f32> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let (x, ts) = (f("x"), f("timesteps"));
    let coefs: Vec<_> = ts.iter().map(|&t| grid.coef(t as usize + 1)).collect();
    let n = ts.len();
    let (yc, gc) = forward_backward(&net, &file.flat, &x, n, &coefs, &cpu.device);
    let (yw, gw) = forward_backward(&net, &file.flat, &x, n, &coefs, &gpu.device);
    // the network's own output (epsilon) on wgpu against diffusers'
    let Net::Diffusers(u) = &net else {
        unreachable!()
    };
    let raw = tract_studio::tensors::to_vec(u.raw(
        &tract_studio::model::flat_from_host(file.flat.clone(), &gpu.device),
        tract_studio::tensors::from_vec2(x.clone(), [n, x.len() / n], &gpu.device),
        &tract_studio::diffusion::Times::new(coefs.clone(), &gpu.device),
    ));
    let e_gold = max_diff(&raw, &f("unet_out"));
    let (ey, eg) = (rel(&yw, &yc), rel(&gw, &gc));
    eprintln!(
        "diffusers UNet on wgpu: max |output - diffusers| {e_gold:.2e}; x0 vs CPU rel {ey:.2e}, gradient {eg:.2e}"
    );
    assert!(e_gold < 2e-5, "{e_gold:e}");
    assert!(ey < 1e-5 && eg < 2e-5, "forward {ey:e}, gradient {eg:e}");
}

/// Host round trips of one distillation phase between its start and its last step's event
/// (no checkpoint, no preview inside it): (steps, transfers).
fn phase_transfers(
    dev: &burn::tensor::Device,
    steps: u64,
) -> (u64, tract_studio::tensors::Transfers) {
    use tract_studio::tensors::transfers;
    let data = tract_studio::data::Data::parse("toy:ring8").unwrap();
    let mut cfg = DistillConfig::new(&data, Param::Vp);
    cfg.batch = 16;
    cfg.fit_samples = 16;
    cfg.train_samples = 16 * steps;
    cfg.schedule = "64,8".into();
    cfg.ckpt_every = u64::MAX;
    if let tract_studio::model::NetConfig::Mlp(m) = &mut cfg.net {
        m.hidden = 16;
    }
    let out = std::env::temp_dir().join(format!("tract-trips-{}-{steps}", std::process::id()));
    let mut run = Run::new(cfg, &out, dev).unwrap();
    let n = run.phases[1].steps;
    let (mut start, mut end) = (None, None);
    run.run(
        false,
        &mut |e: &Event| {
            match e {
                Event::PhaseStart { index: 1, .. } => start = Some(transfers()),
                Event::Step { phase: 1, step, .. } if *step == n => end = Some(transfers()),
                _ => {}
            }
            true
        },
        None,
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&out);
    (n, end.unwrap() - start.unwrap())
}

#[test]
fn host_round_trips_per_step_stay_low() {
    // the loop reads the losses back every LOSS_READ_EVERY steps and at the phase end, in
    // one transfer each; a step uploads its data and noise in one transfer, and each kernel
    // call its coefficients in one (13 uploads a TRACT step on ring8 with the exact teacher)
    let k = tract_studio::distill::LOSS_READ_EVERY;
    let mut devices = vec![("cpu", device::cpu().device)];
    if let Some(g) = wgpu_or_skip() {
        devices.push(("wgpu", g.device));
    }
    for (name, dev) in devices {
        let (n, t) = phase_transfers(&dev, 2 * k + 3);
        eprintln!(
            "{name}: {n} steps, {} reads, {} uploads",
            t.reads, t.uploads
        );
        assert_eq!(n, 2 * k + 3);
        assert_eq!(t.reads, n.div_ceil(k), "{name}: loss reads of {n} steps");
        assert!(
            t.uploads <= 13 * n,
            "{name}: {} uploads in {n} steps",
            t.uploads
        );
    }
}
