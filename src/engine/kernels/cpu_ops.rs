//! The CPU kernels on plain f32 slices (NCHW, contiguous): convolution forward and backward
//! through one GEMM per image (the `gemm` crate Burn's CPU backend uses, AVX-512 micro-kernels
//! chosen at run time), and GroupNorm with an optional SiLU as one fused pass each way, with a
//! vectorised exp. `cpu.rs` puts them behind a Burn backend extension; the tests compare them
//! with Burn's own ops.

use std::cell::RefCell;

/// One 2-D convolution: groups 1, dilation 1, square kernel, the same stride and padding on
/// both axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvShape {
    /// None when the output would be empty (kernel larger than the padded image) or a size is 0.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        cin: usize,
        h: usize,
        w: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Option<Self> {
        if k == 0 || stride == 0 || h + 2 * pad < k || w + 2 * pad < k {
            return None;
        }
        let ho = (h + 2 * pad - k) / stride + 1;
        let wo = (w + 2 * pad - k) / stride + 1;
        Some(ConvShape {
            n,
            cin,
            h,
            w,
            cout,
            k,
            stride,
            pad,
            ho,
            wo,
        })
    }
    fn kk(&self) -> usize {
        self.cin * self.k * self.k
    }
    fn pixels(&self) -> usize {
        self.ho * self.wo
    }
    /// A 1x1 convolution without stride or padding: the image itself is the im2col matrix.
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
}

thread_local! {
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A per-thread scratch buffer, reused across calls (never shrinks).
fn with_col<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COL.with(|c| {
        let mut v = c.borrow_mut();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    })
}

#[cfg(not(target_arch = "wasm32"))]
fn threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(target_arch = "wasm32")]
fn threads() -> usize {
    1
}

/// A new vector of `count` chunks of `len` floats, chunk i filled by `f(i, chunk_i)`: one
/// after another when `inner` (the threads then work inside each chunk's GEMMs) or on wasm,
/// else in parallel. Each chunk is zeroed by the thread that fills it, just before `f` (cache
/// hot, in parallel), instead of the whole output by one thread up front.
fn new_chunks(
    count: usize,
    len: usize,
    inner: bool,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let total = count * len;
    if len == 0 {
        return vec![0f32; total];
    }
    let mut v: Vec<f32> = Vec::with_capacity(total);
    let one = |i: usize, c: &mut [std::mem::MaybeUninit<f32>]| {
        // SAFETY: the chunk is written with zeros (a valid f32) before it is viewed as &mut [f32]
        let c = unsafe {
            std::ptr::write_bytes(c.as_mut_ptr(), 0, c.len());
            std::slice::from_raw_parts_mut(c.as_mut_ptr().cast::<f32>(), c.len())
        };
        f(i, c)
    };
    let spare = &mut v.spare_capacity_mut()[..total];
    #[cfg(not(target_arch = "wasm32"))]
    if !inner {
        use rayon::prelude::*;
        spare
            .par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| one(i, c));
    }
    if inner || cfg!(target_arch = "wasm32") {
        spare
            .chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| one(i, c));
    }
    // SAFETY: every one of the `total` floats was initialised above (the chunks cover them)
    unsafe { v.set_len(total) };
    v
}

/// Sums `f(i)` (vectors of length `len`) over i in 0..n, one accumulator per thread.
fn sum_over(n: usize, len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        (0..n)
            .into_par_iter()
            .fold(
                || vec![0f32; len],
                |mut acc, i| {
                    f(i, &mut acc);
                    acc
                },
            )
            .reduce(
                || vec![0f32; len],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            )
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut acc = vec![0f32; len];
        (0..n).for_each(|i| f(i, &mut acc));
        acc
    }
}

fn parallelism(inner: bool) -> gemm::Parallelism {
    #[cfg(not(target_arch = "wasm32"))]
    if inner {
        return gemm::Parallelism::Rayon(0);
    }
    let _ = inner;
    gemm::Parallelism::None
}

/// dst[m x n] = (accumulate ? dst : 0) + lhs[m x k] rhs[k x n], every operand given by its
/// row and column strides.
///
/// How gemm 0.19 treats the layouts (gemm.rs, gemm-common gemm.rs): a row-major dst (column
/// stride 1) makes it solve the transposed problem, dst^T = rhs^T lhs^T. Its micro-kernel then
/// reads the (new) left operand without packing only where that operand is column-major
/// (m contiguous); otherwise it packs it with a strided scalar gather for every call. So a
/// GEMM whose operands are both contiguous along k (the weight gradients: K = pixels) wants a
/// column-major dst and a left operand laid out [k, m].
#[allow(clippy::too_many_arguments)]
fn mm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    // the last element each operand touches must be inside its slice
    assert!(
        (m - 1) * dst_rs + (n - 1) * dst_cs < dst.len(),
        "gemm: dst too small"
    );
    if k > 0 {
        assert!(
            (m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(),
            "gemm: lhs too small"
        );
        assert!(
            (k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(),
            "gemm: rhs too small"
        );
    }
    // SAFETY: the bounds of all three operands were checked above; dst does not alias lhs/rhs
    // (it is a distinct &mut slice).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// The output columns `ow` whose input column `ow * s + kw - p` lies inside [0, w).
fn valid_cols(s: &ConvShape, kw: usize) -> (usize, usize) {
    let (st, p) = (s.stride, s.pad);
    let lo = if kw >= p { 0 } else { (p - kw).div_ceil(st) };
    let hi = if s.w + p > kw {
        ((s.w - 1 + p - kw) / st + 1).min(s.wo)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// col[(ci, kh, kw), (oh, ow)] = x[ci, oh s + kh - p, ow s + kw - p] (0 outside the image),
/// for one image, straight from NCHW; only the padding is zeroed.
fn im2col(s: &ConvShape, x: &[f32], col: &mut [f32]) {
    if s.stride == 1 && s.wo == s.w && s.ho == s.h {
        im2col_same(s, x, col)
    } else {
        im2col_rows(s, x, col)
    }
}

/// `im2col` row by row (any stride and padding).
fn im2col_rows(s: &ConvShape, x: &[f32], col: &mut [f32]) {
    let (k, pp, hw) = (s.k, s.pixels(), s.h * s.w);
    for ci in 0..s.cin {
        let xc = &x[ci * hw..(ci + 1) * hw];
        for kh in 0..k {
            for kw in 0..k {
                let row = &mut col[((ci * k + kh) * k + kw) * pp..][..pp];
                let (lo, hi) = valid_cols(s, kw);
                for oh in 0..s.ho {
                    let dst = &mut row[oh * s.wo..(oh + 1) * s.wo];
                    let ih = (oh * s.stride + kh) as isize - s.pad as isize;
                    if ih < 0 || ih >= s.h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &xc[ih as usize * s.w..(ih as usize + 1) * s.w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if s.stride == 1 {
                        let off = lo + kw - s.pad;
                        dst[lo..hi].copy_from_slice(&src[off..off + (hi - lo)]);
                    } else {
                        for (ow, d) in dst.iter_mut().enumerate().take(hi).skip(lo) {
                            *d = src[ow * s.stride + kw - s.pad];
                        }
                    }
                }
            }
        }
    }
}

/// `im2col` for a stride-1 convolution that keeps the size: each (ci, kh, kw) row is the
/// image shifted by (kh - p) rows and (kw - p) columns, so it is one copy of the whole valid
/// block, then the wrapped-around edge columns and the rows outside the image are zeroed.
fn im2col_same(s: &ConvShape, x: &[f32], col: &mut [f32]) {
    let (k, w, h, p) = (s.k, s.w, s.h, s.pad);
    let hw = h * w;
    for ci in 0..s.cin {
        let xc = &x[ci * hw..(ci + 1) * hw];
        for kh in 0..k {
            // output rows whose input row oh + kh - p is inside the image
            let oh0 = p.saturating_sub(kh).min(h);
            let oh1 = (h + p).saturating_sub(kh).min(h).max(oh0);
            for kw in 0..k {
                let row = &mut col[((ci * k + kh) * k + kw) * hw..][..hw];
                let (lo, hi) = valid_cols(s, kw);
                row[..oh0 * w].fill(0.0);
                row[oh1 * w..].fill(0.0);
                if oh1 == oh0 || hi == lo {
                    row[oh0 * w..oh1 * w].fill(0.0);
                    continue;
                }
                let (d0, d1) = (oh0 * w + lo, (oh1 - 1) * w + hi);
                // src index = dst index + (kh - p) w + (kw - p), inside [0, hw) on d0..d1
                let s0 = (d0 as isize + (kh as isize - p as isize) * w as isize + kw as isize
                    - p as isize) as usize;
                row[d0..d1].copy_from_slice(&xc[s0..s0 + (d1 - d0)]);
                for oh in oh0..oh1 {
                    row[oh * w..oh * w + lo].fill(0.0);
                    row[oh * w + hi..(oh + 1) * w].fill(0.0);
                }
            }
        }
    }
}

/// The adjoint of `im2col`: gx[ci, ih, iw] += gcol[(ci, kh, kw), (oh, ow)].
fn col2im_add(s: &ConvShape, gcol: &[f32], gx: &mut [f32]) {
    let (k, pp, hw) = (s.k, s.pixels(), s.h * s.w);
    for ci in 0..s.cin {
        let gc = &mut gx[ci * hw..(ci + 1) * hw];
        for kh in 0..k {
            for kw in 0..k {
                let row = &gcol[((ci * k + kh) * k + kw) * pp..][..pp];
                let (lo, hi) = valid_cols(s, kw);
                for oh in 0..s.ho {
                    let ih = (oh * s.stride + kh) as isize - s.pad as isize;
                    if ih < 0 || ih >= s.h as isize {
                        continue;
                    }
                    let src = &row[oh * s.wo..(oh + 1) * s.wo];
                    let dst = &mut gc[ih as usize * s.w..(ih as usize + 1) * s.w];
                    for ow in lo..hi {
                        dst[ow * s.stride + kw - s.pad] += src[ow];
                    }
                }
            }
        }
    }
}

thread_local! {
    static PAD: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A second per-thread scratch buffer (the zero-padded image), reused across calls.
fn with_pad<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    PAD.with(|c| {
        let mut v = c.borrow_mut();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    })
}

/// What a convolution adds to its output: a bias per channel (`[cout]`) or per image and
/// channel ([n, cout], e.g. a bias plus a time embedding), and a residual of the output's
/// shape, both in the pass that writes the output (no extra pass over memory).
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
}

impl<'a> Epilogue<'a> {
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        residual: None,
    };
    pub fn with_bias(b: &'a [f32]) -> Self {
        Epilogue {
            bias: Some(b),
            residual: None,
        }
    }
    /// Image i's bias: the shared one, or row i of a per-image bias.
    fn image_bias(&self, s: &ConvShape, i: usize) -> Option<&'a [f32]> {
        self.bias.map(|b| {
            if b.len() == s.cout {
                b
            } else {
                &b[i * s.cout..(i + 1) * s.cout]
            }
        })
    }
    fn add_residual(&self, i: usize, yi: &mut [f32]) {
        if let Some(r) = self.residual {
            let ri = &r[i * yi.len()..(i + 1) * yi.len()];
            for (y, v) in yi.iter_mut().zip(ri) {
                *y += v;
            }
        }
    }
    /// Panics unless the bias is [cout] or [n, cout] and the residual [n, cout, ho, wo].
    fn check(&self, s: &ConvShape, out_len: usize) {
        if let Some(b) = self.bias {
            assert!(
                b.len() == s.cout || b.len() == s.n * s.cout,
                "conv2d: bias size"
            );
        }
        if let Some(r) = self.residual {
            assert_eq!(r.len(), s.n * out_len, "conv2d: residual size");
        }
    }
}

/// The layout of the im2col-free path for a stride-1 convolution that keeps the size
/// (k = 2p + 1): each image is zero-padded once, [c, h + 2p, w + 2p] plus 2p slack floats,
/// and tap (kh, kw) of the kernel then reads the padded planes shifted by kh (w + 2p) + kw as
/// a plain strided matrix [c, h (w + 2p)]. The output is computed on the padded width (2p
/// wasted columns per row) and compacted afterwards, so no im2col matrix is ever built.
#[derive(Clone, Copy)]
struct Same {
    /// padded row length w + 2p
    wp: usize,
    /// padded plane h+2p rows of wp
    plane: usize,
    /// pixels of the padded-width output, h wp
    pp: usize,
}

impl Same {
    fn of(s: &ConvShape) -> Option<Same> {
        (s.stride == 1 && s.k > 1 && 2 * s.pad + 1 == s.k).then(|| {
            let wp = s.w + 2 * s.pad;
            Same {
                wp,
                plane: (s.h + 2 * s.pad) * wp,
                pp: s.h * wp,
            }
        })
    }
    /// Length of the padded buffer of `c` channels (the slack keeps the last tap in bounds).
    fn padded_len(&self, s: &ConvShape, c: usize) -> usize {
        c * self.plane + 2 * s.pad
    }
}

/// xp[ci, r, c] = x[ci, r - p, c - p] inside the image, 0 on the border and in the slack.
fn pad_image(s: &ConvShape, g: &Same, c: usize, x: &[f32], xp: &mut [f32]) {
    let (h, w, p, wp) = (s.h, s.w, s.pad, g.wp);
    for ci in 0..c {
        let src = &x[ci * h * w..(ci + 1) * h * w];
        let dst = &mut xp[ci * g.plane..(ci + 1) * g.plane];
        dst[..p * wp].fill(0.0);
        dst[(h + p) * wp..].fill(0.0);
        for r in 0..h {
            let row = &mut dst[(r + p) * wp..(r + p + 1) * wp];
            row[..p].fill(0.0);
            row[p..p + w].copy_from_slice(&src[r * w..(r + 1) * w]);
            row[p + w..].fill(0.0);
        }
    }
    xp[c * g.plane..].fill(0.0);
}

/// Weights [cout, cin, k, k] laid out per kernel row: [k (kh), cout, k cin ((kw, ci))], the
/// left operand of `conv_same`'s GEMMs. With `flip_transpose`, w is a forward convolution's
/// [cin_run = cout, cout_run = cin, k, k] kernel and the result is that of its adjoint
/// (flipped and transposed: the input gradient as a forward convolution).
fn row_taps(w: &[f32], cout: usize, cin: usize, k: usize, flip_transpose: bool) -> Vec<f32> {
    let (kk, kc) = (k * k, k * cin);
    let mut out = vec![0f32; w.len()];
    for kh in 0..k {
        for co in 0..cout {
            for kw in 0..k {
                for ci in 0..cin {
                    out[(kh * cout + co) * kc + kw * cin + ci] = if flip_transpose {
                        w[(ci * cout + co) * kk + (k - 1 - kh) * k + (k - 1 - kw)]
                    } else {
                        w[(co * cin + ci) * kk + kh * k + kw]
                    };
                }
            }
        }
    }
    out
}

/// The k column shifts of `c` planes of one image, each padded by p rows above and below:
/// xs[(kw, ci), r, col] = x[ci, r - p, col + kw - p] (0 outside the image), [k c, h + 2p, w].
/// Row kh of a same-size kernel then reads xs shifted by kh rows, a plain strided matrix with
/// exactly the output's h w pixels (no wasted columns) and K = k c.
fn shift_cols(s: &ConvShape, c: usize, x: &[f32], xs: &mut [f32]) {
    let (h, w, p) = (s.h, s.w, s.pad);
    let plane = (h + 2 * p) * w;
    for kw in 0..s.k {
        // output columns [lo, hi) read input columns [lo + kw - p, hi + kw - p)
        let hi = (w + p).saturating_sub(kw).min(w);
        let lo = p.saturating_sub(kw).min(hi);
        for ci in 0..c {
            let src = &x[ci * h * w..(ci + 1) * h * w];
            let dst = &mut xs[(kw * c + ci) * plane..(kw * c + ci + 1) * plane];
            dst[..p * w].fill(0.0);
            dst[(h + p) * w..].fill(0.0);
            for r in 0..h {
                let row = &mut dst[(r + p) * w..(r + p + 1) * w];
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
                if lo < hi {
                    let from = lo + kw - p;
                    row[lo..hi].copy_from_slice(&src[r * w + from..r * w + from + hi - lo]);
                }
            }
        }
    }
}

/// y = conv(x) for a same-size stride-1 convolution (k odd, padding (k-1)/2) with weights
/// laid out by `row_taps`, without im2col: per image the k column shifts of the image
/// (`shift_cols`), then one GEMM per kernel row (K = k cin) on a row-shifted view of them,
/// accumulated straight into the NCHW output, which holds the bias (per channel or per
/// image and channel) beforehand; the residual is added after.
fn conv_same(s: &ConvShape, x: &[f32], wr: &[f32], ep: Epilogue) -> Vec<f32> {
    let (hw, in_len) = (s.h * s.w, s.cin * s.h * s.w);
    let out_len = s.cout * hw;
    let (kc, plane) = (s.k * s.cin, (s.h + 2 * s.pad) * s.w);
    assert_eq!(x.len(), s.n * in_len, "conv2d: input size");
    assert_eq!(wr.len(), s.k * s.cout * kc, "conv2d: weight size");
    ep.check(s, out_len);
    let inner = s.n < threads();
    new_chunks(s.n, out_len, inner, |i, yi| {
        let bias = ep.image_bias(s, i);
        if let Some(b) = bias {
            for (row, &bv) in yi.chunks_mut(hw).zip(b) {
                row.fill(bv);
            }
        }
        with_pad(kc * plane, |xs| {
            shift_cols(s, s.cin, &x[i * in_len..(i + 1) * in_len], xs);
            for kh in 0..s.k {
                mm(
                    (s.cout, hw, kc),
                    yi,
                    (hw, 1),
                    kh > 0 || bias.is_some(),
                    &wr[kh * s.cout * kc..(kh + 1) * s.cout * kc],
                    (kc, 1),
                    &xs[kh * s.w..],
                    (plane, 1),
                    parallelism(inner),
                );
            }
        });
        ep.add_residual(i, yi);
    })
}

/// The weight and bias gradients of `conv_same` for one image, added into gwr ([k (kh),
/// k cin ((kw, ci)), cout]: column-major GEMM outputs, see `mm`) and gb: per kernel row,
/// gwr[kh] += gy . shifted(xs)^T, K = the h w pixels, with gy transposed once to [hw, cout].
fn conv_same_wgrad(s: &ConvShape, xi: &[f32], gyi: &[f32], gwr: &mut [f32], gb: &mut [f32]) {
    let hw = s.h * s.w;
    let (kc, plane) = (s.k * s.cin, (s.h + 2 * s.pad) * s.w);
    for (gbv, row) in gb.iter_mut().zip(gyi.chunks(hw)) {
        *gbv += sum8(row);
    }
    with_pad(kc * plane, |xs| {
        shift_cols(s, s.cin, xi, xs);
        with_col(s.cout * hw, |gyt| {
            transpose(gyi, s.cout, hw, gyt);
            for kh in 0..s.k {
                mm(
                    (s.cout, kc, hw),
                    &mut gwr[kh * kc * s.cout..(kh + 1) * kc * s.cout],
                    (1, s.cout),
                    true,
                    gyt,
                    (1, s.cout),
                    &xs[kh * s.w..],
                    (1, plane),
                    gemm::Parallelism::None,
                );
            }
        })
    });
}

/// `y[n] = W [cout, cin k k] . im2col(x[n]) + b`, one GEMM per image, written straight into NCHW.
pub fn conv2d_forward(s: &ConvShape, x: &[f32], w: &[f32], ep: Epilogue) -> Vec<f32> {
    let (kk, pp) = (s.kk(), s.pixels());
    let (in_len, out_len) = (s.cin * s.h * s.w, s.cout * pp);
    assert_eq!(x.len(), s.n * in_len, "conv2d: input size");
    assert_eq!(w.len(), s.cout * kk, "conv2d: weight size");
    ep.check(s, out_len);
    if Same::of(s).is_some() {
        return conv_same(s, x, &row_taps(w, s.cout, s.cin, s.k, false), ep);
    }
    // images in parallel when there are enough of them, else threads inside each GEMM
    let inner = s.n < threads();
    let one = |i: usize, yi: &mut [f32]| {
        if let Some(b) = ep.image_bias(s, i) {
            for (row, &bv) in yi.chunks_mut(pp).zip(b) {
                row.fill(bv);
            }
        }
        let xi = &x[i * in_len..(i + 1) * in_len];
        let mut run = |col: &[f32]| {
            mm(
                (s.cout, pp, kk),
                yi,
                (pp, 1),
                ep.bias.is_some(),
                w,
                (kk, 1),
                col,
                (pp, 1),
                parallelism(inner),
            )
        };
        if s.pointwise() {
            run(xi)
        } else {
            with_col(kk * pp, |col| {
                im2col(s, xi, col);
                run(col)
            })
        }
    };
    new_chunks(s.n, out_len, inner, |i, yi| {
        one(i, yi);
        ep.add_residual(i, yi);
    })
}

/// For a 3x3 convolution (padding 1) of a nearest-2x upsampled image, output row 2i + a
/// reads low-resolution padded rows i + off with kernel rows `rows` folded onto each:
/// phase 0 reads padded row i (kernel row 0) and i + 1 (rows 1 and 2), phase 1 reads i + 1
/// (rows 0 and 1) and i + 2 (row 2). The same holds for columns.
const UP_TAPS: [[(usize, &[usize]); 2]; 2] = [[(0, &[0]), (1, &[1, 2])], [(1, &[0, 1]), (2, &[2])]];

/// The 16 folded 2x2 kernels of an upsampled 3x3 convolution, index ((a 2 + b) 2 + ta) 2 + tb
/// for output phase (a, b) and tap (ta, tb); each [cout, cin], or [cin, cout] when `transpose`.
fn up_weights(w: &[f32], cout: usize, cin: usize, transpose: bool) -> Vec<f32> {
    let mut out = vec![0f32; 16 * cout * cin];
    for (t, o) in out.chunks_mut(cout * cin).enumerate() {
        let (a, b, ta, tb) = (t >> 3, (t >> 2) & 1, (t >> 1) & 1, t & 1);
        for &kh in UP_TAPS[a][ta].1 {
            for &kw in UP_TAPS[b][tb].1 {
                for co in 0..cout {
                    for ci in 0..cin {
                        let v = w[(co * cin + ci) * 9 + kh * 3 + kw];
                        if transpose {
                            o[ci * cout + co] += v;
                        } else {
                            o[co * cin + ci] += v;
                        }
                    }
                }
            }
        }
    }
    out
}

/// The padded-plane offset of tap (ta, tb) of output phase (a, b).
fn up_offset(g: &Same, a: usize, b: usize, ta: usize, tb: usize) -> usize {
    UP_TAPS[a][ta].0 * g.wp + UP_TAPS[b][tb].0
}

/// Output phase (a, b) of one image's gradient gy [cout, 2h, 2w] of an upsampled
/// convolution, on the padded width of the low resolution (0 in the wasted columns):
/// out[co, i wp + j] = gy[co, 2i + a, 2j + b], or with `transposed` out[i wp + j, co], the
/// weight gradient's left operand (column-major, m = cout contiguous: gemm reads it without
/// re-packing it for each of its 16 GEMMs, see `mm`).
fn gather_phase(
    s: &ConvShape,
    g: &Same,
    gyi: &[f32],
    (a, b): (usize, usize),
    transposed: bool,
    out: &mut [f32],
) {
    let (h, w, c) = (s.h, s.w, s.cout);
    let plane = 4 * h * w;
    let at = |co: usize, p: usize| {
        if transposed {
            p * c + co
        } else {
            co * g.pp + p
        }
    };
    for i in 0..h {
        for co in 0..c {
            let row = &gyi[co * plane + (2 * i + a) * 2 * w..][..2 * w];
            for j in 0..w {
                out[at(co, i * g.wp + j)] = row[2 * j + b];
            }
            for j in w..g.wp {
                out[at(co, i * g.wp + j)] = 0.0;
            }
        }
    }
}

/// dst[c, r] = src[r, c] for a `rows` x `cols` row-major matrix, in 16 x 16 blocks.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 16;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// A 3x3 convolution (padding 1, stride 1) of x [n, cin, h, w] upsampled 2x by nearest
/// neighbour, without the upsampled image: each of the four output phases is a 2x2
/// convolution of the low-resolution image with folded weights (4 GEMMs on shifted views of
/// the padded image, as `conv_same`), 16/36 of the multiply-adds. `s` is the shape of the
/// same convolution at the low resolution; the output is [n, cout, 2h, 2w].
pub fn upconv_forward(s: &ConvShape, x: &[f32], w: &[f32], ep: Epilogue) -> Vec<f32> {
    let g = Same::of(s)
        .filter(|_| s.k == 3)
        .expect("upconv: a 3x3, padding-1 convolution");
    let in_len = s.cin * s.h * s.w;
    let out_len = s.cout * 4 * s.h * s.w;
    assert_eq!(x.len(), s.n * in_len, "upconv: input size");
    assert_eq!(w.len(), s.cout * s.cin * 9, "upconv: weight size");
    ep.check(s, out_len);
    let we = up_weights(w, s.cout, s.cin, false);
    let blk = s.cout * s.cin;
    let inner = s.n < threads();
    let one = |i: usize, yi: &mut [f32]| {
        let xi = &x[i * in_len..(i + 1) * in_len];
        with_pad(g.padded_len(s, s.cin), |xp| {
            pad_image(s, &g, s.cin, xi, xp);
            with_col(s.cout * g.pp, |acc| {
                for a in 0..2 {
                    for bb in 0..2 {
                        for t in 0..4 {
                            let (ta, tb) = (t >> 1, t & 1);
                            let tap = ((a * 2 + bb) * 2 + ta) * 2 + tb;
                            mm(
                                (s.cout, g.pp, s.cin),
                                acc,
                                (g.pp, 1),
                                t > 0,
                                &we[tap * blk..(tap + 1) * blk],
                                (s.cin, 1),
                                &xp[up_offset(&g, a, bb, ta, tb)..],
                                (g.plane, 1),
                                parallelism(inner),
                            );
                        }
                        for co in 0..s.cout {
                            let bv = ep.image_bias(s, i).map_or(0.0, |b| b[co]);
                            let out = &mut yi[co * 4 * s.h * s.w..(co + 1) * 4 * s.h * s.w];
                            for r in 0..s.h {
                                let src = &acc[co * g.pp + r * g.wp..][..s.w];
                                let dst = &mut out[(2 * r + a) * 2 * s.w..][..2 * s.w];
                                for (j, &v) in src.iter().enumerate() {
                                    dst[2 * j + bb] = v + bv;
                                }
                            }
                        }
                    }
                }
            })
        })
    };
    new_chunks(s.n, out_len, inner, |i, yi| {
        one(i, yi);
        ep.add_residual(i, yi);
    })
}

/// Gradients of `upconv_forward` for gy [n, cout, 2h, 2w]: (gx if asked for, gw, gb). The
/// folded kernels get their gradients as in `conv_same_wgrad` (one GEMM per phase and tap),
/// summed back onto the 3x3 taps they were folded from; gx adds W_tap^T . gy_phase into the
/// shifted views of a padded gradient image.
pub fn upconv_backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    gy: &[f32],
    need_x: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let g = Same::of(s)
        .filter(|_| s.k == 3)
        .expect("upconv: a 3x3, padding-1 convolution");
    let (hw, in_len) = (s.h * s.w, s.cin * s.h * s.w);
    let out_len = s.cout * 4 * hw;
    assert_eq!(gy.len(), s.n * out_len, "upconv backward: gradient size");
    let blk = s.cout * s.cin;
    let acc = sum_over(s.n, 16 * blk + s.cout, |i, acc| {
        let (gwe, gb) = acc.split_at_mut(16 * blk);
        let gyi = &gy[i * out_len..(i + 1) * out_len];
        for (gbv, row) in gb.iter_mut().zip(gyi.chunks(4 * hw)) {
            *gbv += sum8(row);
        }
        with_pad(g.padded_len(s, s.cin), |xp| {
            pad_image(s, &g, s.cin, &x[i * in_len..(i + 1) * in_len], xp);
            with_col(s.cout * g.pp, |gyt| {
                for a in 0..2 {
                    for bb in 0..2 {
                        gather_phase(s, &g, gyi, (a, bb), true, gyt);
                        for t in 0..4 {
                            let (ta, tb) = (t >> 1, t & 1);
                            let tap = ((a * 2 + bb) * 2 + ta) * 2 + tb;
                            mm(
                                (s.cout, s.cin, g.pp),
                                &mut gwe[tap * blk..(tap + 1) * blk],
                                (1, s.cout),
                                true,
                                gyt,
                                (1, s.cout),
                                &xp[up_offset(&g, a, bb, ta, tb)..],
                                (1, g.plane),
                                gemm::Parallelism::None,
                            );
                        }
                    }
                }
            })
        })
    });
    let mut gw = vec![0f32; s.cout * s.cin * 9];
    for tap in 0..16 {
        let (a, b, ta, tb) = (tap >> 3, (tap >> 2) & 1, (tap >> 1) & 1, tap & 1);
        let src = &acc[tap * blk..(tap + 1) * blk];
        for &kh in UP_TAPS[a][ta].1 {
            for &kw in UP_TAPS[b][tb].1 {
                // src is [cin, cout] (a column-major GEMM output, see `mm`)
                for (j, &v) in src.iter().enumerate() {
                    let (ci, co) = (j / s.cout, j % s.cout);
                    gw[(co * s.cin + ci) * 9 + kh * 3 + kw] += v;
                }
            }
        }
    }
    let gb = acc[16 * blk..].to_vec();
    let gx = need_x.then(|| {
        let wt = up_weights(w, s.cout, s.cin, true);
        let inner = s.n < threads();
        let one = |i: usize, gxi: &mut [f32]| {
            let gyi = &gy[i * out_len..(i + 1) * out_len];
            with_pad(g.padded_len(s, s.cin), |gxp| {
                gxp.fill(0.0);
                with_col(s.cout * g.pp, |gyp| {
                    for a in 0..2 {
                        for bb in 0..2 {
                            gather_phase(s, &g, gyi, (a, bb), false, gyp);
                            for t in 0..4 {
                                let (ta, tb) = (t >> 1, t & 1);
                                let tap = ((a * 2 + bb) * 2 + ta) * 2 + tb;
                                mm(
                                    (s.cin, g.pp, s.cout),
                                    &mut gxp[up_offset(&g, a, bb, ta, tb)..],
                                    (g.plane, 1),
                                    true,
                                    &wt[tap * blk..(tap + 1) * blk],
                                    (s.cout, 1),
                                    gyp,
                                    (g.pp, 1),
                                    parallelism(inner),
                                );
                            }
                        }
                    }
                });
                for ci in 0..s.cin {
                    for r in 0..s.h {
                        let src = &gxp[ci * g.plane + (r + 1) * g.wp + 1..][..s.w];
                        gxi[(ci * s.h + r) * s.w..][..s.w].copy_from_slice(src);
                    }
                }
            })
        };
        new_chunks(s.n, in_len, inner, one)
    });
    (gx, gw, gb)
}

/// Gradients of `conv2d_forward` for the output gradient gy: (gx if asked for, gw, gb).
/// `gw = sum_n gy[n] . im2col(x[n])^T` (a real GEMM, one accumulator per thread), gb = sum gy;
/// gx is a forward convolution of gy with the flipped, transposed weights where the stride is 1
/// and the padding keeps the size, else `W^T . gy[n]` folded back by col2im.
pub fn conv2d_backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    gy: &[f32],
    need_x: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (kk, pp) = (s.kk(), s.pixels());
    let (in_len, out_len) = (s.cin * s.h * s.w, s.cout * pp);
    assert_eq!(gy.len(), s.n * out_len, "conv2d backward: gradient size");
    let wlen = s.cout * kk;
    if Same::of(s).is_some() {
        // [gw by kernel row, transposed | gb] accumulated per thread
        let acc = sum_over(s.n, wlen + s.cout, |i, acc| {
            let (gwr, gb) = acc.split_at_mut(wlen);
            let xi = &x[i * in_len..(i + 1) * in_len];
            conv_same_wgrad(s, xi, &gy[i * out_len..(i + 1) * out_len], gwr, gb);
        });
        let k = s.k;
        let mut gw = vec![0f32; wlen];
        for kh in 0..k {
            for kw in 0..k {
                for ci in 0..s.cin {
                    let src = &acc[((kh * k + kw) * s.cin + ci) * s.cout..][..s.cout];
                    for (co, &v) in src.iter().enumerate() {
                        gw[((co * s.cin + ci) * k + kh) * k + kw] = v;
                    }
                }
            }
        }
        let gx = need_x.then(|| input_grad(s, w, gy));
        return (gx, gw, acc[wlen..].to_vec());
    }
    // [gw^T | gb] accumulated per thread
    let acc = sum_over(s.n, wlen + s.cout, |i, acc| {
        let gyi = &gy[i * out_len..(i + 1) * out_len];
        let (gw, gb) = acc.split_at_mut(wlen);
        for (g, row) in gb.iter_mut().zip(gyi.chunks(pp)) {
            *g += sum8(row);
        }
        let xi = &x[i * in_len..(i + 1) * in_len];
        // gy transposed once ([pp, cout], see `mm`): a column-major left operand
        with_pad(s.cout * pp, |gyt| {
            transpose(gyi, s.cout, pp, gyt);
            let mut run = |col: &[f32]| {
                mm(
                    (s.cout, kk, pp),
                    gw,
                    (1, s.cout),
                    true,
                    gyt,
                    (1, s.cout),
                    col,
                    (1, pp),
                    gemm::Parallelism::None,
                )
            };
            if s.pointwise() {
                run(xi)
            } else {
                with_col(kk * pp, |col| {
                    im2col(s, xi, col);
                    run(col)
                })
            }
        })
    });
    // the GEMMs wrote gw transposed ([kk, cout], see `mm`)
    let mut gw = vec![0f32; wlen];
    transpose(&acc[..wlen], kk, s.cout, &mut gw);
    let gb = acc[wlen..].to_vec();
    let gx = need_x.then(|| input_grad(s, w, gy));
    (gx, gw, gb)
}

fn input_grad(s: &ConvShape, w: &[f32], gy: &[f32]) -> Vec<f32> {
    let (k, kk, pp) = (s.k, s.kk(), s.pixels());
    if Same::of(s).is_some() {
        // a forward convolution of gy with the flipped, transposed kernel
        let t = ConvShape::new(s.n, s.cout, s.ho, s.wo, s.cin, k, 1, s.pad)
            .expect("a same-size convolution has a transposed one");
        return conv_same(&t, gy, &row_taps(w, s.cin, s.cout, k, true), Epilogue::NONE);
    }
    let (in_len, out_len) = (s.cin * s.h * s.w, s.cout * pp);
    if s.pointwise() {
        // gx[n] [cin, pp] = W^T [cin, cout] . gy[n] [cout, pp]
        let inner = s.n < threads();
        return new_chunks(s.n, in_len, inner, |i, gxi| {
            mm(
                (s.cin, pp, s.cout),
                gxi,
                (pp, 1),
                false,
                w,
                (1, s.cin),
                &gy[i * out_len..(i + 1) * out_len],
                (pp, 1),
                parallelism(inner),
            )
        });
    }
    new_chunks(s.n, in_len, false, |i, gxi| {
        let gyi = &gy[i * out_len..(i + 1) * out_len];
        with_col(kk * pp, |gcol| {
            // gcol [kk, pp] = W^T [kk, cout] . gy[n] [cout, pp]
            mm(
                (kk, pp, s.cout),
                gcol,
                (pp, 1),
                false,
                w,
                (1, kk),
                gyi,
                (pp, 1),
                gemm::Parallelism::None,
            );
            col2im_add(s, gcol, gxi);
        });
    })
}

/// The sums of the `rows` equal rows of v (the bias gradient per image and channel).
pub fn row_sums(v: &[f32], rows: usize) -> Vec<f32> {
    let len = v.len() / rows.max(1);
    if len == 0 {
        return vec![0f32; rows];
    }
    v.chunks(len).map(sum8).collect()
}

/// A sum in 8 independent lanes (vectorises; the order differs from a sequential sum).
#[inline(always)]
fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for j in 0..8 {
            acc[j] += c[j];
        }
    }
    let tail: f32 = it.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

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

/// Elementwise work of at least this many values is split across the threads.
const PAR_ELEMENTS: usize = 1 << 15;

/// A new vector of `len` floats, written by `f(start, chunk)` over chunks of it (in parallel
/// for long vectors, off wasm).
fn elementwise(len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
    let mut out = vec![0f32; len];
    #[cfg(not(target_arch = "wasm32"))]
    if len >= 2 * PAR_ELEMENTS && threads() > 1 {
        use rayon::prelude::*;
        out.par_chunks_mut(PAR_ELEMENTS)
            .enumerate()
            .for_each(|(i, c)| f(i * PAR_ELEMENTS, c));
        return out;
    }
    f(0, &mut out);
    out
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
    fn stats(x: &[f32]) -> (f32, f32) {
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
        (mean, 1.0 / (var + GN_EPS).sqrt())
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

/// The epsilon of every GroupNorm here (as the composed reference).
pub const GN_EPS: f32 = 1e-5;

/// GroupNorm over [n, c, hw] with `groups` groups (c divisible by it), per-channel affine
/// gamma, beta, then SiLU when `act`: one statistics pass and one fused pass per group.
pub fn group_norm(
    x: &[f32],
    (n, c, hw): (usize, usize, usize),
    groups: usize,
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
        let (mean, rstd) = stats(xb);
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
pub fn group_norm_backward(
    x: &[f32],
    (n, c, hw): (usize, usize, usize),
    groups: usize,
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
        let (mean, rstd) = stats(xb);
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

#[cfg(test)]
mod tests {
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
                                    if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * s.cin + ci) * s.h + ih as usize) * s.w
                                        + iw as usize];
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
                                    if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize
                                    {
                                        continue;
                                    }
                                    let xi =
                                        ((n * s.cin + ci) * s.h + ih as usize) * s.w + iw as usize;
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
    fn assert_bias_grad(
        gb: &[f32],
        gy: &[f32],
        (n, cout, plane): (usize, usize, usize),
        what: &str,
    ) {
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
        ]
        .iter()
        .enumerate()
        {
            let s = ConvShape::new(n, cin, h, w, cout, k, st, p).unwrap();
            let x = vals(n * cin * h * w, 10 + i as u64);
            let wt = vals(cout * cin * k * k, 20 + i as u64);
            let b = vals(cout, 30 + i as u64);
            let y = conv2d_forward(&s, &x, &wt, Epilogue::with_bias(&b));
            assert_close(&y, &direct(&s, &x, &wt, &b), 1e-4, &format!("{s:?}"));
            let gy = vals(y.len(), 40 + i as u64);
            let (gx, gw, gb) = conv2d_backward(&s, &x, &wt, &gy, true);
            let gx = gx.unwrap();
            // element by element against the direct sums of the chain rule
            let (ex, ew) = direct_back(&s, &x, &wt, &gy);
            assert_close(&gx, &ex, 1e-4, &format!("{s:?} gx"));
            assert_close(&gw, &ew, 1e-4, &format!("{s:?} gw"));
            // adjoint identities: <gy, conv(x)> linear in x and in w
            let zero_b = vec![0f32; cout];
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
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
}
