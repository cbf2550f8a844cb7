//! Harder built-in mixtures for the TRACT vs BTD study (issue #18), each with the exact
//! analytic teacher like `toy:ring8`:
//! - `toy:grid5`: a 5x5 grid of equal Gaussians of std 0.05 at spacing 0.5 on [-1, 1]^2
//!   (25 narrow, well separated modes: sharp targets that a few steps must resolve);
//! - `toy:mix16`: 32 equal components in 16 dimensions, means drawn once from N(0, 1)
//!   per coordinate with a fixed seed, std 0.2 (the data spans many directions, so a 2-D
//!   picture says little; SW2 and RMSE are the measures).

use super::gmm::{Component, Gmm};
use crate::engine::rng::Rng;

/// A `side` x `side` grid of equal components of std `s`, spacing `h`, centred on 0.
pub fn grid(side: usize, h: f64, s: f64) -> Gmm {
    let off = (side as f64 - 1.0) / 2.0;
    let mut components = vec![];
    for i in 0..side {
        for j in 0..side {
            components.push(Component {
                weight: 1.0 / (side * side) as f64,
                mean: vec![(i as f64 - off) * h, (j as f64 - off) * h],
                std: s,
            });
        }
    }
    Gmm { components }
}

/// `k` equal components in `d` dimensions, means N(0, 1) per coordinate from `seed`.
pub fn random(k: usize, d: usize, s: f64, seed: u64) -> Gmm {
    let mut rng = Rng::new(seed);
    let components = (0..k)
        .map(|_| Component {
            weight: 1.0 / k as f64,
            mean: (0..d).map(|_| rng.normal()).collect(),
            std: s,
        })
        .collect();
    Gmm { components }
}

/// The built-in `toy:NAME` mixtures.
pub fn toy(name: &str) -> Option<Gmm> {
    match name {
        "ring8" => Some(Gmm::ring(8, 1.5, 0.15)),
        "grid5" => Some(grid(5, 0.5, 0.05)),
        "mix16" => Some(random(32, 16, 0.2, 16_032)),
        _ => None,
    }
}

/// Names for error messages.
pub const TOY_NAMES: &str = "'toy:ring8', 'toy:grid5' or 'toy:mix16'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid5_and_mix16_shapes() {
        let g = toy("grid5").unwrap();
        assert_eq!(g.components.len(), 25);
        assert_eq!(g.dim(), 2);
        let xs: Vec<f64> = g.components.iter().map(|c| c.mean[0]).collect();
        assert_eq!(xs.iter().cloned().fold(f64::MAX, f64::min), -1.0);
        assert_eq!(xs.iter().cloned().fold(f64::MIN, f64::max), 1.0);
        assert!(g.components.iter().all(|c| c.std == 0.05));
        let m = toy("mix16").unwrap();
        assert_eq!((m.components.len(), m.dim()), (32, 16));
        // deterministic: the same means every time
        assert_eq!(m, toy("mix16").unwrap());
        let w: f64 = m.components.iter().map(|c| c.weight).sum();
        assert!((w - 1.0).abs() < 1e-12);
        // the components are well separated: the closest pair of means is many stds apart
        let mut best = f64::MAX;
        for a in 0..32 {
            for b in a + 1..32 {
                let d2: f64 = (0..16)
                    .map(|i| (m.components[a].mean[i] - m.components[b].mean[i]).powi(2))
                    .sum();
                best = best.min(d2.sqrt());
            }
        }
        assert!(best > 5.0 * 0.2, "closest means {best}");
        // sampled points are assigned to their grid cell
        let mut rng = Rng::new(2);
        let x = g.sample(&mut rng, 5000);
        let counts = g.assign(&x).iter().fold(vec![0usize; 25], |mut c, &k| {
            c[k] += 1;
            c
        });
        assert!(
            counts
                .iter()
                .all(|&c| (c as f64 / 5000.0 - 0.04).abs() < 0.015)
        );
    }
}
