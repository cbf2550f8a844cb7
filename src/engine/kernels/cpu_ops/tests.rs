//! The CPU kernels against direct sums and libm, on odd shapes (tests/cpu_kernels.rs compares
//! them with Burn's own ops).

use super::conv::{im2col_rows, im2col_same, valid_cols};
use super::*;

/// Every element of `got` within tol (1 + |want|) of `want`.
fn assert_close<E: Copy + Into<f64>>(got: &[f32], want: &[E], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (j, (&a, &e)) in got.iter().zip(want).enumerate() {
        let e: f64 = e.into();
        assert!(
            (a as f64 - e).abs() < tol * (1.0 + e.abs()),
            "{what} [{j}]: {a} vs {e}"
        );
    }
}

#[test]
fn exp_matches_libm() {
    let mut worst = 0f32;
    let mut x = -87.0f32;
    while x < 88.0 {
        let rel = ((exp_f32(x) - x.exp()) / x.exp()).abs();
        worst = worst.max(rel);
        x += 0.0137;
    }
    assert!(worst < 5e-7, "worst relative error {worst}");
    assert_eq!(exp_f32(0.0), 1.0);
    assert!(exp_f32(-1000.0) < 1e-37 && exp_f32(1000.0) > 1e38);
}

#[test]
fn valid_cols_are_exactly_the_inside_ones() {
    for (w, k, st, p) in [
        (7, 3, 1, 1),
        (8, 3, 2, 1),
        (5, 1, 1, 0),
        (9, 3, 2, 0),
        (1, 3, 1, 1),
    ] {
        let s = ConvShape::new(1, 1, w, w, 1, k, st, p).unwrap();
        for kw in 0..k {
            let (lo, hi) = valid_cols(&s, kw);
            for ow in 0..s.wo {
                let iw = (ow * st + kw) as isize - p as isize;
                let inside = iw >= 0 && iw < w as isize;
                assert_eq!(inside, (lo..hi).contains(&ow), "w {w} k {k} s {st} p {p}");
            }
        }
    }
}

#[test]
fn whole_block_im2col_equals_the_row_by_row_one() {
    for (h, w, k, p) in [
        (1, 1, 3, 1),
        (5, 7, 3, 1),
        (8, 8, 3, 1),
        (2, 9, 5, 2),
        (6, 1, 3, 1),
        (4, 4, 1, 0),
    ] {
        let s = ConvShape::new(1, 3, h, w, 1, k, 1, p).unwrap();
        let x = vals(3 * h * w, 7);
        let len = s.kk() * s.pixels();
        let (mut a, mut b) = (vec![f32::NAN; len], vec![f32::NAN; len]);
        im2col_same(&s, &x, &mut a);
        im2col_rows(&s, &x, &mut b);
        assert_eq!(a, b, "{h}x{w} k{k} p{p}");
    }
}

/// Direct 7-loop convolution, the independent reference for the GEMM path.
fn direct(s: &ConvShape, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; s.n * s.cout * s.ho * s.wo];
    for n in 0..s.n {
        for co in 0..s.cout {
            for oh in 0..s.ho {
                for ow in 0..s.wo {
                    let mut acc = b[co] as f64;
                    for ci in 0..s.cin {
                        for kh in 0..s.k {
                            for kw in 0..s.k {
                                let ih = (oh * s.stride + kh) as isize - s.pad as isize;
                                let iw = (ow * s.stride + kw) as isize - s.pad as isize;
                                if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize {
                                    continue;
                                }
                                let xv =
                                    x[((n * s.cin + ci) * s.h + ih as usize) * s.w + iw as usize];
                                let wv = w[((co * s.cin + ci) * s.k + kh) * s.k + kw];
                                acc += (xv * wv) as f64;
                            }
                        }
                    }
                    y[((n * s.cout + co) * s.ho + oh) * s.wo + ow] = acc as f32;
                }
            }
        }
    }
    y
}

/// Direct gradients of `direct` (gx, gw), the independent reference for the backward.
fn direct_back(s: &ConvShape, x: &[f32], w: &[f32], gy: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let mut gx = vec![0f64; x.len()];
    let mut gw = vec![0f64; w.len()];
    for n in 0..s.n {
        for co in 0..s.cout {
            for oh in 0..s.ho {
                for ow in 0..s.wo {
                    let g = gy[((n * s.cout + co) * s.ho + oh) * s.wo + ow] as f64;
                    for ci in 0..s.cin {
                        for kh in 0..s.k {
                            for kw in 0..s.k {
                                let ih = (oh * s.stride + kh) as isize - s.pad as isize;
                                let iw = (ow * s.stride + kw) as isize - s.pad as isize;
                                if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize {
                                    continue;
                                }
                                let xi = ((n * s.cin + ci) * s.h + ih as usize) * s.w + iw as usize;
                                let wi = ((co * s.cin + ci) * s.k + kh) * s.k + kw;
                                gx[xi] += g * w[wi] as f64;
                                gw[wi] += g * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (gx, gw)
}

#[test]
fn upsampled_conv_matches_the_conv_of_the_upsampled_image() {
    // odd sizes, 1 and prime channel counts, batch 1 (threaded GEMM)
    for (i, &(n, cin, h, w, cout)) in [(1, 1, 3, 5, 1), (3, 5, 4, 3, 7), (1, 13, 2, 2, 3)]
        .iter()
        .enumerate()
    {
        let s = ConvShape::new(n, cin, h, w, cout, 3, 1, 1).unwrap();
        let su = ConvShape::new(n, cin, 2 * h, 2 * w, cout, 3, 1, 1).unwrap();
        let x = vals(n * cin * h * w, 90 + i as u64);
        // the nearest-2x upsampled image, built explicitly
        let mut xu = vec![0f32; 4 * x.len()];
        for (j, v) in xu.iter_mut().enumerate() {
            let (c, r, col) = (j / (4 * h * w), (j / (2 * w)) % (2 * h), j % (2 * w));
            *v = x[c * h * w + (r / 2) * w + col / 2];
        }
        let wt = vals(cout * cin * 9, 91 + i as u64);
        let b = vals(cout, 92 + i as u64);
        let y = upconv_forward(&s, &x, &wt, Epilogue::with_bias(&b));
        let yd = direct(&su, &xu, &wt, &b);
        assert_eq!(y.len(), yd.len());
        assert_close(&y, &yd, 1e-4, &format!("{s:?}"));
        let gy = vals(y.len(), 93 + i as u64);
        let (gx, gw, gb) = upconv_backward(&s, &x, &wt, &gy, true);
        let (gxu, ew) = direct_back(&su, &xu, &wt, &gy);
        assert_close(&gw, &ew, 1e-4, &format!("{s:?} gw"));
        // the upsampling's adjoint sums each 2x2 block
        let mut ex = vec![0f64; x.len()];
        for (j, g) in gxu.iter().enumerate() {
            let (c, r, col) = (j / (4 * h * w), (j / (2 * w)) % (2 * h), j % (2 * w));
            ex[c * h * w + (r / 2) * w + col / 2] += g;
        }
        assert_close(&gx.unwrap(), &ex, 1e-4, &format!("{s:?} gx"));
        assert_bias_grad(&gb, &gy, (n, cout, 4 * h * w), &format!("{s:?}"));
    }
}

fn vals(len: usize, seed: u64) -> Vec<f32> {
    let mut r = crate::engine::rng::Rng::new(seed);
    r.normals(len)
}

/// gb[co] against the sum of gy over the images and the `plane` pixels of channel co.
fn assert_bias_grad(gb: &[f32], gy: &[f32], (n, cout, plane): (usize, usize, usize), what: &str) {
    for co in 0..cout {
        let e: f64 = (0..n)
            .flat_map(|m| gy[(m * cout + co) * plane..][..plane].iter())
            .map(|&v| v as f64)
            .sum();
        assert!(
            (gb[co] as f64 - e).abs() < 1e-3 * (1.0 + e.abs()),
            "{what} gb"
        );
    }
}

#[test]
fn conv_forward_and_backward_match_direct_sums() {
    // (n, cin, h, w, cout, k, stride, pad): same-size (the im2col-free path, k 3 and 5),
    // odd sizes, 1 and prime channel counts, stride 2, 1x1 (also with stride 2), padding 0,
    // batch 1 (threaded GEMM)
    for (i, &(n, cin, h, w, cout, k, st, p)) in [
        (1, 1, 5, 7, 1, 3, 1, 1),
        (3, 5, 9, 6, 7, 3, 1, 1),
        (2, 3, 4, 6, 5, 5, 1, 2),
        (1, 13, 6, 3, 2, 3, 1, 1),
        (2, 3, 8, 8, 4, 3, 2, 1),
        (2, 3, 7, 9, 2, 3, 2, 1),
        (4, 6, 5, 5, 3, 1, 1, 0),
        (1, 2, 6, 5, 3, 3, 1, 0),
        (2, 4, 6, 6, 5, 1, 2, 0),
        // Winograd F(2x2, 3x3) (forward and input gradient): odd sizes, even sizes, one image
        (1, 64, 45, 47, 65, 3, 1, 1),
        (4, 256, 5, 7, 257, 3, 1, 1),
        (8, 257, 4, 4, 256, 3, 1, 1),
        // images of 1x1, 2x3 and 3x2 pixels (blocks past both edges)
        (128, 256, 1, 1, 256, 3, 1, 1),
        (32, 256, 2, 3, 257, 3, 1, 1),
        (32, 257, 3, 2, 256, 3, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        let s = ConvShape::new(n, cin, h, w, cout, k, st, p).unwrap();
        // the last three take the Winograd path, the others the direct forms
        assert_eq!(super::winograd::applies(&s), i >= 9, "{s:?}");
        let x = vals(n * cin * h * w, 10 + i as u64);
        let mut wt = vals(cout * cin * k * k, 20 + i as u64);
        if i >= 9 {
            // weights at a network's scale, 1 / sqrt(fan-in), so outputs are about 1 and the
            // tolerance is relative to them: Winograd's f32 error grows with the terms'
            // magnitude, not the result's (at unit weights an output of 0.05 cancels 2,304
            // products of about 1, and 1e-4 of it is 2e-6 of their scale)
            let scale = 1.0 / ((cin * k * k) as f32).sqrt();
            wt.iter_mut().for_each(|v| *v *= scale);
        }
        let b = vals(cout, 30 + i as u64);
        let y = conv2d_forward(&s, &x, &wt, Epilogue::with_bias(&b));
        assert_close(&y, &direct(&s, &x, &wt, &b), 1e-5, &format!("{s:?}"));
        let gy = vals(y.len(), 40 + i as u64);
        let (gx, gw, gb) = conv2d_backward(&s, &x, &wt, &gy, true);
        let gx = gx.unwrap();
        // element by element against the direct sums of the chain rule
        let (ex, ew) = direct_back(&s, &x, &wt, &gy);
        assert_close(&gx, &ex, 1e-5, &format!("{s:?} gx"));
        assert_close(&gw, &ew, 1e-4, &format!("{s:?} gw"));
        // adjoint identities: <gy, conv(x)> linear in x and in w
        let zero_b = vec![0f32; cout];
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
        let lhs = dot(&gy, &direct(&s, &x, &wt, &zero_b));
        assert!(
            (lhs - dot(&gx, &x)).abs() < 1e-3 * (1.0 + lhs.abs()),
            "{s:?} gx"
        );
        assert!(
            (lhs - dot(&gw, &wt)).abs() < 1e-3 * (1.0 + lhs.abs()),
            "{s:?} gw"
        );
        assert_bias_grad(&gb, &gy, (n, cout, s.ho * s.wo), &format!("{s:?}"));
    }
}

/// The Winograd path with a per-image bias and a residual (added in the pass that writes the
/// output), and where one image's blocks are not a whole GEMM group, against the direct sums.
#[test]
fn winograd_adds_an_image_bias_and_a_residual() {
    let (n, cin, h, w, cout) = (3, 64, 37, 41, 70);
    let s = ConvShape::new(n, cin, h, w, cout, 3, 1, 1).unwrap();
    assert!(super::winograd::applies(&s));
    let x = vals(n * cin * h * w, 71);
    let mut wt = vals(cout * cin * 9, 72);
    wt.iter_mut().for_each(|v| *v /= ((cin * 9) as f32).sqrt());
    let bias = vals(n * cout, 73);
    let res = vals(n * cout * h * w, 74);
    let ep = Epilogue {
        bias: Some(&bias),
        residual: Some(&res),
    };
    let y = conv2d_forward(&s, &x, &wt, ep);
    let mut want = direct(&s, &x, &wt, &vec![0f32; cout]);
    for (j, v) in want.iter_mut().enumerate() {
        let (i, co) = (j / (cout * h * w), j / (h * w) % cout);
        *v += bias[i * cout + co] + res[j];
    }
    assert_close(&y, &want, 1e-4, "winograd with bias and residual");
}
