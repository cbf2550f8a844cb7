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
            let gj = match scale {
                Some(s) => g[j] * s,
                None => g[j],
            };
            let mj = m[j] * k.beta1 + gj * k.one_minus_beta1;
            let vj = v[j] * k.beta2 + (gj * gj) * k.one_minus_beta2;
            let denom = (vj / k.bc2).sqrt() + k.eps;
            pc[j] = p[j] - (mj / denom) * k.step;
            mc[j] = mj;
            vc[j] = vj;
        }
    })
}
