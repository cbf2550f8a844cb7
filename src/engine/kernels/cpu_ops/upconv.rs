//! A 3x3 convolution of a nearest-2x upsampled image without the upsampled image: four
//! output phases, each a 2x2 convolution of the low-resolution image with folded weights.

use super::conv::{ConvShape, Epilogue, Same, pad_image};
use super::gemm::{add_row_sums, mm, parallelism};
use super::threads::{new_chunks, sum_over, threads, with_col, with_pad};

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
        add_row_sums(gb, gyi);
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
