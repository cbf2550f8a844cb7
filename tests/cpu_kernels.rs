//! The CPU kernels (src/engine/kernels/cpu.rs) on Burn's CPU backend against Burn's own ops
//! (`cpu::reference`): values and gradients of convolution (also of a 2x-upsampled input),
//! GroupNorm (+ SiLU, at three epsilons), SiLU and attention, on odd sizes, 1 and prime
//! channel counts, batch 1 and stride 2. Tolerance: max |a - b| / (1 + |b|) at most 2e-5 for
//! values and 1e-4 for gradients (different summation orders in f32); attention: max |a - b|
//! at most 1e-5 of the tensor's largest magnitude.

mod common;
use burn::tensor::{Device, Tensor};
use common::close;
use tract_studio::kernels::cpu::{self, reference};
use tract_studio::rng::Rng;
use tract_studio::tensors::{from_vec1, to_vec};

fn t4(v: Vec<f32>, s: [usize; 4], dev: &Device) -> Tensor<4> {
    from_vec1(v, dev).reshape(s)
}

type Conv = dyn Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>;

/// Values and gradients (x, w, b) of `ours` against `theirs` on random inputs.
/// `wscale`: the weights' standard deviation.
fn compare_conv(
    rng: &mut Rng,
    what: &str,
    xs: [usize; 4],
    ws: [usize; 4],
    wscale: f32,
    ours: &Conv,
    theirs: &Conv,
) {
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let xv = rng.normals(xs.iter().product());
    let wv: Vec<f32> = rng
        .normals(ws.iter().product())
        .iter()
        .map(|v| v * wscale)
        .collect();
    let bv = rng.normals(ws[0]);
    let mk = |d: &Device| {
        (
            t4(xv.clone(), xs, d),
            t4(wv.clone(), ws, d),
            from_vec1(bv.clone(), d),
        )
    };
    let (x, wt, b) = mk(&dev);
    let a = ours(x.clone(), wt.clone(), b.clone());
    let e = theirs(x, wt, b);
    assert_eq!(a.dims(), e.dims(), "{what}");
    let r = rng.normals(e.dims().iter().product());
    close(&to_vec(a), &to_vec(e), 2e-5, what);
    // gradients of sum(y * r) with respect to x, w and b
    let grads = |f: &Conv| {
        let (x, wt, b) = mk(&ad);
        let (x, wt, b) = (x.require_grad(), wt.require_grad(), b.require_grad());
        let y = f(x.clone(), wt.clone(), b.clone());
        let rt = t4(r.clone(), y.dims(), &ad);
        let g = (y * rt).sum().backward();
        (
            to_vec(x.grad(&g).unwrap()),
            to_vec(wt.grad(&g).unwrap()),
            to_vec(b.grad(&g).unwrap()),
        )
    };
    let (a, e) = (grads(ours), grads(theirs));
    close(&a.0, &e.0, 1e-4, &format!("{what} dx"));
    close(&a.1, &e.1, 1e-4, &format!("{what} dw"));
    close(&a.2, &e.2, 1e-4, &format!("{what} db"));
}

fn on_flex() {
    assert!(cpu::enabled(), "the kernels are on by default");
    let dev = Device::flex();
    assert!(
        tract_studio::kernels::is_flex(&dev)
            && tract_studio::kernels::is_flex(&dev.clone().autodiff())
    );
}

#[test]
fn conv2d_matches_burn_values_and_gradients() {
    on_flex();
    let mut rng = Rng::new(3);
    // (n, cin, h, w, cout, k, stride, pad)
    let cases = [
        (1, 1, 5, 7, 1, 3, 1, 1),
        (3, 5, 9, 6, 7, 3, 1, 1),
        (2, 3, 8, 8, 4, 3, 2, 1),
        (2, 13, 7, 9, 2, 3, 2, 1),
        (4, 6, 5, 5, 3, 1, 1, 0),
        (1, 2, 6, 5, 3, 3, 1, 0),
        (2, 4, 6, 6, 5, 1, 2, 0),
        (2, 3, 6, 7, 4, 5, 1, 2),
        (5, 16, 16, 16, 32, 3, 1, 1),
        (3, 32, 8, 8, 96, 1, 1, 0),
        // small images: several per weight-gradient GEMM, unevenly split
        (9, 8, 4, 4, 8, 3, 1, 1),
        (7, 3, 3, 5, 4, 3, 1, 1),
        // Winograd F(2x2, 3x3) (forward and input gradient): 64 channels at 32x32 and more,
        // 256 channels at an odd small size
        (2, 64, 33, 32, 65, 3, 1, 1),
        (5, 256, 5, 7, 256, 3, 1, 1),
    ];
    for (n, cin, h, w, cout, k, st, p) in cases {
        // weights of sd 0.3, or 1 / sqrt(fan-in) as a network's are (outputs about 1) past a
        // fan-in of 144: at sd 0.3 and a fan-in of 2,304 the outputs are about 14 and f32's
        // own rounding in Burn's direct sums reaches the 2e-5 tolerance relative to a small one
        let fan_in = cin * k * k;
        let wscale = if fan_in > 144 {
            1.0 / (fan_in as f32).sqrt()
        } else {
            0.3
        };
        compare_conv(
            &mut rng,
            &format!("conv n{n} cin{cin} {h}x{w} cout{cout} k{k} s{st} p{p}"),
            [n, cin, h, w],
            [cout, cin, k, k],
            wscale,
            &move |x, w, b| cpu::conv2d(x, w, b, st, p),
            &move |x, w, b| reference::conv2d(x, w, b, st, p),
        );
    }
}

#[test]
fn fused_bias_per_image_and_residual_match_burn_values_and_gradients() {
    on_flex();
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let mut rng = Rng::new(6);
    // (n, cin, h, w, cout, k, stride, pad, with e, with r): the same-size path, stride 2,
    // 1x1, batch 1, each addend alone and both
    for (n, cin, h, w, cout, k, st, p, with_e, with_r) in [
        (3, 5, 9, 6, 7, 3, 1, 1, true, true),
        (1, 4, 5, 5, 3, 3, 1, 1, true, false),
        (2, 3, 8, 8, 4, 3, 2, 1, false, true),
        (4, 6, 5, 5, 3, 1, 1, 0, true, true),
        (5, 16, 16, 16, 16, 3, 1, 1, true, true),
        (2, 64, 32, 33, 64, 3, 1, 1, true, true),
    ] {
        let what = format!("fused n{n} cin{cin} {h}x{w} cout{cout} k{k} s{st} e{with_e} r{with_r}");
        let (ho, wo) = ((h + 2 * p - k) / st + 1, (w + 2 * p - k) / st + 1);
        let xv = rng.normals(n * cin * h * w);
        let wv: Vec<f32> = rng
            .normals(cout * cin * k * k)
            .iter()
            .map(|v| v * 0.3)
            .collect();
        let bv = rng.normals(cout);
        let ev = rng.normals(n * cout);
        let rv = rng.normals(n * cout * ho * wo);
        let gv = rng.normals(n * cout * ho * wo);
        // values and the gradients of sum(y * g) for (x, w, b, e, r), by one function
        let run = |fused: bool| {
            let x = t4(xv.clone(), [n, cin, h, w], &ad).require_grad();
            let wt = t4(wv.clone(), [cout, cin, k, k], &ad).require_grad();
            let b = from_vec1(bv.clone(), &ad).require_grad();
            let e = from_vec1(ev.clone(), &ad).reshape([n, cout]).require_grad();
            let r = t4(rv.clone(), [n, cout, ho, wo], &ad).require_grad();
            let (eo, ro) = (with_e.then(|| e.clone()), with_r.then(|| r.clone()));
            let y = if fused {
                cpu::conv2d_fused(x.clone(), wt.clone(), b.clone(), eo, ro, st, p)
            } else {
                let mut y = reference::conv2d(x.clone(), wt.clone(), b.clone(), st, p);
                if let Some(e) = eo {
                    y = y + e.reshape([n, cout, 1, 1]);
                }
                if let Some(r) = ro {
                    y = y + r;
                }
                y
            };
            let g = (y.clone() * t4(gv.clone(), [n, cout, ho, wo], &ad))
                .sum()
                .backward();
            let grad = |t: Option<Vec<f32>>| t.unwrap_or_default();
            (
                to_vec(y),
                [
                    grad(x.grad(&g).map(to_vec)),
                    grad(wt.grad(&g).map(to_vec)),
                    grad(b.grad(&g).map(to_vec)),
                    grad(e.grad(&g).map(to_vec)),
                    grad(r.grad(&g).map(to_vec)),
                ],
            )
        };
        let (ya, ga) = run(true);
        let (ye, ge) = run(false);
        close(&ya, &ye, 2e-5, &what);
        for (j, name) in ["dx", "dw", "db", "de", "dr"].iter().enumerate() {
            let used = match j {
                3 => with_e,
                4 => with_r,
                _ => true,
            };
            assert_eq!(
                ga[j].is_empty(),
                !used,
                "{what} {name}: a gradient exactly when used"
            );
            if used {
                close(&ga[j], &ge[j], 1e-4, &format!("{what} {name}"));
            }
        }
    }
    let _ = dev;
}

#[test]
fn upsample_conv2d_matches_burn_values_and_gradients() {
    on_flex();
    let mut rng = Rng::new(5);
    // (n, cin, h, w, cout): odd sizes, 1 and prime channel counts, batch 1, the UNet's shapes
    for (n, cin, h, w, cout) in [
        (1, 1, 3, 5, 1),
        (3, 5, 4, 3, 7),
        (2, 13, 1, 2, 2),
        (5, 32, 16, 16, 32),
    ] {
        compare_conv(
            &mut rng,
            &format!("upsample conv n{n} cin{cin} {h}x{w} cout{cout}"),
            [n, cin, h, w],
            [cout, cin, 3, 3],
            0.3,
            &cpu::upsample_conv2d,
            &|x, w, b| reference::conv2d(reference::upsample2x(x), w, b, 1, 1),
        );
    }
}

#[test]
fn group_norm_silu_matches_burn_values_and_gradients() {
    on_flex();
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let mut rng = Rng::new(4);
    // (n, c, h, w, groups)
    let cases = [
        (1, 1, 1, 1, 1),
        (1, 1, 5, 3, 1),
        (2, 7, 3, 5, 7),
        (3, 13, 4, 4, 1),
        (2, 16, 8, 8, 8),
        (1, 32, 9, 7, 8),
        (4, 64, 16, 16, 8),
    ];
    for (i, (n, c, h, w, g)) in cases.into_iter().enumerate() {
        // the default epsilon, diffusers' 1e-6 and one large enough to change every value
        let eps = [1e-5f32, 1e-6, 0.5][i % 3];
        for act in [true, false] {
            let what = format!("group norm n{n} c{c} {h}x{w} g{g} eps {eps} silu {act}");
            // an offset and a scale, so the normalisation matters
            let xv: Vec<f32> = rng
                .normals(n * c * h * w)
                .iter()
                .map(|v| 3.0 * v + 1.5)
                .collect();
            let gv: Vec<f32> = rng.normals(c).iter().map(|v| 1.0 + 0.5 * v).collect();
            let bv = rng.normals(c);
            let mk = |d: &Device| {
                (
                    t4(xv.clone(), [n, c, h, w], d),
                    from_vec1(gv.clone(), d),
                    from_vec1(bv.clone(), d),
                )
            };
            let (x, ga, be) = mk(&dev);
            let ours = cpu::group_norm_eps(x.clone(), ga.clone(), be.clone(), g, eps, act);
            let theirs = reference::group_norm_eps(x, ga, be, g, eps, act);
            close(&to_vec(ours), &to_vec(theirs), 2e-5, &what);
            let r = rng.normals(n * c * h * w);
            let grads = |f: &dyn Fn(Tensor<4>, Tensor<1>, Tensor<1>) -> Tensor<4>| {
                let (x, ga, be) = mk(&ad);
                let (x, ga, be) = (x.require_grad(), ga.require_grad(), be.require_grad());
                let y = f(x.clone(), ga.clone(), be.clone());
                let gr = (y * t4(r.clone(), [n, c, h, w], &ad)).sum().backward();
                (
                    to_vec(x.grad(&gr).unwrap()),
                    to_vec(ga.grad(&gr).unwrap()),
                    to_vec(be.grad(&gr).unwrap()),
                )
            };
            let a = grads(&|x, ga, be| cpu::group_norm_eps(x, ga, be, g, eps, act));
            let e = grads(&|x, ga, be| reference::group_norm_eps(x, ga, be, g, eps, act));
            // a group of one element normalises to 0: no gradient for x or gamma
            if h * w * c / g > 1 {
                close(&a.0, &e.0, 1e-4, &format!("{what} dx"));
                close(&a.1, &e.1, 1e-4, &format!("{what} dgamma"));
            }
            close(&a.2, &e.2, 1e-4, &format!("{what} dbeta"));
        }
    }
}

#[test]
fn silu_matches_burn_values_and_gradients() {
    on_flex();
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let mut rng = Rng::new(5);
    // one value, a short odd length, and lengths on both sides of the parallel split (2^16)
    for (rows, cols) in [(1, 1), (3, 7), (512, 128), (1031, 67)] {
        let what = format!("silu {rows}x{cols}");
        // wide inputs, so both tails of the sigmoid are exercised
        let mut xv: Vec<f32> = rng.normals(rows * cols).iter().map(|v| 6.0 * v).collect();
        if xv.len() > 4 {
            xv[..4].copy_from_slice(&[-100.0, -20.0, 20.0, 100.0]);
        }
        let x: Tensor<2> = from_vec1(xv.clone(), &dev).reshape([rows, cols]);
        let ours = cpu::silu(x.clone());
        let theirs = burn::tensor::activation::silu(x);
        close(&to_vec(ours), &to_vec(theirs), 2e-6, &what);
        let r = rng.normals(rows * cols);
        let grad = |f: &dyn Fn(Tensor<2>) -> Tensor<2>| {
            let x: Tensor<2> = from_vec1(xv.clone(), &ad).reshape([rows, cols]);
            let x = x.require_grad();
            let y = f(x.clone());
            let rt: Tensor<2> = from_vec1(r.clone(), &ad).reshape([rows, cols]);
            let g = (y * rt).sum().backward();
            to_vec(x.grad(&g).unwrap())
        };
        let a = grad(&|x| cpu::silu(x));
        let e = grad(&|x| burn::tensor::activation::silu(x));
        close(&a, &e, 1e-5, &format!("{what} dx"));
    }
}

/// max |a - b| at most `tol` times the reference's largest magnitude (the gradients of the
/// attention weights span orders of magnitude, so the scale is the whole tensor's).
fn close_to_scale(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: all zero");
    close_or_zero(a, b, tol, what)
}

/// `close_to_scale`, also when both are all zero.
fn close_or_zero(a: &[f32], b: &[f32], tol: f32, what: &str) {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst <= tol * scale,
        "{what}: max abs diff {worst} vs scale {scale}"
    );
}

#[test]
fn attention_matches_burn_values_and_every_gradient() {
    on_flex();
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let mut rng = Rng::new(11);
    // (n, c, h, w, heads): one head and several, one channel per head, batch 1 (threads
    // inside the GEMMs), odd and prime sizes, a single pixel, the UNet's 16x16 at 64 channels
    for (n, c, h, w, heads) in [
        (2, 8, 3, 5, 1),
        (3, 12, 4, 3, 3),
        (1, 6, 5, 5, 2),
        (2, 7, 1, 9, 7),
        (3, 5, 1, 1, 1),
        (4, 32, 8, 8, 4),
        (2, 64, 16, 16, 1),
    ] {
        let what = format!("attention n{n} c{c} {h}x{w} heads{heads}");
        let len = n * c * h * w;
        let xv = rng.normals(len);
        let rv = rng.normals(len);
        let gv = rng.normals(len);
        // weights of a few times the usual 1/sqrt(c): attention far from uniform
        let sc = 2.0 / (c as f32).sqrt();
        let wv: Vec<Vec<f32>> = (0..4)
            .map(|_| rng.normals(c * c).iter().map(|v| v * sc).collect())
            .collect();
        let bv: Vec<Vec<f32>> = (0..4).map(|_| rng.normals(c)).collect();
        let inputs = |d: &Device, grad: bool| {
            let g = |t: Tensor<4>| if grad { t.require_grad() } else { t };
            let x = g(t4(xv.clone(), [n, c, h, w], d));
            let r = g(t4(rv.clone(), [n, c, h, w], d));
            let ws: [Tensor<2>; 4] = std::array::from_fn(|i| {
                let t = from_vec1(wv[i].clone(), d).reshape([c, c]);
                if grad { t.require_grad() } else { t }
            });
            let bs: [Tensor<1>; 4] = std::array::from_fn(|i| {
                let t = from_vec1(bv[i].clone(), d);
                if grad { t.require_grad() } else { t }
            });
            (x, ws, bs, r)
        };
        // values without autodiff (the op that saves nothing) and with it
        let (x, ws, bs, r) = inputs(&dev, false);
        let a = to_vec(cpu::attention(
            x.clone(),
            ws.clone(),
            bs.clone(),
            heads,
            r.clone(),
        ));
        let e = to_vec(reference::attention(x, ws, bs, heads, r));
        close_to_scale(&a, &e, 1e-5, &what);
        // the gradients of sum(y * g) for x, the four weights, the four biases and r
        let grads = |ours: bool| {
            let (x, ws, bs, r) = inputs(&ad, true);
            let f = if ours {
                cpu::attention
            } else {
                reference::attention
            };
            let y = f(x.clone(), ws.clone(), bs.clone(), heads, r.clone());
            let yv = to_vec(y.clone());
            let gt = t4(gv.clone(), [n, c, h, w], &ad);
            let g = (y * gt).sum().backward();
            let mut out = vec![yv, to_vec(x.grad(&g).unwrap())];
            out.extend(ws.iter().map(|t| to_vec(t.grad(&g).unwrap())));
            out.extend(bs.iter().map(|t| to_vec(t.grad(&g).unwrap())));
            out.push(to_vec(r.grad(&g).unwrap()));
            out
        };
        let (a, e) = (grads(true), grads(false));
        let names = [
            "y (autodiff)",
            "dx",
            "dwq",
            "dwk",
            "dwv",
            "dwo",
            "dbq",
            "dbk",
            "dbv",
            "dbo",
            "dr",
        ];
        for ((ga, ge), nm) in a.iter().zip(&e).zip(names) {
            if nm == "dbk" {
                // a key bias adds the same q.bk to every score of a row, which the softmax
                // ignores: its gradient is 0, in both up to rounding (next to dbv's size)
                let scale = a[8].iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = ga.iter().chain(ge).fold(0f32, |m, v| m.max(v.abs()));
                assert!(worst <= 1e-5 * scale, "{what} dbk: {worst} vs {scale}");
                continue;
            }
            if h * w == 1 && ["dwq", "dwk", "dbq"].contains(&nm) {
                // one pixel: the softmax is 1 whatever q and k are
                close_or_zero(ga, ge, 1e-5, &format!("{what} {nm}"));
                continue;
            }
            close_to_scale(ga, ge, 1e-5, &format!("{what} {nm}"));
        }
    }
}
