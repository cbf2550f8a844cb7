//! Data sources. For this stage: Gaussian mixtures (`toy:ring8`, `gmm:PATH`), which also
//! come with an exact analytic denoiser (the project's ground truth).

pub mod gmm;
pub mod idx;

pub use gmm::Gmm;

use crate::{Error, Result};

/// A data spec string as the CLI takes it: `toy:ring8` or `gmm:PATH`.
#[derive(Clone, Debug)]
pub struct Data {
    pub spec: String,
    pub mixture: Gmm,
}

impl Data {
    pub fn parse(spec: &str) -> Result<Data> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mixture = match kind {
            "toy" => match rest {
                "ring8" => Gmm::ring(8, 1.5, 0.15),
                other => {
                    return Err(Error::input(format!(
                        "unknown toy data set 'toy:{other}': expected 'toy:ring8'"
                    )));
                }
            },
            "gmm" => {
                if rest.is_empty() {
                    return Err(Error::input("'gmm:' needs a path to a JSON mixture spec, e.g. gmm:mix.json"));
                }
                Gmm::from_json_file(std::path::Path::new(rest))?
            }
            _ => {
                return Err(Error::input(format!(
                    "unknown data '{spec}': expected toy:ring8 or gmm:PATH (a JSON mixture spec)"
                )));
            }
        };
        Ok(Data { spec: spec.to_string(), mixture })
    }

    pub fn dim(&self) -> usize {
        self.mixture.dim()
    }

    pub fn sample(&self, rng: &mut crate::rng::Rng, n: usize) -> Vec<f32> {
        self.mixture.sample(rng, n)
    }
}
