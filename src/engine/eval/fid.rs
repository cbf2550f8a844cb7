//! Frechet distance between Gaussians fitted to two feature sets:
//! |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), in f64, with a Jacobi
//! eigensolver for the symmetric square roots.

/// Mean and covariance (divided by n - 1) of rows [n, d].
pub fn moments(x: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() / d;
    let mut mu = vec![0.0f64; d];
    for r in x.chunks_exact(d) {
        for (m, &v) in mu.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    mu.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0f64; d * d];
    let mut c = vec![0.0f64; d];
    for r in x.chunks_exact(d) {
        for j in 0..d {
            c[j] = r[j] as f64 - mu[j];
        }
        for i in 0..d {
            let ci = c[i];
            if ci == 0.0 {
                continue;
            }
            let row = &mut cov[i * d..(i + 1) * d];
            for j in i..d {
                row[j] += ci * c[j];
            }
        }
    }
    let den = (n.max(2) - 1) as f64;
    for i in 0..d {
        for j in i..d {
            let v = cov[i * d + j] / den;
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
    }
    (mu, cov)
}

/// Eigen-decomposition of a symmetric matrix [d, d] by cyclic Jacobi rotations:
/// (eigenvalues, eigenvectors as columns of a row-major [d, d]).
pub fn sym_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0f64; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
    for _sweep in 0..100 {
        let mut off = 0.0;
        for i in 0..d {
            for j in i + 1..d {
                off += a[i * d + j] * a[i * d + j];
            }
        }
        if off.sqrt() <= 1e-15 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// The square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// round-off are taken as 0).
pub fn sqrt_psd(a: &[f64], d: usize) -> Vec<f64> {
    let (w, v) = sym_eigen(a, d);
    let mut out = vec![0.0f64; d * d];
    for k in 0..d {
        let s = w[k].max(0.0).sqrt();
        if s == 0.0 {
            continue;
        }
        for i in 0..d {
            let vik = v[i * d + k] * s;
            for j in 0..d {
                out[i * d + j] += vik * v[j * d + k];
            }
        }
    }
    out
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                c[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    c
}

/// Frechet distance between N(mu1, s1) and N(mu2, s2).
pub fn frechet(mu1: &[f64], s1: &[f64], mu2: &[f64], s2: &[f64]) -> f64 {
    let d = mu1.len();
    let r1 = sqrt_psd(s1, d);
    let mut m = matmul(&matmul(&r1, s2, d), &r1, d);
    // symmetrize against round-off
    for i in 0..d {
        for j in i + 1..d {
            let v = 0.5 * (m[i * d + j] + m[j * d + i]);
            m[i * d + j] = v;
            m[j * d + i] = v;
        }
    }
    let (w, _) = sym_eigen(&m, d);
    let tr_sqrt: f64 = w.iter().map(|x| x.max(0.0).sqrt()).sum();
    let dm: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let tr: f64 = (0..d).map(|i| s1[i * d + i] + s2[i * d + i]).sum();
    (dm + tr - 2.0 * tr_sqrt).max(0.0)
}

/// FID-style distance between two feature sets [n, d].
pub fn feature_distance(a: &[f32], b: &[f32], d: usize) -> f64 {
    let (m1, s1) = moments(a, d);
    let (m2, s2) = moments(b, d);
    frechet(&m1, &s1, &m2, &s2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::Rng;

    fn random_spd(rng: &mut Rng, d: usize) -> Vec<f64> {
        let g: Vec<f64> = rng.normals(d * d).iter().map(|&v| v as f64).collect();
        let mut s = matmul(&g, &transpose(&g, d), d);
        for i in 0..d {
            s[i * d + i] += 0.1;
        }
        s
    }
    fn transpose(a: &[f64], d: usize) -> Vec<f64> {
        let mut t = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                t[j * d + i] = a[i * d + j];
            }
        }
        t
    }

    #[test]
    fn sqrt_squares_back() {
        let mut rng = Rng::new(3);
        for d in [1, 2, 5, 17] {
            let s = random_spd(&mut rng, d);
            let r = sqrt_psd(&s, d);
            let rr = matmul(&r, &r, d);
            for (a, b) in rr.iter().zip(&s) {
                assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "d {d}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn frechet_closed_forms() {
        // diagonal covariances: sum (sqrt(a) - sqrt(b))^2 + |mu1 - mu2|^2
        let (a, b) = ([1.0, 4.0, 0.25], [9.0, 1.0, 0.25]);
        let diag = |v: &[f64; 3]| {
            let mut m = vec![0.0; 9];
            for i in 0..3 {
                m[i * 3 + i] = v[i];
            }
            m
        };
        let f = frechet(&[0.0, 1.0, 2.0], &diag(&a), &[1.0, 1.0, 0.0], &diag(&b));
        let want = 1.0 + 4.0 + (1.0f64 - 3.0).powi(2) + (2.0f64 - 1.0).powi(2);
        assert!((f - want).abs() < 1e-10, "{f} vs {want}");
        // 2x2, not commuting: Tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for 2x2 PSD M
        let mut rng = Rng::new(9);
        for _ in 0..5 {
            let s1 = random_spd(&mut rng, 2);
            let s2 = random_spd(&mut rng, 2);
            let r1 = sqrt_psd(&s1, 2);
            let m = matmul(&matmul(&r1, &s2, 2), &r1, 2);
            let det = m[0] * m[3] - m[1] * m[2];
            let tr_sqrt = (m[0] + m[3] + 2.0 * det.sqrt()).sqrt();
            let want = s1[0] + s1[3] + s2[0] + s2[3] - 2.0 * tr_sqrt;
            let f = frechet(&[0.0, 0.0], &s1, &[0.0, 0.0], &s2);
            assert!((f - want).abs() < 1e-9, "{f} vs {want}");
            // and it is symmetric in its arguments
            let g = frechet(&[0.0, 0.0], &s2, &[0.0, 0.0], &s1);
            assert!((f - g).abs() < 1e-9);
        }
    }

    #[test]
    fn feature_sets() {
        let mut rng = Rng::new(4);
        let a: Vec<f32> = rng.normals(4000 * 3);
        assert!(feature_distance(&a, &a, 3) < 1e-9);
        // shifting every feature by 1: distance ~ d
        let b: Vec<f32> = a.iter().map(|v| v + 1.0).collect();
        assert!((feature_distance(&a, &b, 3) - 3.0).abs() < 1e-6);
        // a fresh draw from the same law: small
        let c: Vec<f32> = rng.normals(4000 * 3);
        assert!(feature_distance(&a, &c, 3) < 0.02);
    }
}
