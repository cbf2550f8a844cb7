//! 2-D convolution forward and backward: one GEMM per image on its im2col matrix, or for a
//! stride-1 convolution that keeps the size, one GEMM per kernel row on shifted views of the
//! image (no im2col); the bias and a residual are added in the pass that writes the output.

use super::gemm::{add_row_sums, mm, parallelism, transpose};
use super::threads::{new_chunks, sum_over, threads, with_col, with_pad};

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
    pub(super) fn kk(&self) -> usize {
        self.cin * self.k * self.k
    }
    pub(super) fn pixels(&self) -> usize {
        self.ho * self.wo
    }
    /// A 1x1 convolution without stride or padding: the image itself is the im2col matrix.
    pub(super) fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
}

/// The output columns `ow` whose input column `ow * s + kw - p` lies inside [0, w).
pub(super) fn valid_cols(s: &ConvShape, kw: usize) -> (usize, usize) {
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
pub(super) fn im2col_rows(s: &ConvShape, x: &[f32], col: &mut [f32]) {
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
pub(super) fn im2col_same(s: &ConvShape, x: &[f32], col: &mut [f32]) {
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
    pub(super) fn image_bias(&self, s: &ConvShape, i: usize) -> Option<&'a [f32]> {
        self.bias.map(|b| {
            if b.len() == s.cout {
                b
            } else {
                &b[i * s.cout..(i + 1) * s.cout]
            }
        })
    }
    pub(super) fn add_residual(&self, i: usize, yi: &mut [f32]) {
        if let Some(r) = self.residual {
            let ri = &r[i * yi.len()..(i + 1) * yi.len()];
            for (y, v) in yi.iter_mut().zip(ri) {
                *y += v;
            }
        }
    }
    /// Panics unless the bias is [cout] or [n, cout] and the residual [n, cout, ho, wo].
    pub(super) fn check(&self, s: &ConvShape, out_len: usize) {
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
pub(super) struct Same {
    /// padded row length w + 2p
    pub(super) wp: usize,
    /// padded plane h+2p rows of wp
    pub(super) plane: usize,
    /// pixels of the padded-width output, h wp
    pub(super) pp: usize,
}

impl Same {
    pub(super) fn of(s: &ConvShape) -> Option<Same> {
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
    pub(super) fn padded_len(&self, s: &ConvShape, c: usize) -> usize {
        c * self.plane + 2 * s.pad
    }
}

/// xp[ci, r, c] = x[ci, r - p, c - p] inside the image, 0 on the border and in the slack.
pub(super) fn pad_image(s: &ConvShape, g: &Same, c: usize, x: &[f32], xp: &mut [f32]) {
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
    // (co, ci) outer: each reads one kernel's k k contiguous taps and writes one float to each
    // of k k rows that advance with ci (every cache line used whole, both ways; with kh outer
    // the taps were read one float per line, k k times over)
    for co in 0..cout {
        for ci in 0..cin {
            let taps = if flip_transpose {
                &w[(ci * cout + co) * kk..][..kk]
            } else {
                &w[(co * cin + ci) * kk..][..kk]
            };
            for kh in 0..k {
                let row = (kh * cout + co) * kc + ci;
                for kw in 0..k {
                    out[row + kw * cin] = if flip_transpose {
                        taps[(k - 1 - kh) * k + (k - 1 - kw)]
                    } else {
                        taps[kh * k + kw]
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
    let plane = (s.h + 2 * s.pad) * s.w;
    shift_cols_at(s, c, x, xs, plane, 0);
}

/// `shift_cols` into rows of length `stride` of xs, each image's plane at column `at` (the
/// planes of several images side by side).
fn shift_cols_at(s: &ConvShape, c: usize, x: &[f32], xs: &mut [f32], stride: usize, at: usize) {
    let (h, w, p) = (s.h, s.w, s.pad);
    let plane = (h + 2 * p) * w;
    for kw in 0..s.k {
        // output columns [lo, hi) read input columns [lo + kw - p, hi + kw - p)
        let hi = (w + p).saturating_sub(kw).min(w);
        let lo = p.saturating_sub(kw).min(hi);
        for ci in 0..c {
            let src = &x[ci * h * w..(ci + 1) * h * w];
            let row0 = (kw * c + ci) * stride + at;
            let dst = &mut xs[row0..row0 + plane];
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

/// Columns of the largest GEMM K the grouped weight gradient builds (its scratch is k cin
/// times this).
const WGRAD_COLS: usize = 2048;

/// Images of at least this many pixels get a weight-gradient GEMM each.
const WGRAD_OWN: usize = 256;

/// How many images one weight-gradient GEMM of `conv_same_wgrad` takes: one where an image
/// has enough pixels, else as many as fit WGRAD_COLS (a K of 16 pixels at 4x4 left the GEMM
/// reading and writing the whole gradient for every 16 multiply-adds; grouped, the backward
/// of a 256-channel 3x3 convolution at batch 8 took 30% less CPU time at 4x4, 28% at 8x8),
/// but no more than keeps every thread busy.
fn wgrad_group(s: &ConvShape) -> usize {
    if s.h * s.w >= WGRAD_OWN {
        return 1;
    }
    let plane = (s.h + 2 * s.pad) * s.w;
    (WGRAD_COLS / plane).clamp(1, s.n.div_ceil(threads()).max(1))
}

/// The weight and bias gradients of `conv_same` for images i0..i1, added into gwr ([k (kh),
/// k cin ((kw, ci)), cout]: column-major GEMM outputs, see `mm`) and gb: per kernel row,
/// gwr[kh] += gy . shifted(xs)^T with K = the images' pixels: their column shifts side by
/// side ([k cin, images x (h + 2p) w]) and gy transposed to [pixels, cout] with zero rows at
/// the 2p w padding columns between two images, so one row-shifted view serves them all.
fn conv_same_wgrad(
    s: &ConvShape,
    x: &[f32],
    gy: &[f32],
    (i0, i1): (usize, usize),
    gwr: &mut [f32],
    gb: &mut [f32],
) {
    let (hw, in_len) = (s.h * s.w, s.cin * s.h * s.w);
    let out_len = s.cout * hw;
    let (kc, plane) = (s.k * s.cin, (s.h + 2 * s.pad) * s.w);
    let g = i1 - i0;
    if g == 0 {
        return;
    }
    let cols = g * plane;
    // the last image's pixels end the view: K = (g - 1) plane + h w
    let kdim = (g - 1) * plane + hw;
    for i in i0..i1 {
        add_row_sums(gb, &gy[i * out_len..(i + 1) * out_len]);
    }
    with_pad(kc * cols, |xs| {
        for (j, i) in (i0..i1).enumerate() {
            shift_cols_at(
                s,
                s.cin,
                &x[i * in_len..(i + 1) * in_len],
                xs,
                cols,
                j * plane,
            );
        }
        with_col(kdim * s.cout, |gyt| {
            for (j, i) in (i0..i1).enumerate() {
                let at = j * plane * s.cout;
                transpose(
                    &gy[i * out_len..(i + 1) * out_len],
                    s.cout,
                    hw,
                    &mut gyt[at..],
                );
                let gap_end = ((j + 1) * plane * s.cout).min(gyt.len());
                gyt[at + hw * s.cout..gap_end].fill(0.0);
            }
            for kh in 0..s.k {
                mm(
                    (s.cout, kc, kdim),
                    &mut gwr[kh * kc * s.cout..(kh + 1) * kc * s.cout],
                    (1, s.cout),
                    true,
                    gyt,
                    (1, s.cout),
                    &xs[kh * s.w..],
                    (1, cols),
                    gemm::Parallelism::None,
                );
            }
        })
    });
}

/// `y[n] = W [cout, cin k k] . im2col(x[n]) + b`, one GEMM per image, written straight into NCHW
/// (the direct form; `winograd::conv2d_forward` picks between it and Winograd).
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

/// Gradients of `conv2d_forward` for the output gradient gy: (gx if asked for, gw, gb).
/// `gw = sum_n gy[n] . im2col(x[n])^T` (a real GEMM, one accumulator per thread), gb = sum gy;
/// gx is a forward convolution of gy with the flipped, transposed weights where the stride is 1
/// and the padding keeps the size, else `W^T . gy[n]` folded back by col2im (the direct form;
/// `winograd::conv2d_backward` picks between it and Winograd).
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
        let g = wgrad_group(s);
        let acc = sum_over(s.n.div_ceil(g), wlen + s.cout, |j, acc| {
            let (gwr, gb) = acc.split_at_mut(wlen);
            conv_same_wgrad(s, x, gy, (j * g, ((j + 1) * g).min(s.n)), gwr, gb);
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
        add_row_sums(gb, gyi);
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
