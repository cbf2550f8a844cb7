//! GroupNorm with an optional SiLU as one fused pass each way, and SiLU alone, on a
//! vectorised exp; the inner loops are compiled for AVX-512 or AVX2+FMA when the processor
//! has them.

use super::gemm::sum8;
use super::threads::{elementwise, new_chunks};

/// exp(x) for f32 without a libm call, so loops over it vectorise: 2^n e^r with
/// r in [-ln2/2, ln2/2] and a degree-6 Taylor polynomial (relative error below 2e-7).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // t's low mantissa bits hold n (|n| <= 127 < 2^22) in two's complement: 2^n from integer
    // operations only. (`n as i32` saturates, which compiles to scalar code per lane and kept
    // every loop over this function from vectorising.)
    let scale = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    p * scale
}

#[inline(always)]
fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-a))
}

/// Runs `$body` compiled for AVX-512 or AVX2+FMA when the processor has them (checked at run
/// time), else as plain code (SSE2 on x86-64, simd128 on wasm when built with it).
macro_rules! multiversion {
    (fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the features were detected on this processor
                    return unsafe { v4($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above
                    return unsafe { v3($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

multiversion! {
    fn silu_chunk(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v * sigmoid(v);
        }
    }
}

multiversion! {
    fn silu_back_chunk(x: &[f32], gy: &[f32], gx: &mut [f32]) {
        for ((o, &v), &g) in gx.iter_mut().zip(x).zip(gy) {
            let s = sigmoid(v);
            *o = g * s * (1.0 + v * (1.0 - s));
        }
    }
}

/// SiLU, x sigmoid(x), elementwise (the vectorised exp instead of libm's, one pass).
pub fn silu(x: &[f32]) -> Vec<f32> {
    elementwise(x.len(), |s, y| silu_chunk(&x[s..s + y.len()], y))
}

/// gy silu'(x) = gy s (1 + x (1 - s)) with s = sigmoid(x), elementwise.
pub fn silu_backward(x: &[f32], gy: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), gy.len(), "silu_backward: x and gy lengths");
    elementwise(x.len(), |s, g| {
        let r = s..s + g.len();
        silu_back_chunk(&x[r.clone()], &gy[r], g)
    })
}

multiversion! {
    fn stats(x: &[f32], eps: f32) -> (f32, f32) {
        let len = x.len().max(1) as f32;
        let mean = sum8(x) / len;
        let mut acc = [0f32; 8];
        let mut it = x.chunks_exact(8);
        for c in &mut it {
            for j in 0..8 {
                let d = c[j] - mean;
                acc[j] += d * d;
            }
        }
        let tail: f32 = it.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
        let var = (acc.iter().sum::<f32>() + tail) / len;
        (mean, 1.0 / (var + eps).sqrt())
    }
}

multiversion! {
    fn affine_act(x: &[f32], y: &mut [f32], sc: f32, sh: f32, act: bool) {
        if act {
            for (o, &v) in y.iter_mut().zip(x) {
                let a = v * sc + sh;
                *o = a * sigmoid(a);
            }
        } else {
            for (o, &v) in y.iter_mut().zip(x) {
                *o = v * sc + sh;
            }
        }
    }
}

/// One channel of a GroupNorm: its group's statistics, its affine and whether SiLU follows.
#[derive(Clone, Copy)]
struct ChannelNorm {
    mean: f32,
    rstd: f32,
    gamma: f32,
    beta: f32,
    act: bool,
}

multiversion! {
    // g <- d(loss)/d(xhat) for one channel; returns (sum ga, sum ga xhat, sum g, sum g xhat)
    // in simple passes the compiler vectorises: ga, then the sums (8 lanes) with g = ga gamma
    fn channel_back(x: &[f32], gy: &[f32], g: &mut [f32], cn: ChannelNorm) -> [f32; 4] {
        let ChannelNorm { mean, rstd, gamma, beta, act } = cn;
        let m = x.len().min(gy.len()).min(g.len());
        let (x, gy, g) = (&x[..m], &gy[..m], &mut g[..m]);
        if act {
            let (sc, sh) = (rstd * gamma, beta - mean * rstd * gamma);
            for (o, (&v, &gv)) in g.iter_mut().zip(x.iter().zip(gy)) {
                let a = v * sc + sh;
                let sg = sigmoid(a);
                *o = gv * sg * (1.0 + a * (1.0 - sg));
            }
        } else {
            g.copy_from_slice(gy);
        }
        let mut s = [[0f32; 8]; 2];
        let full = m / 8 * 8;
        for (gc, xc) in g[..full].chunks_exact_mut(8).zip(x[..full].chunks_exact(8)) {
            for j in 0..8 {
                let xh = (xc[j] - mean) * rstd;
                s[0][j] += gc[j];
                s[1][j] += gc[j] * xh;
                gc[j] *= gamma;
            }
        }
        for i in full..m {
            let xh = (x[i] - mean) * rstd;
            s[0][0] += g[i];
            s[1][0] += g[i] * xh;
            g[i] *= gamma;
        }
        let (sa, sax): (f32, f32) = (s[0].iter().sum(), s[1].iter().sum());
        [sa, sax, sa * gamma, sax * gamma]
    }
}

multiversion! {
    fn finish_back(x: &[f32], g: &mut [f32], mean: f32, rstd: f32, m1: f32, m2: f32) {
        for (o, &v) in g.iter_mut().zip(x) {
            let xh = (v - mean) * rstd;
            *o = rstd * (*o - m1 - xh * m2);
        }
    }
}

/// The epsilon of a GroupNorm unless given (PyTorch's default).
pub const GN_EPS: f32 = 1e-5;

/// GroupNorm over [n, c, hw] with `groups` groups (c divisible by it) and epsilon eps,
/// per-channel affine gamma, beta, then SiLU when `act`: one statistics pass and one fused
/// pass per group.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    x: &[f32],
    (n, c, hw): (usize, usize, usize),
    groups: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    act: bool,
) -> Vec<f32> {
    assert!(
        groups > 0 && c % groups == 0,
        "group_norm: {c} channels in {groups} groups"
    );
    assert_eq!(x.len(), n * c * hw, "group_norm: input size");
    let cpg = c / groups;
    let len = cpg * hw;
    new_chunks(n * groups, len, false, |b, yb| {
        let xb = &x[b * len..(b + 1) * len];
        let (mean, rstd) = stats(xb, eps);
        let c0 = (b % groups) * cpg;
        for ci in 0..cpg {
            let sc = rstd * gamma[c0 + ci];
            let sh = beta[c0 + ci] - mean * sc;
            let r = ci * hw..(ci + 1) * hw;
            affine_act(&xb[r.clone()], &mut yb[r], sc, sh, act);
        }
    })
}

/// Gradients of `group_norm` for the output gradient gy: (gx, ggamma, gbeta).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    x: &[f32],
    (n, c, hw): (usize, usize, usize),
    groups: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    gy: &[f32],
    act: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(
        groups > 0 && c % groups == 0,
        "group_norm: {c} channels in {groups} groups"
    );
    assert_eq!(gy.len(), n * c * hw, "group_norm backward: gradient size");
    let cpg = c / groups;
    let len = cpg * hw;
    let blocks = n * groups;
    let mut gx = vec![0f32; x.len()];
    // per block and channel: (sum ga, sum ga xhat) for gbeta and ggamma
    let mut part = vec![0f32; blocks * 2 * cpg];
    let lenf = len.max(1) as f32;
    let block = |b: usize, gxb: &mut [f32], pb: &mut [f32]| {
        let xb = &x[b * len..(b + 1) * len];
        let gyb = &gy[b * len..(b + 1) * len];
        let (mean, rstd) = stats(xb, eps);
        let c0 = (b % groups) * cpg;
        let (mut m1, mut m2) = (0f32, 0f32);
        for ci in 0..cpg {
            let r = ci * hw..(ci + 1) * hw;
            let [sa, sax, sg, sgx] = channel_back(
                &xb[r.clone()],
                &gyb[r.clone()],
                &mut gxb[r],
                ChannelNorm {
                    mean,
                    rstd,
                    gamma: gamma[c0 + ci],
                    beta: beta[c0 + ci],
                    act,
                },
            );
            pb[ci] = sa;
            pb[cpg + ci] = sax;
            m1 += sg;
            m2 += sgx;
        }
        finish_back(xb, gxb, mean, rstd, m1 / lenf, m2 / lenf);
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        gx.par_chunks_mut(len.max(1))
            .zip(part.par_chunks_mut(2 * cpg))
            .enumerate()
            .for_each(|(b, (g, p))| block(b, g, p));
    }
    #[cfg(target_arch = "wasm32")]
    gx.chunks_mut(len.max(1))
        .zip(part.chunks_mut(2 * cpg))
        .enumerate()
        .for_each(|(b, (g, p))| block(b, g, p));
    let (mut ggamma, mut gbeta) = (vec![0f32; c], vec![0f32; c]);
    for b in 0..blocks {
        let c0 = (b % groups) * cpg;
        let pb = &part[b * 2 * cpg..(b + 1) * 2 * cpg];
        for ci in 0..cpg {
            gbeta[c0 + ci] += pb[ci];
            ggamma[c0 + ci] += pb[cpg + ci];
        }
    }
    (gx, ggamma, gbeta)
}
