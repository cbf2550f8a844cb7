//! Each WGSL kernel on the wgpu backend (lavapipe here) against its plain Burn-ops
//! reference on the CPU backend: values, and gradients for the loss, on odd shapes
//! including 1 element and prime sizes. Skips without an adapter unless
//! TRACT_REQUIRE_WGPU=1.

mod common;
use burn::tensor::{Device, Tensor};
use common::close;
use tract_studio::device::{self, Choice};
use tract_studio::kernels::{self, reference};
use tract_studio::rng::Rng;
use tract_studio::tensors::{from_vec1, from_vec2, to_vec};

fn gpu() -> Option<Device> {
    match device::pick(Choice::Wgpu) {
        Ok(p) => Some(p.device),
        Err(e) => {
            if std::env::var("TRACT_REQUIRE_WGPU").as_deref() == Ok("1") {
                panic!("wgpu required: {e}");
            }
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

// includes rows divisible by 4 (the vec4 variants) and odd ones
const SHAPES: [(usize, usize); 8] = [
    (1, 1),
    (1, 7),
    (3, 2),
    (1009, 1),
    (13, 257),
    (4099, 3),
    (5, 4),
    (7, 1024),
];

#[test]
fn kernels_match_references() {
    let Some(g) = gpu() else { return };
    assert!(kernels::is_cube(&g) && !kernels::is_cube(&Device::flex()));
    let c = Device::flex();
    let mut rng = Rng::new(17);
    for (n, d) in SHAPES {
        let x = rng.normals(n * d);
        let y: Vec<f32> = rng.normals(n * d).iter().map(|v| v * 2.0).collect();
        let e = rng.normals(n * d);
        let f = rng.normals(n * d);
        let a: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let b: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let w: Vec<f64> = (0..n).map(|_| rng.uniform() * 5.0 + 0.1).collect();
        let t = |v: &Vec<f32>, dev: &Device| from_vec2(v.clone(), [n, d], dev);
        for clip in [false, true] {
            let k = to_vec(kernels::row_axpby(t(&x, &g), t(&y, &g), &a, &b, clip));
            let r = to_vec(kernels::row_axpby(t(&x, &c), t(&y, &c), &a, &b, clip));
            close(&k, &r, 1e-6, &format!("row_axpby {n}x{d} clip {clip}"));
        }
        let k = to_vec(kernels::heun_combine(
            t(&x, &g),
            t(&y, &g),
            t(&e, &g),
            t(&f, &g),
            &a,
            &b,
        ));
        let r = to_vec(kernels::heun_combine(
            t(&x, &c),
            t(&y, &c),
            t(&e, &c),
            t(&f, &c),
            &a,
            &b,
        ));
        close(&k, &r, 1e-6, &format!("heun {n}x{d}"));
        // the loss and its gradient with respect to g
        let mut grads = vec![];
        let mut losses = vec![];
        for dev in [&g, &c] {
            let leaf = t(&e, dev).autodiff().require_grad();
            let loss = kernels::tract_loss(leaf.clone(), t(&x, dev), t(&y, dev), &a, &b, &w);
            let gr = loss.backward();
            grads.push(to_vec(leaf.grad(&gr).unwrap()));
            losses.push(to_vec(loss.inner())[0]);
        }
        close(&[losses[0]], &[losses[1]], 1e-5, &format!("loss {n}x{d}"));
        close(
            &grads[0],
            &grads[1],
            1e-5,
            &format!("loss gradient {n}x{d}"),
        );
        // and without autodiff
        let l = to_vec(kernels::tract_loss(
            t(&e, &g),
            t(&x, &g),
            t(&y, &g),
            &a,
            &b,
            &w,
        ))[0];
        close(&[l], &[losses[1]], 1e-5, "loss without autodiff");
        // EMA pair over a flat vector of n*d weights
        let m = n * d;
        let v1 = |v: &Vec<f32>, dev: &Device| from_vec1(v.clone(), dev);
        let (ks, ki) = kernels::ema2_kernel(&v1(&x, &g), v1(&y, &g), v1(&e, &g), 0.5, 0.01);
        let (rs, ri) = kernels::ema2_kernel(&v1(&x, &c), v1(&y, &c), v1(&e, &c), 0.5, 0.01);
        close(&to_vec(ks), &to_vec(rs), 1e-6, &format!("ema self {m}"));
        close(
            &to_vec(ki),
            &to_vec(ri),
            1e-6,
            &format!("ema inference {m}"),
        );
    }
}

#[test]
fn rgba_grid_matches_reference() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(3);
    for (n, ch, h, w, cols) in [
        (1, 1, 1, 1, 1),
        (5, 1, 7, 3, 2),
        (7, 3, 5, 11, 3),
        (13, 1, 32, 32, 4),
    ] {
        let v: Vec<f32> = rng
            .normals(n * ch * h * w)
            .iter()
            .map(|x| x * 0.7)
            .collect();
        let t = Tensor::<1>::from_data(burn::tensor::TensorData::new(v.clone(), [v.len()]), &g)
            .reshape([n, ch, h, w]);
        let (gw, gh, px) = kernels::rgba_grid(t, cols, -1.0, 1.0);
        let r = reference::rgba_grid(&v, [n, ch, h, w], cols, -1.0, 1.0);
        assert_eq!((gw, gh), (cols * w, n.div_ceil(cols) * h));
        assert_eq!(px, r, "rgba {n}x{ch}x{h}x{w} cols {cols}");
    }
}

#[test]
fn kernels_inside_fused_chains_and_the_engine() {
    // a chain of Burn ops around a kernel, and a short distillation on wgpu with kernels
    // on and off, must agree
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(5);
    let (n, d) = (37, 5);
    let x = from_vec2(rng.normals(n * d), [n, d], &g);
    let y = from_vec2(rng.normals(n * d), [n, d], &g);
    let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.1).collect();
    let b = vec![0.5; n];
    let pre = x.clone().exp().mul_scalar(0.3);
    let out = kernels::row_axpby(pre.clone(), y.clone(), &a, &b, false)
        .tanh()
        .add_scalar(1.0);
    let reference = reference::row_axpby(
        pre,
        y,
        from_vec1(a.iter().map(|&v| v as f32).collect(), &g),
        from_vec1(vec![0.5; n], &g),
        false,
    )
    .tanh()
    .add_scalar(1.0);
    close(&to_vec(out), &to_vec(reference), 1e-6, "fused chain");
}

/// Same value element by element: both NaN, or equal (infinities of one sign, signed zeros
/// as equal), or within `tol` relative to the CPU's.
fn same_values(k: &[f32], r: &[f32], tol: f32, what: &str) {
    assert_eq!(k.len(), r.len(), "{what}: lengths");
    for (i, (x, y)) in k.iter().zip(r).enumerate() {
        let ok = if x.is_nan() || y.is_nan() {
            x.is_nan() && y.is_nan()
        } else if x.is_infinite() || y.is_infinite() {
            x == y
        } else {
            (x - y).abs() <= tol * (1.0 + y.abs())
        };
        assert!(ok, "{what}: element {i}: wgpu {x}, cpu {y}");
    }
}

#[test]
fn nan_and_infinity_behave_on_wgpu_as_on_the_cpu() {
    let Some(g) = gpu() else { return };
    let c = Device::flex();
    assert!(
        kernels::enabled(),
        "the WGSL kernels must be on for this test"
    );
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1.5,
        -3.0,
        1.0,
        -1.0,
        0.25,
        -0.0,
        1e30,
        -1e30,
        f32::MAX,
    ];
    let m = specials.len();
    // d = 11 runs row_axpby.wgsl, d = 12 (a multiple of 4) row_axpby_vec4.wgsl
    for d in [11usize, 12] {
        let n = 4;
        let x: Vec<f32> = (0..n * d).map(|i| specials[(i * 5 + 1) % m]).collect();
        let y: Vec<f32> = (0..n * d).map(|i| specials[i % m]).collect();
        let a = [1.0, 0.0, -2.0, 0.5];
        let b = [0.5, 1.0, 0.0, -1.0];
        let t = |v: &Vec<f32>, dev: &Device| from_vec2(v.clone(), [n, d], dev);
        for clip in [false, true] {
            let k = to_vec(kernels::row_axpby(t(&x, &g), t(&y, &g), &a, &b, clip));
            let r = to_vec(kernels::row_axpby(t(&x, &c), t(&y, &c), &a, &b, clip));
            same_values(&k, &r, 1e-6, &format!("row_axpby {n}x{d} clip {clip}"));
            // and x = 0, a = 0 isolates clip(y): NaN stays NaN, infinities go to the bounds
            let z = vec![0.0; n * d];
            let ones = [1.0; 4];
            let k = to_vec(kernels::row_axpby(t(&z, &g), t(&y, &g), &a, &ones, clip));
            let r = to_vec(kernels::row_axpby(t(&z, &c), t(&y, &c), &a, &ones, clip));
            same_values(&k, &r, 0.0, &format!("clip(y) {n}x{d} clip {clip}"));
            if clip {
                assert!(r[0].is_nan(), "the CPU keeps NaN through the clip");
            }
        }
    }
    // Burn's own clamp (the engine's other x0 clips) on wgpu
    let v = specials.to_vec();
    let k = to_vec(from_vec1(v.clone(), &g).clamp(-1.0, 1.0));
    let r = to_vec(from_vec1(v, &c).clamp(-1.0, 1.0));
    same_values(&k, &r, 0.0, "Burn's clamp");
    // rgba: one and three channels, a range [lo, hi] that the specials exceed both ways
    for ch in [1usize, 3] {
        let (n, h, w, cols) = (2usize, 3usize, 4usize, 2usize);
        let v: Vec<f32> = (0..n * ch * h * w).map(|i| specials[i % m]).collect();
        let mk = |dev: &Device| {
            Tensor::<1>::from_data(burn::tensor::TensorData::new(v.clone(), [v.len()]), dev)
                .reshape([n, ch, h, w])
        };
        let (_, _, k) = kernels::rgba_grid(mk(&g), cols, -1.0, 1.0);
        let (_, _, r) = kernels::rgba_grid(mk(&c), cols, -1.0, 1.0);
        let host = reference::rgba_grid(&v, [n, ch, h, w], cols, -1.0, 1.0);
        assert_eq!(r, host, "the CPU path is the host reference");
        for (i, (p, q)) in k.iter().zip(&r).enumerate() {
            assert_eq!(
                p, q,
                "rgba {ch} channel(s): pixel {i}: wgpu {p:#010x}, cpu {q:#010x}"
            );
        }
    }
}
