//! Multi-head self-attention over the pixels of an image as one op each way: the q/k/v
//! projections (one GEMM on the stacked weights), softmax(q k^T / sqrt(d)) v per head and the
//! output projection plus its bias and a residual, all on channel-major `[c, pixels]` matrices
//! (NCHW as it is: no transposed copies of the activations in the forward). Every GEMM is a
//! plain product of row-major operands (the layout `mm` runs without gathering, see there);
//! where a product needs a transposed operand it is transposed once into scratch.

use super::gemm::{add_row_sums, mm, parallelism, transpose};
use super::groupnorm::exp_f32;
use super::threads::{new_chunks, sum_over, threads, with_col, with_pad};

/// One attention call: n images of c channels and t pixels (tokens), `heads` heads of c /
/// heads channels each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    pub n: usize,
    pub c: usize,
    pub t: usize,
    pub heads: usize,
}

impl AttnShape {
    /// None unless the sizes are positive and the heads divide the channels.
    pub fn new(n: usize, c: usize, t: usize, heads: usize) -> Option<Self> {
        (n > 0 && c > 0 && t > 0 && heads > 0 && c.is_multiple_of(heads)).then_some(AttnShape {
            n,
            c,
            t,
            heads,
        })
    }
    fn d(&self) -> usize {
        self.c / self.heads
    }
    fn scale(&self) -> f32 {
        1.0 / (self.d() as f32).sqrt()
    }
    /// What the forward keeps per image for the backward: `[q; k; v]` (3c x t), the heads'
    /// outputs before the output projection (c x t) and the attention weights (heads x t x t).
    pub fn saved_len(&self) -> usize {
        4 * self.c * self.t + self.heads * self.t * self.t
    }
    fn image_len(&self) -> usize {
        self.c * self.t
    }
}

// Each row of p (rows of length t) replaced by softmax(scale * row).
multiversion! {
    fn softmax_rows(p: &mut [f32], t: usize, scale: f32) {
        // fixed 16-wide blocks, then the rest: loops the compiler vectorises (a fold with
        // f32::max and variable-length chunks stayed scalar, 40% of a small UNet's forward)
        for row in p.chunks_exact_mut(t) {
            let mut mx = [f32::NEG_INFINITY; 16];
            let mut blocks = row.chunks_exact(16);
            for ch in &mut blocks {
                for j in 0..16 {
                    mx[j] = if ch[j] > mx[j] { ch[j] } else { mx[j] };
                }
            }
            for (j, &v) in blocks.remainder().iter().enumerate() {
                mx[j] = if v > mx[j] { v } else { mx[j] };
            }
            let m = mx.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut acc = [0f32; 16];
            let mut blocks = row.chunks_exact_mut(16);
            for ch in &mut blocks {
                for j in 0..16 {
                    ch[j] = exp_f32((ch[j] - m) * scale);
                    acc[j] += ch[j];
                }
            }
            for (j, v) in blocks.into_remainder().iter_mut().enumerate() {
                *v = exp_f32((*v - m) * scale);
                acc[j] += *v;
            }
            let inv = 1.0 / acc.iter().sum::<f32>();
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

// The gradient of the scaled softmax's input from that of its output, in place of gp:
// scale p (gp - sum_j gp p) row by row.
multiversion! {
    fn softmax_back_rows(gp: &mut [f32], p: &[f32], t: usize, scale: f32) {
        for (g, pr) in gp.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
            let mut acc = [0f32; 16];
            let (gb, pb) = (g.chunks_exact(16), pr.chunks_exact(16));
            let (gr, pr_) = (gb.remainder(), pb.remainder());
            for (gc, pc) in gb.zip(pb) {
                for j in 0..16 {
                    acc[j] += gc[j] * pc[j];
                }
            }
            for j in 0..gr.len() {
                acc[j] += gr[j] * pr_[j];
            }
            let dot: f32 = acc.iter().sum();
            for (gv, &pv) in g.iter_mut().zip(pr) {
                *gv = scale * pv * (*gv - dot);
            }
        }
    }
}

/// Fills the rows (length `len`) of dst with the values of b, plus the rows of r when given.
fn fill_rows(dst: &mut [f32], len: usize, b: &[f32], r: Option<&[f32]>) {
    match r {
        Some(r) => {
            for ((row, rr), &bv) in dst.chunks_exact_mut(len).zip(r.chunks_exact(len)).zip(b) {
                for (o, &v) in row.iter_mut().zip(rr) {
                    *o = v + bv;
                }
            }
        }
        None => {
            for (row, &bv) in dst.chunks_exact_mut(len).zip(b) {
                row.fill(bv);
            }
        }
    }
}

/// One image up to the output projection: saved = `[q; k; v | o | p]` (see `saved_len`).
fn project(s: &AttnShape, xi: &[f32], wqkv: &[f32], bqkv: &[f32], saved: &mut [f32], inner: bool) {
    let (c, t, d) = (s.c, s.t, s.d());
    let par = || parallelism(inner);
    let (qkv, rest) = saved.split_at_mut(3 * c * t);
    let (o, p) = rest.split_at_mut(c * t);
    // [q; k; v] [3c, t] = Wqkv [3c, c] . x [c, t] + b
    fill_rows(qkv, t, bqkv, None);
    mm(
        (3 * c, t, c),
        qkv,
        (t, 1),
        true,
        wqkv,
        (c, 1),
        xi,
        (t, 1),
        par(),
    );
    with_pad(t * t, |pt| {
        for h in 0..s.heads {
            let q = &qkv[h * d * t..(h + 1) * d * t];
            let k = &qkv[(c + h * d) * t..(c + (h + 1) * d) * t];
            let v = &qkv[(2 * c + h * d) * t..(2 * c + (h + 1) * d) * t];
            let ph = &mut p[h * t * t..(h + 1) * t * t];
            // scores [t, t] = q^T [t, d] . k [d, t], then the softmax of each row
            mm((t, t, d), ph, (t, 1), false, q, (1, t), k, (t, 1), par());
            softmax_rows(ph, t, s.scale());
            // o_h [d, t] = v [d, t] . p^T [t, t]
            transpose(ph, t, t, pt);
            let oh = &mut o[h * d * t..(h + 1) * d * t];
            mm((d, t, t), oh, (t, 1), false, v, (t, 1), pt, (t, 1), par());
        }
    });
}

/// One image's output: y = r + bo + Wo `[c, c]` . o `[c, t]`.
#[allow(clippy::too_many_arguments)]
fn output(
    s: &AttnShape,
    saved: &[f32],
    wo: &[f32],
    bo: &[f32],
    ri: Option<&[f32]>,
    yi: &mut [f32],
    inner: bool,
) {
    let (c, t) = (s.c, s.t);
    let o = &saved[3 * c * t..4 * c * t];
    fill_rows(yi, t, bo, ri);
    mm(
        (c, t, c),
        yi,
        (t, 1),
        true,
        wo,
        (c, 1),
        o,
        (t, 1),
        parallelism(inner),
    );
}

/// The op's operands: x `[n, c, t]` (the normalised input), Wqkv `[3c, c]` (to_q, to_k,
/// to_v stacked, PyTorch Linear layout `[out, in]`), bqkv `[3c]`, Wo `[c, c]`, bo `[c]` and
/// the residual r (`[n, c, t]`, or empty: none).
#[derive(Clone, Copy)]
pub struct AttnInputs<'a> {
    pub x: &'a [f32],
    pub wqkv: &'a [f32],
    pub bqkv: &'a [f32],
    pub wo: &'a [f32],
    pub bo: &'a [f32],
    pub r: &'a [f32],
}

impl AttnInputs<'_> {
    fn check(&self, s: &AttnShape) {
        let (c, il) = (s.c, s.image_len());
        assert_eq!(self.x.len(), s.n * il, "attention: input size");
        assert_eq!(self.wqkv.len(), 3 * c * c, "attention: q/k/v weight size");
        assert_eq!(self.bqkv.len(), 3 * c, "attention: q/k/v bias size");
        assert_eq!(self.wo.len(), c * c, "attention: output weight size");
        assert_eq!(self.bo.len(), c, "attention: output bias size");
        assert!(
            self.r.is_empty() || self.r.len() == s.n * il,
            "attention: residual size"
        );
    }
    fn residual(&self, s: &AttnShape, i: usize) -> Option<&[f32]> {
        let il = s.image_len();
        (!self.r.is_empty()).then(|| &self.r[i * il..(i + 1) * il])
    }
}

/// y `[n, c, t]` = r + to_out(softmax(q k^T / sqrt(d)) v) per head; with `save`, also what the
/// backward reads (`[n, saved_len]`), else an empty vector.
pub fn attention_forward(s: &AttnShape, a: AttnInputs, save: bool) -> (Vec<f32>, Vec<f32>) {
    a.check(s);
    let (il, sl) = (s.image_len(), s.saved_len());
    // images in parallel when there are enough of them, else threads inside each GEMM
    let inner = s.n < threads();
    let xi = |i: usize| &a.x[i * il..(i + 1) * il];
    if save {
        let saved = new_chunks(s.n, sl, inner, |i, si| {
            project(s, xi(i), a.wqkv, a.bqkv, si, inner)
        });
        let y = new_chunks(s.n, il, inner, |i, yi| {
            let si = &saved[i * sl..(i + 1) * sl];
            output(s, si, a.wo, a.bo, a.residual(s, i), yi, inner)
        });
        return (y, saved);
    }
    let y = new_chunks(s.n, il, inner, |i, yi| {
        with_col(sl, |si| {
            project(s, xi(i), a.wqkv, a.bqkv, si, inner);
            output(s, si, a.wo, a.bo, a.residual(s, i), yi, inner)
        })
    });
    (y, vec![])
}

/// The gradients of `attention_forward`'s inputs (the residual's is the output's own).
pub struct AttnGrads {
    /// `[n, c, t]`
    pub x: Vec<f32>,
    /// `[3c, c]`
    pub wqkv: Vec<f32>,
    /// `[3c]`
    pub bqkv: Vec<f32>,
    /// `[c, c]`
    pub wo: Vec<f32>,
    /// `[c]`
    pub bo: Vec<f32>,
}

/// The gradients of `attention_forward` for the output gradient gy `[n, c, t]`, from its
/// inputs and what it saved.
pub fn attention_backward(
    s: &AttnShape,
    x: &[f32],
    wqkv: &[f32],
    wo: &[f32],
    saved: &[f32],
    gy: &[f32],
) -> AttnGrads {
    let (c, t, d) = (s.c, s.t, s.d());
    let (il, sl) = (s.image_len(), s.saved_len());
    assert_eq!(x.len(), s.n * il, "attention backward: input size");
    assert_eq!(gy.len(), s.n * il, "attention backward: gradient size");
    assert_eq!(saved.len(), s.n * sl, "attention backward: saved size");
    assert_eq!(wqkv.len(), 3 * c * c, "attention backward: weight size");
    assert_eq!(wo.len(), c * c, "attention backward: weight size");
    let inner = s.n < threads();
    let par = || parallelism(inner);
    let mut wot = vec![0f32; c * c];
    transpose(wo, c, c, &mut wot);
    // the gradient of [q; k; v] per image
    let gqkv = new_chunks(s.n, 3 * il, inner, |i, gq| {
        let si = &saved[i * sl..(i + 1) * sl];
        let (qkv, o_p) = si.split_at(3 * il);
        let p = &o_p[il..];
        let gyi = &gy[i * il..(i + 1) * il];
        with_col(il + 2 * t * t, |scratch| {
            let (go, rest) = scratch.split_at_mut(il);
            let (gp, gst) = rest.split_at_mut(t * t);
            // go [c, t] = Wo^T [c, c] . gy [c, t]
            mm(
                (c, t, c),
                go,
                (t, 1),
                false,
                &wot,
                (c, 1),
                gyi,
                (t, 1),
                par(),
            );
            for h in 0..s.heads {
                let rows = |base: usize| (base + h * d) * t..(base + (h + 1) * d) * t;
                let (q, k, v) = (&qkv[rows(0)], &qkv[rows(c)], &qkv[rows(2 * c)]);
                let ph = &p[h * t * t..(h + 1) * t * t];
                let goh = &go[rows(0)];
                // gv [d, t] = go_h [d, t] . p [t, t]
                mm(
                    (d, t, t),
                    &mut gq[rows(2 * c)],
                    (t, 1),
                    false,
                    goh,
                    (t, 1),
                    ph,
                    (t, 1),
                    par(),
                );
                // gp [t, t] = go_h^T [t, d] . v [d, t]; then the scores' gradient gs
                mm((t, t, d), gp, (t, 1), false, goh, (1, t), v, (t, 1), par());
                softmax_back_rows(gp, ph, t, s.scale());
                // gk [d, t] = q [d, t] . gs [t, t]; gq [d, t] = k [d, t] . gs^T [t, t]
                mm(
                    (d, t, t),
                    &mut gq[rows(c)],
                    (t, 1),
                    false,
                    q,
                    (t, 1),
                    gp,
                    (t, 1),
                    par(),
                );
                transpose(gp, t, t, gst);
                mm(
                    (d, t, t),
                    &mut gq[rows(0)],
                    (t, 1),
                    false,
                    k,
                    (t, 1),
                    gst,
                    (t, 1),
                    par(),
                );
            }
        })
    });
    // [gWqkv | gbqkv | gWo | gbo], one accumulator per thread
    let (lw, lo) = (3 * c * c, c * c);
    let acc = sum_over(s.n, lw + 3 * c + lo + c, |i, acc| {
        let (gw, rest) = acc.split_at_mut(lw);
        let (gb, rest) = rest.split_at_mut(3 * c);
        let (gwo, gbo) = rest.split_at_mut(lo);
        let gqi = &gqkv[i * 3 * il..(i + 1) * 3 * il];
        let gyi = &gy[i * il..(i + 1) * il];
        let oi = &saved[i * sl + 3 * il..i * sl + 4 * il];
        add_row_sums(gb, gqi);
        add_row_sums(gbo, gyi);
        with_col(il, |tr| {
            // gWqkv [3c, c] += g[q; k; v] [3c, t] . x^T [t, c]
            transpose(&x[i * il..(i + 1) * il], c, t, tr);
            mm(
                (3 * c, c, t),
                gw,
                (c, 1),
                true,
                gqi,
                (t, 1),
                tr,
                (c, 1),
                par(),
            );
            // gWo [c, c] += gy [c, t] . o^T [t, c]
            transpose(oi, c, t, tr);
            mm((c, c, t), gwo, (c, 1), true, gyi, (t, 1), tr, (c, 1), par());
        })
    });
    // gx [c, t] = Wqkv^T [c, 3c] . g[q; k; v] [3c, t]
    let mut wt = vec![0f32; lw];
    transpose(wqkv, 3 * c, c, &mut wt);
    let gx = new_chunks(s.n, il, inner, |i, gxi| {
        let gqi = &gqkv[i * 3 * il..(i + 1) * 3 * il];
        mm(
            (c, t, 3 * c),
            gxi,
            (t, 1),
            false,
            &wt,
            (3 * c, 1),
            gqi,
            (t, 1),
            par(),
        );
    });
    AttnGrads {
        x: gx,
        wqkv: acc[..lw].to_vec(),
        bqkv: acc[lw..lw + 3 * c].to_vec(),
        wo: acc[lw + 3 * c..lw + 3 * c + lo].to_vec(),
        bo: acc[lw + 3 * c + lo..].to_vec(),
    }
}
