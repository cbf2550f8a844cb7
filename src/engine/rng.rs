//! Seeded, serializable random numbers (xoshiro256++ and Box-Muller normals).
//!
//! Own implementation so that the full state is four u64 words that go into every
//! checkpoint: a resumed run draws exactly the numbers the uninterrupted one would.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        Rng {
            s: [
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
            ],
        }
    }

    /// An independent stream for a named purpose (noise, data, projections...).
    pub fn stream(seed: u64, purpose: u64) -> Self {
        Self::new(seed ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    pub fn from_state(s: [u64; 4]) -> Self {
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A standard normal pair (Box-Muller).
    pub fn normal_pair(&mut self) -> (f64, f64) {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        (r * th.cos(), r * th.sin())
    }

    pub fn normal(&mut self) -> f64 {
        self.normal_pair().0
    }

    pub fn fill_normal(&mut self, out: &mut [f32]) {
        let mut chunks = out.chunks_exact_mut(2);
        for c in &mut chunks {
            let (a, b) = self.normal_pair();
            c[0] = a as f32;
            c[1] = b as f32;
        }
        if let [last] = chunks.into_remainder() {
            *last = self.normal() as f32;
        }
    }

    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        let mut v = vec![0.0; n];
        self.fill_normal(&mut v);
        v
    }
}

/// Purposes for `Rng::stream`, so the same seed gives independent streams.
pub mod purpose {
    pub const SAMPLE_NOISE: u64 = 1;
    pub const TRAIN: u64 = 2;
    pub const EVAL_DATA: u64 = 3;
    pub const PROJECTIONS: u64 = 4;
    pub const INIT: u64 = 5;
    pub const PRETRAIN: u64 = 6;
    pub const MC: u64 = 7;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_unit_moments_and_state_round_trips() {
        let mut r = Rng::new(42);
        let v = r.normals(200_001);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
        let saved = r.state();
        let a: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        let mut r2 = Rng::from_state(saved);
        let b: Vec<u64> = (0..5).map(|_| r2.next_u64()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn below_is_uniform() {
        let mut r = Rng::new(7);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[r.below(5)] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 400.0, "{counts:?}");
        }
    }
}
