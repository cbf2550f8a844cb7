//! 3x3 same-size convolutions (stride 1, padding 1) by Winograd's minimal filtering F(2x2, 3x3)
//! (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks", eq. 7-8; the maths
//! is written out in docs/perf.md). Each 2x2 block of output pixels is
//!
//! ```text
//! Y = A^T [ (G g G^T) * (B^T d B) ] A
//! ```
//!
//! with d the 4x4 input patch around it, g the 3x3 kernel and `*` the elementwise product:
//! 16 multiplies per block and input channel instead of the direct form's 36 (2.25x fewer).
//! Summed over the input channels, each of the 16 products is one GEMM,
//! `M[xi] [cout, tiles] = U[xi] [cout, cin] . V[xi] [cin, tiles]`, so the work stays in the
//! same GEMM as the direct form's, on a quarter of its multiply-adds plus the transforms:
//!
//! ```text
//! B^T = [1  0 -1  0]    G = [1    0    0  ]    A^T = [1  1  1  0]
//!       [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
//!       [0 -1  1  0]        [1/2 -1/2  1/2]
//!       [0  1  0 -1]        [0    0    1  ]
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use super::conv::{self, ConvShape, Epilogue};
use super::gemm::{add_row_sums, mm, parallelism};
use super::threads::{sum_over, threads, with_col, with_pad};

/// y = conv(x) + the epilogue for weights [cout, cin, k, k]: Winograd where it `applies`, else
/// the direct form (`conv::conv2d_forward`).
pub fn conv2d_forward(s: &ConvShape, x: &[f32], w: &[f32], ep: Epilogue) -> Vec<f32> {
    if !applies(s) {
        return conv::conv2d_forward(s, x, w, ep);
    }
    assert_eq!(w.len(), s.cout * s.cin * 9, "conv2d: weight size");
    let u = kernel_transform(w, s.cout, s.cin);
    conv3x3(s, x, Kernel::Forward(&u), ep)
}

/// Gradients of `conv2d_forward` for the output gradient gy: (gx if asked for, gw, gb), by
/// Winograd where it `applies` (the input gradient is the adjoint convolution of gy, whose
/// shape applies exactly when this one does), else by the direct form.
pub fn conv2d_backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    gy: &[f32],
    need_x: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    if !applies(s) {
        return conv::conv2d_backward(s, x, w, gy, need_x);
    }
    assert_eq!(w.len(), s.cout * s.cin * 9, "conv2d: weight size");
    let (gw, gb) = weight_grad(s, x, gy);
    let gx = need_x.then(|| {
        // gx = the forward convolution of gy [n, cout, h, w] with the kernel flipped and
        // transposed: the forward's transformed kernel, read as its adjoint's
        let t = ConvShape::new(s.n, s.cout, s.h, s.w, s.cin, 3, 1, 1)
            .expect("a same-size convolution has a transposed one");
        let u = kernel_transform(w, s.cout, s.cin);
        conv3x3(&t, gy, Kernel::Adjoint(&u), Epilogue::NONE)
    });
    (gx, gw, gb)
}

/// Whether a convolution takes the Winograd path: 3x3, stride 1, padding 1, and where it was
/// measured faster than the direct form here (docs/perf.md, batch 8 and 64 on the 2-core
/// AVX-512 machine): with at least 256 channels in and out at every size, with 64 to 255 on
/// images of at least 1,024 pixels (at 16x16 and below, or under 64 channels, the transforms
/// cost about what the multiply-adds save), and from 128 output pixels over the batch.
pub(super) fn applies(s: &ConvShape) -> bool {
    if !ON.load(Ordering::Relaxed) {
        return false;
    }
    let ch = s.cin.min(s.cout);
    let enough = match ch {
        256.. => true,
        64..=255 => s.h * s.w >= 1024,
        _ => false,
    };
    s.k == 3 && s.stride == 1 && s.pad == 1 && enough && s.n * s.h * s.w >= MIN_PIXELS
}

static ON: AtomicBool = AtomicBool::new(true);

/// Turns the Winograd path on (the default) or off for the whole process; off, every
/// convolution takes the direct form (examples/conv_speed.rs compares the two).
pub fn set_winograd(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Fewer output pixels than this over the batch make the GEMMs' rows too short.
const MIN_PIXELS: usize = 128;

/// The 16 transformed kernels U[xi] = G g G^T, laid out [16 (xi), cout, cin], from weights
/// [cout, cin, 3, 3]. Each U[xi] is a fixed combination of the 9 taps, T[xi, (kh, kw)] =
/// G[r, kh] G[q, kw] for xi = 4 r + q (products of 1 and 1/2, exact in f32), so all of them
/// are one GEMM: U [16, kernels] = T [16, 9] . taps [9, kernels].
pub(super) fn kernel_transform(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    assert_eq!(w.len(), cout * cin * 9, "winograd: weight size");
    let t = tap_matrix();
    let plane = cout * cin;
    let mut u = vec![0f32; 16 * plane];
    mm(
        (16, plane, 9),
        &mut u,
        (plane, 1),
        false,
        &t,
        (9, 1),
        w,
        (1, 9),
        parallelism(true),
    );
    u
}

/// T [16, 9]: U[4 r + q] = sum over (kh, kw) of G[r, kh] G[q, kw] g[kh, kw].
fn tap_matrix() -> [f32; 16 * 9] {
    const GM: [[f32; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut t = [0f32; 16 * 9];
    for (r, gr) in GM.iter().enumerate() {
        for (q, gq) in GM.iter().enumerate() {
            for (kh, a) in gr.iter().enumerate() {
                for (kw, b) in gq.iter().enumerate() {
                    t[(r * 4 + q) * 9 + kh * 3 + kw] = a * b;
                }
            }
        }
    }
    t
}

/// The weight and bias gradients of a Winograd convolution for the output gradient gy:
/// since y = A^T (U * V) A per block, the gradient of U[xi] is the sum over blocks of
/// Z[xi] V[xi], with Z = A gy A^T (each 2x2 block of gy spread to 4x4), and that of the
/// kernel g is G^T gU G. Per group of images: V and Z of every block, 16 GEMMs with the blocks
/// as K (one accumulator per thread), then one small GEMM back to the taps: gw [kernels, 9] =
/// (T^T [9, 16] . gU [16, kernels])^T.
pub(super) fn weight_grad(s: &ConvShape, x: &[f32], gy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (hw, in_len) = (s.h * s.w, s.cin * s.h * s.w);
    let out_len = s.cout * hw;
    assert_eq!(x.len(), s.n * in_len, "conv2d backward: input size");
    assert_eq!(gy.len(), s.n * out_len, "conv2d backward: gradient size");
    let plane = s.cout * s.cin;
    let g = group(s);
    let (th, tw) = tiles(s);
    let t = th * tw;
    let acc = sum_over(s.n.div_ceil(g), 16 * plane + s.cout, |j, acc| {
        let (i0, i1) = (j * g, ((j + 1) * g).min(s.n));
        let cols = (i1 - i0) * t;
        let (gu, gb) = acc.split_at_mut(16 * plane);
        for i in i0..i1 {
            add_row_sums(gb, &gy[i * out_len..(i + 1) * out_len]);
        }
        with_pad(16 * s.cin * cols, |v| {
            for i in i0..i1 {
                input_transform(s, &x[i * in_len..(i + 1) * in_len], v, cols, (i - i0) * t);
            }
            with_col(16 * s.cout * cols, |z| {
                for i in i0..i1 {
                    grad_transform(
                        s,
                        &gy[i * out_len..(i + 1) * out_len],
                        z,
                        cols,
                        (i - i0) * t,
                    );
                }
                for xi in 0..16 {
                    // gU[xi] [cout, cin] += Z[xi] [cout, blocks] . V[xi]^T [blocks, cin]
                    mm(
                        (s.cout, s.cin, cols),
                        &mut gu[xi * plane..(xi + 1) * plane],
                        (s.cin, 1),
                        true,
                        &z[xi * s.cout * cols..(xi + 1) * s.cout * cols],
                        (cols, 1),
                        &v[xi * s.cin * cols..(xi + 1) * s.cin * cols],
                        (1, cols),
                        gemm::Parallelism::None,
                    );
                }
            })
        });
    });
    let tm = tap_matrix();
    let mut gw = vec![0f32; 9 * plane];
    // gw [kernels, 9] as the column-major [9, kernels] = T^T [9, 16] . gU [16, kernels]
    mm(
        (9, plane, 16),
        &mut gw,
        (1, 9),
        false,
        &tm,
        (1, 9),
        &acc[..16 * plane],
        (plane, 1),
        parallelism(true),
    );
    (gw, acc[16 * plane..].to_vec())
}

/// Z[xi, co, at + block] = (A gy A^T)[xi] for every 2x2 block of one image's output gradient
/// gy [cout, h, w] (0 past an odd edge): with the block [[a, b], [c, d]], A gy has the rows
/// (a, b), (a + c, b + d), (a - c, b - d), (-c, -d), and each row (p, q) becomes
/// (p, p + q, p - q, -q).
fn grad_transform(s: &ConvShape, gy: &[f32], z: &mut [f32], cols: usize, at: usize) {
    let (h, w) = (s.h, s.w);
    let (th, tw) = tiles(s);
    let xi_stride = s.cout * cols;
    // one block row's gy: the top and bottom rows, each as even and odd columns
    let mut e = [vec![0f32; tw], vec![0f32; tw]];
    let mut o = [vec![0f32; tw], vec![0f32; tw]];
    for co in 0..s.cout {
        let gc = &gy[co * h * w..(co + 1) * h * w];
        for bi in 0..th {
            for dr in 0..2 {
                let r = 2 * bi + dr;
                let (ev, ov) = (&mut e[dr], &mut o[dr]);
                ev.fill(0.0);
                ov.fill(0.0);
                if r >= h {
                    continue;
                }
                split_columns(&gc[r * w..(r + 1) * w], ev, ov);
            }
            let base = co * cols + at + bi * tw;
            // rows of A gy: (a, b) (a + c, b + d) (a - c, b - d) (-c, -d), a/b the top row's
            // even/odd columns, c/d the bottom row's
            for r in 0..4 {
                for bj in 0..tw {
                    let (a, b, c, d) = (e[0][bj], o[0][bj], e[1][bj], o[1][bj]);
                    let (p, q) = match r {
                        0 => (a, b),
                        1 => (a + c, b + d),
                        2 => (a - c, b - d),
                        _ => (-c, -d),
                    };
                    z[(4 * r) * xi_stride + base + bj] = p;
                    z[(4 * r + 1) * xi_stride + base + bj] = p + q;
                    z[(4 * r + 2) * xi_stride + base + bj] = p - q;
                    z[(4 * r + 3) * xi_stride + base + bj] = -q;
                }
            }
        }
    }
}

/// The transformed kernel a `conv3x3` multiplies by: U itself, or its adjoint's (the input
/// gradient as a forward convolution with the kernel flipped and transposed) read from the
/// same U. G applied to the reversed taps (g2, g1, g0) gives G g's rows in the order 3, 1, 2,
/// 0, so the flipped kernel's U[4 r + q] is U[4 p(r) + p(q)] with p = (3, 1, 2, 0), and
/// the transpose is the GEMM reading it with its strides swapped: no second transform.
#[derive(Clone, Copy)]
pub(super) enum Kernel<'a> {
    Forward(&'a [f32]),
    Adjoint(&'a [f32]),
}

/// Row r of G g for the reversed taps is row P[r] of G g.
const P: [usize; 4] = [3, 1, 2, 0];

/// Output blocks of 2x2 down and across.
fn tiles(s: &ConvShape) -> (usize, usize) {
    (s.h.div_ceil(2), s.w.div_ceil(2))
}

/// How many images one set of 16 GEMMs takes: enough blocks for a GEMM of about 256 columns,
/// but no more than keeps every thread busy.
fn group(s: &ConvShape) -> usize {
    let (th, tw) = tiles(s);
    256usize
        .div_ceil(th * tw)
        .clamp(1, s.n.div_ceil(threads()).max(1))
}

/// y = conv(x) + bias (+ residual) for a 3x3 stride-1 padding-1 convolution with the
/// transformed kernel `u` (`kernel_transform`): per group of images the input transform
/// V = B^T d B of every block, 16 GEMMs, then the output transform A^T M A written into NCHW.
pub(super) fn conv3x3(s: &ConvShape, x: &[f32], u: Kernel, ep: Epilogue) -> Vec<f32> {
    let (hw, in_len) = (s.h * s.w, s.cin * s.h * s.w);
    let out_len = s.cout * hw;
    assert_eq!(x.len(), s.n * in_len, "conv2d: input size");
    let (Kernel::Forward(uv) | Kernel::Adjoint(uv)) = u;
    assert_eq!(uv.len(), 16 * s.cout * s.cin, "winograd: kernel size");
    ep.check(s, out_len);
    let g = group(s);
    let groups = s.n.div_ceil(g);
    // one group at a time with the threads inside its GEMMs when there are fewer groups than
    // threads, else groups in parallel
    let inner = groups < threads();
    let mut y = vec![0f32; s.n * out_len];
    let one = |j: usize, yg: &mut [f32]| {
        let i0 = j * g;
        let imgs = yg.len() / out_len;
        group_conv(
            s,
            &x[i0 * in_len..(i0 + imgs) * in_len],
            u,
            ep,
            i0,
            imgs,
            yg,
            inner,
        );
    };
    #[cfg(not(target_arch = "wasm32"))]
    if !inner {
        use rayon::prelude::*;
        y.par_chunks_mut(g * out_len)
            .enumerate()
            .for_each(|(j, yg)| one(j, yg));
        return y;
    }
    y.chunks_mut(g * out_len)
        .enumerate()
        .for_each(|(j, yg)| one(j, yg));
    y
}

/// `conv3x3` for images i0..i0 + imgs (x and y are theirs).
#[allow(clippy::too_many_arguments)]
fn group_conv(
    s: &ConvShape,
    x: &[f32],
    u: Kernel,
    ep: Epilogue,
    i0: usize,
    imgs: usize,
    y: &mut [f32],
    inner: bool,
) {
    let (th, tw) = tiles(s);
    let t = th * tw;
    let cols = imgs * t;
    let (vlen, mlen) = (16 * s.cin * cols, 16 * s.cout * cols);
    let (hw, in_len) = (s.h * s.w, s.cin * s.h * s.w);
    with_pad(vlen, |v| {
        for j in 0..imgs {
            input_transform(s, &x[j * in_len..(j + 1) * in_len], v, cols, j * t);
        }
        with_col(mlen, |m| {
            let plane = s.cout * s.cin;
            for xi in 0..16 {
                // U[xi] as [cout, cin]; the adjoint's is U[p xi] of the forward convolution
                // ([cin, cout] there), read transposed
                let (lhs, strides) = match u {
                    Kernel::Forward(u) => (&u[xi * plane..(xi + 1) * plane], (s.cin, 1)),
                    Kernel::Adjoint(u) => {
                        let pxi = 4 * P[xi / 4] + P[xi % 4];
                        (&u[pxi * plane..(pxi + 1) * plane], (1, s.cout))
                    }
                };
                mm(
                    (s.cout, cols, s.cin),
                    &mut m[xi * s.cout * cols..(xi + 1) * s.cout * cols],
                    (cols, 1),
                    false,
                    lhs,
                    strides,
                    &v[xi * s.cin * cols..(xi + 1) * s.cin * cols],
                    (cols, 1),
                    parallelism(inner),
                );
            }
            for j in 0..imgs {
                let yj = &mut y[j * s.cout * hw..(j + 1) * s.cout * hw];
                output_transform(s, m, cols, j * t, ep.image_bias(s, i0 + j), yj);
                ep.add_residual(i0 + j, yj);
            }
        })
    });
}

/// A row's even columns (0, 2, ...) into `even` and its odd ones into `odd`, from their
/// starts (an odd-length row's last column goes to even[len / 2]).
fn split_columns(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let pairs = row.chunks_exact(2);
    if let [last] = pairs.remainder() {
        even[row.len() / 2] = *last;
    }
    for ((pair, e), o) in pairs.zip(even.iter_mut()).zip(odd.iter_mut()) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// V[xi, ci, at + block] = (B^T d B)[xi] for every block of one image x [cin, h, w], V's
/// rows `cols` long. Per channel the zero-padded plane is kept as its even and its odd
/// columns, so that both passes (down the rows, then across) are contiguous loops.
fn input_transform(s: &ConvShape, x: &[f32], v: &mut [f32], cols: usize, at: usize) {
    let (h, w) = (s.h, s.w);
    let (th, tw) = tiles(s);
    // padded plane: rows -1 ..= 2 th, columns -1 ..= 2 tw; as even/odd columns: tw + 1 each
    let (rows, half) = (2 * th + 2, tw + 1);
    let xi_stride = s.cin * cols;
    let mut ev = vec![0f32; rows * half];
    let mut od = vec![0f32; rows * half];
    // the 4 rows of B^T d over the padded width, as even and odd columns
    let mut te = vec![0f32; 4 * half];
    let mut to = vec![0f32; 4 * half];
    for ci in 0..s.cin {
        let xc = &x[ci * h * w..(ci + 1) * h * w];
        ev.fill(0.0);
        od.fill(0.0);
        for r in 0..h {
            // padded column c = input column c - 1: odd c = 2q + 1 <- x[2q], even 2q + 2 <-
            // x[2q + 1]
            let (e, o) = (
                &mut ev[(r + 1) * half + 1..(r + 2) * half],
                &mut od[(r + 1) * half..(r + 2) * half],
            );
            split_columns(&xc[r * w..(r + 1) * w], o, e);
        }
        for bi in 0..th {
            // B^T d down the rows 2 bi .. 2 bi + 3 of the padded plane
            for (pl, tp) in [(&ev, &mut te), (&od, &mut to)] {
                let row = |r: usize| &pl[(2 * bi + r) * half..(2 * bi + r + 1) * half];
                let (d0, d1, d2, d3) = (row(0), row(1), row(2), row(3));
                let (t0, rest) = tp.split_at_mut(half);
                let (t1, rest) = rest.split_at_mut(half);
                let (t2, t3) = rest.split_at_mut(half);
                for q in 0..half {
                    t0[q] = d0[q] - d2[q];
                    t1[q] = d1[q] + d2[q];
                    t2[q] = d2[q] - d1[q];
                    t3[q] = d1[q] - d3[q];
                }
            }
            // then (B^T d) B across: block bj reads padded columns 2 bj .. 2 bj + 3, i.e.
            // even bj, odd bj, even bj + 1, odd bj + 1
            for a in 0..4 {
                let (e, o) = (&te[a * half..(a + 1) * half], &to[a * half..(a + 1) * half]);
                let base = ci * cols + at + bi * tw;
                let (row0, rest) = v[(4 * a) * xi_stride..].split_at_mut(xi_stride);
                let (row1, rest) = rest.split_at_mut(xi_stride);
                let (row2, rest) = rest.split_at_mut(xi_stride);
                let row3 = &mut rest[..xi_stride];
                let (v0, v1, v2, v3) = (
                    &mut row0[base..base + tw],
                    &mut row1[base..base + tw],
                    &mut row2[base..base + tw],
                    &mut row3[base..base + tw],
                );
                for bj in 0..tw {
                    v0[bj] = e[bj] - e[bj + 1];
                    v1[bj] = o[bj] + e[bj + 1];
                    v2[bj] = e[bj + 1] - o[bj];
                    v3[bj] = o[bj] - o[bj + 1];
                }
            }
        }
    }
}

/// y[co, 2 bi + a, 2 bj + b] = (A^T M A)[a, b] (+ bias[co]) for one image's blocks, which
/// start at column `at` of M's rows (`cols` long); the pixels past an odd edge are dropped.
fn output_transform(
    s: &ConvShape,
    m: &[f32],
    cols: usize,
    at: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let (h, w) = (s.h, s.w);
    let (th, tw) = tiles(s);
    let xi_stride = s.cout * cols;
    let mut c0 = vec![0f32; 4 * tw];
    let mut c1 = vec![0f32; 4 * tw];
    // one output row's even and odd columns
    let (mut re, mut ro) = (vec![0f32; tw], vec![0f32; tw]);
    for co in 0..s.cout {
        let bv = bias.map_or(0.0, |b| b[co]);
        let yc = &mut y[co * h * w..(co + 1) * h * w];
        for bi in 0..th {
            let base = co * cols + at + bi * tw;
            // M A across: c0 = m0 + m1 + m2, c1 = m1 - m2 - m3, for each row a
            for a in 0..4 {
                let r = |b: usize| &m[(4 * a + b) * xi_stride + base..][..tw];
                let (m0, m1, m2, m3) = (r(0), r(1), r(2), r(3));
                let (d0, d1) = (&mut c0[a * tw..(a + 1) * tw], &mut c1[a * tw..(a + 1) * tw]);
                for bj in 0..tw {
                    d0[bj] = m0[bj] + m1[bj] + m2[bj];
                    d1[bj] = m1[bj] - m2[bj] - m3[bj];
                }
            }
            // then A^T down: row 0 = c[0] + c[1] + c[2], row 1 = c[1] - c[2] - c[3], for the
            // even (c0) and odd (c1) output columns, interleaved into the row
            for dr in 0..2 {
                let out_row = 2 * bi + dr;
                if out_row >= h {
                    continue;
                }
                let (ye, yo) = (&mut re[..tw], &mut ro[..tw]);
                for (cc, out) in [(&c0, ye), (&c1, yo)] {
                    let (q0, q1, q2, q3) = (
                        &cc[..tw],
                        &cc[tw..2 * tw],
                        &cc[2 * tw..3 * tw],
                        &cc[3 * tw..4 * tw],
                    );
                    if dr == 0 {
                        for bj in 0..tw {
                            out[bj] = q0[bj] + q1[bj] + q2[bj] + bv;
                        }
                    } else {
                        for bj in 0..tw {
                            out[bj] = q1[bj] - q2[bj] - q3[bj] + bv;
                        }
                    }
                }
                let yr = &mut yc[out_row * w..(out_row + 1) * w];
                let mut pairs = yr.chunks_exact_mut(2);
                for ((pair, &e), &o) in (&mut pairs).zip(re.iter()).zip(ro.iter()) {
                    pair[0] = e;
                    pair[1] = o;
                }
                if let [last] = pairs.into_remainder() {
                    *last = re[w / 2];
                }
            }
        }
    }
}
