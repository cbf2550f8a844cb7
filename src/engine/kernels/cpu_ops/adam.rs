//! Adam's update of the flat parameter vector in one pass (`engine/optim.rs`): the same f32
//! operations in the same order as its Burn-ops form (every scalar rounded to f32 as Burn's
//! scalar ops round it), so both give the same bits; one read of p, g, m, v and one write of
//! p', m', v' instead of about fifteen passes that each make a new parameter-sized vector.

/// Adam's constants for one step, as f32.
#[derive(Clone, Copy, Debug)]
pub struct AdamCoefs {
    pub beta1: f32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    /// 1 - beta2^t
    pub bc2: f32,
    pub eps: f32,
    /// lr / (1 - beta1^t)
    pub step: f32,
}

/// One element's update: (p', m', v') from p, g, m, v; the one definition both forms use.
#[inline(always)]
fn update(p: f32, g: f32, m: f32, v: f32, scale: Option<f32>, k: &AdamCoefs) -> (f32, f32, f32) {
    let g = match scale {
        Some(s) => g * s,
        None => g,
    };
    let m = m * k.beta1 + g * k.one_minus_beta1;
    let v = v * k.beta2 + (g * g) * k.one_minus_beta2;
    let denom = (v / k.bc2).sqrt() + k.eps;
    (p - (m / denom) * k.step, m, v)
}

/// (p', m', v'): g is first multiplied by `scale` when given (the gradient clip's factor); then
/// m' = m beta1 + g (1 - beta1), v' = v beta2 + (g g)(1 - beta2),
/// p' = p - (m' / (sqrt(v' / bc2) + eps)) step.
pub fn adam(
    p: &[f32],
    g: &[f32],
    m: &[f32],
    v: &[f32],
    scale: Option<f32>,
    k: AdamCoefs,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = p.len();
    assert!(
        g.len() == n && m.len() == n && v.len() == n,
        "adam: p, g, m and v lengths differ"
    );
    super::threads::elementwise3(n, |i0, pc, mc, vc| {
        let r = i0..i0 + pc.len();
        let (p, g, m, v) = (&p[r.clone()], &g[r.clone()], &m[r.clone()], &v[r]);
        for j in 0..pc.len() {
            (pc[j], mc[j], vc[j]) = update(p[j], g[j], m[j], v[j], scale, &k);
        }
    })
}

/// `adam` in place, the same bits: p' is written over g, m' over m and v' over v (no new
/// parameter-sized vectors: for a 35.7M-parameter network three 143 MB vectors fewer to
/// allocate and fill per step).
pub fn adam_in_place(
    p: &[f32],
    g: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    scale: Option<f32>,
    k: AdamCoefs,
) {
    let n = p.len();
    assert!(
        g.len() == n && m.len() == n && v.len() == n,
        "adam: p, g, m and v lengths differ"
    );
    super::threads::in_place3(g, m, v, |i0, gc, mc, vc| {
        let p = &p[i0..i0 + gc.len()];
        for j in 0..gc.len() {
            (gc[j], mc[j], vc[j]) = update(p[j], gc[j], mc[j], vc[j], scale, &k);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In place and into new vectors: the same bits, with and without the clip's scale, over
    /// more values than one parallel chunk.
    #[test]
    fn in_place_is_the_same_bits() {
        let mut rng = crate::engine::rng::Rng::new(4);
        let n = 100_003;
        let mut vecs = (0..4).map(|_| rng.normals(n)).collect::<Vec<Vec<f32>>>();
        vecs[3].iter_mut().for_each(|x| *x = x.abs());
        let k = AdamCoefs {
            beta1: 0.9,
            one_minus_beta1: 0.1,
            beta2: 0.999,
            one_minus_beta2: 0.001,
            bc2: 0.02,
            eps: 1e-8,
            step: 3e-3,
        };
        for scale in [None, Some(0.37)] {
            let (p, g, m, v) = (&vecs[0], &vecs[1], &vecs[2], &vecs[3]);
            let (po, mo, vo) = adam(p, g, m, v, scale, k);
            let (mut gi, mut mi, mut vi) = (g.clone(), m.clone(), v.clone());
            adam_in_place(p, &mut gi, &mut mi, &mut vi, scale, k);
            for (a, b) in [(&po, &gi), (&mo, &mi), (&vo, &vi)] {
                assert!(
                    a.iter()
                        .zip(b.iter())
                        .all(|(x, y)| x.to_bits() == y.to_bits())
                );
            }
            assert_ne!(po, *p, "the update moved nothing");
        }
    }
}
