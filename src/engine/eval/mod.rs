//! Metrics: sliced Wasserstein-2, mixture component weights, RMSE and PSNR to a reference,
//! the metrics of a sample set the jobs report (`metrics`), and for images a
//! classifier-feature FID (`classifier`, `fid`).

pub mod classifier;
pub mod fid;

use crate::engine::data::{Data, Gmm};
use crate::engine::rng::{Rng, purpose};

/// Sliced W2 between two equally sized point sets [n, d]: sqrt of the mean over random
/// unit directions of the 1-D squared W2 (sorted projections).
pub fn sliced_w2(a: &[f32], b: &[f32], d: usize, projections: usize, seed: u64) -> f64 {
    assert_eq!(a.len(), b.len(), "sliced W2 needs equal sample counts");
    let n = a.len() / d;
    let mut rng = Rng::stream(seed, crate::engine::rng::purpose::PROJECTIONS);
    let mut total = 0.0;
    for _ in 0..projections {
        let mut dir: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        dir.iter_mut().for_each(|v| *v /= norm);
        let proj = |x: &[f32]| {
            let mut p: Vec<f64> = x
                .chunks(d)
                .map(|r| r.iter().zip(&dir).map(|(a, b)| *a as f64 * b).sum())
                .collect();
            p.sort_by(|a, b| a.total_cmp(b));
            p
        };
        let (pa, pb) = (proj(a), proj(b));
        total += pa
            .iter()
            .zip(&pb)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            / n as f64;
    }
    (total / projections as f64).sqrt()
}

/// Fraction of samples assigned to each component minus its weight.
pub fn weight_errors(g: &Gmm, samples: &[f32]) -> Vec<f64> {
    let n = samples.len() / g.dim();
    let mut counts = vec![0usize; g.components.len()];
    for k in g.assign(samples) {
        counts[k] += 1;
    }
    counts
        .iter()
        .zip(&g.components)
        .map(|(c, comp)| *c as f64 / n as f64 - comp.weight)
        .collect()
}

/// PSNR in dB of images in [-1, 1] (peak-to-peak 2) against a reference of the same shape:
/// 10 log10(4 / MSE).
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let r = rmse(a, b);
    10.0 * (4.0 / (r * r).max(1e-20)).log10()
}

/// Root mean squared difference per coordinate.
pub fn rmse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    (a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64)
        .sqrt()
}

/// Metrics of a sample set against fresh data and a same-noise reference.
pub fn metrics(
    data: &Data,
    samples: &[f32],
    reference: Option<&[f32]>,
    seed: u64,
) -> (f64, f64, Option<f64>) {
    let n = samples.len() / data.dim();
    let fresh = data.sample(&mut Rng::stream(seed, purpose::EVAL_DATA), n);
    let sw2 = sliced_w2(samples, &fresh, data.dim(), 256, seed);
    let werr = data
        .mixture()
        .map(|g| {
            weight_errors(g, samples)
                .iter()
                .fold(0.0f64, |m, e| m.max(e.abs()))
        })
        .unwrap_or(0.0);
    (sw2, werr, reference.map(|r| rmse(samples, r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliced_w2_of_a_shift_is_the_shift() {
        // W2 between X and X + c along every direction is |<c, theta>|; averaging
        // (c . theta)^2 over uniform directions in 2-D gives |c|^2 / 2.
        let mut rng = Rng::new(1);
        let a = rng.normals(20_000);
        let b: Vec<f32> = a.chunks(2).flat_map(|p| [p[0] + 0.6, p[1] - 0.8]).collect();
        let sw = sliced_w2(&a, &b, 2, 2000, 3);
        assert!((sw - (1.0f64 / 2.0).sqrt()).abs() < 0.02, "{sw}");
        let c = rng.normals(20_000);
        assert!(sliced_w2(&a, &c, 2, 200, 3) < 0.05);
    }

    #[test]
    fn weight_errors_and_rmse() {
        let g = Gmm::ring(4, 2.0, 0.1);
        let pts = [2.0f32, 0.0, 2.0, 0.1, 0.0, 2.0, -2.0, 0.0];
        let e = weight_errors(&g, &pts);
        assert_eq!(e, vec![0.25, 0.0, 0.0, -0.25]);
        assert!((rmse(&[0.0, 0.0], &[3.0, 4.0]) - (12.5f64).sqrt()).abs() < 1e-12);
        // PSNR: an error of 0.2 everywhere on a peak-to-peak of 2 is 20 log10(2 / 0.2) = 20 dB
        let a = vec![0.5f32; 64];
        let b: Vec<f32> = a.iter().map(|v| v - 0.2).collect();
        assert!((psnr(&a, &b) - 20.0).abs() < 1e-5, "{}", psnr(&a, &b));
    }
}
