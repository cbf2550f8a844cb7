//! Data sources: Gaussian mixtures (`toy:ring8`, `gmm:PATH`), which come with an exact
//! analytic denoiser (the project's ground truth), and MNIST-format image sets
//! (`fashion-mnist[:DIR]`, `mnist:DIR`), pixels in [-1, 1], 28x28 padded to 32x32, folders
//! of PNG / JPEG files (`images:DIR[,SIZE][,grey|rgb]`) and the colour emoji of an installed
//! font (`emoji[:FONT][,SIZE]`).

#[cfg(not(target_arch = "wasm32"))]
pub mod emoji;
#[cfg(not(target_arch = "wasm32"))]
pub mod folder;
pub mod gmm;
pub mod idx;
pub mod mixtures;

use std::sync::Arc;

pub use gmm::Gmm;
pub use idx::ImageSet;

use crate::{Error, Result};

pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

#[derive(Clone, Debug)]
pub enum Source {
    Mixture(Gmm),
    Images(Arc<ImageSet>),
}

/// A data spec string as the CLI takes it, and what it loads.
#[derive(Clone, Debug)]
pub struct Data {
    pub spec: String,
    pub source: Source,
}

/// The train or test split of `fashion-mnist[:DIR]` / `mnist:DIR`, 28x28 padded to 32x32.
fn load_idx_split(kind: &str, rest: &str, train: bool) -> Result<ImageSet> {
    let dir = if rest.is_empty() {
        if kind == "mnist" {
            return Err(Error::input(
                "'mnist:' needs the directory of the idx files, e.g. mnist:/data/mnist",
            ));
        }
        FASHION_MNIST_DIR
    } else {
        rest
    };
    let hint = if kind == "fashion-mnist" {
        "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or give fashion-mnist:DIR"
    } else {
        "expected MNIST-format idx files (gzipped or not)"
    };
    let set = idx::load_mnist_dir(std::path::Path::new(dir), train, hint)?;
    Ok(if set.h == 28 && set.w == 28 {
        set.padded(2)
    } else {
        set
    })
}

/// A spec's kind and what follows it: `KIND:REST`, or `emoji,SIZE` (the emoji font's options
/// may follow a comma when the font is the default).
fn split_spec(spec: &str) -> (&str, &str) {
    if let Some(size) = spec.strip_prefix("emoji,") {
        return ("emoji", size);
    }
    spec.split_once(':').unwrap_or((spec, ""))
}

impl Data {
    /// Held-out images to compare samples with: the test split of idx data sets (t10k) and of
    /// `emoji` (every 10th), the folder itself for `images:DIR`.
    pub fn held_out(&self) -> Result<Arc<ImageSet>> {
        let (kind, rest) = split_spec(&self.spec);
        match (&self.source, kind) {
            (Source::Images(_), "fashion-mnist" | "mnist") => {
                Ok(Arc::new(load_idx_split(kind, rest, false)?))
            }
            #[cfg(not(target_arch = "wasm32"))]
            (Source::Images(_), "emoji") => Ok(Arc::new(emoji::load(
                &emoji::EmojiSpec::parse(rest)?,
                false,
            )?)),
            (Source::Images(s), _) => Ok(s.clone()),
            (Source::Mixture(_), _) => Err(Error::input(format!(
                "{}: a mixture has no image test split",
                self.spec
            ))),
        }
    }

    /// Whether a spec names a mixture (`toy:`, `gmm:`: points, with an exact teacher) rather
    /// than images, from the spec alone: nothing is loaded (the browser has no data sets on
    /// disk, and the app asks every frame).
    pub fn is_mixture_spec(spec: &str) -> bool {
        let kind = spec.split_once(':').map_or(spec, |(k, _)| k);
        matches!(kind, "toy" | "gmm")
    }

    pub fn parse(spec: &str) -> Result<Data> {
        let (kind, rest) = split_spec(spec);
        let source = match kind {
            "toy" => match mixtures::toy(rest) {
                Some(g) => Source::Mixture(g),
                None => {
                    return Err(Error::input(format!(
                        "unknown toy data set 'toy:{rest}': expected {}",
                        mixtures::TOY_NAMES
                    )));
                }
            },
            "gmm" => {
                if rest.is_empty() {
                    return Err(Error::input(
                        "'gmm:' needs a path to a JSON mixture spec, e.g. gmm:mix.json",
                    ));
                }
                Source::Mixture(Gmm::from_json_file(std::path::Path::new(rest))?)
            }
            "fashion-mnist" | "mnist" => {
                Source::Images(Arc::new(load_idx_split(kind, rest, true)?))
            }
            #[cfg(not(target_arch = "wasm32"))]
            "images" => Source::Images(Arc::new(folder::load(&folder::FolderSpec::parse(rest)?)?)),
            #[cfg(not(target_arch = "wasm32"))]
            "emoji" => Source::Images(Arc::new(emoji::load(
                &emoji::EmojiSpec::parse(rest)?,
                true,
            )?)),
            _ => {
                return Err(Error::input(format!(
                    "unknown data '{spec}': expected toy:ring8, gmm:PATH (a JSON mixture spec), fashion-mnist[:DIR], mnist:DIR, images:DIR[,SIZE][,grey|rgb] or emoji[:FONT][,SIZE]"
                )));
            }
        };
        Ok(Data {
            spec: spec.to_string(),
            source,
        })
    }

    /// Flattened sample size.
    pub fn dim(&self) -> usize {
        match &self.source {
            Source::Mixture(g) => g.dim(),
            Source::Images(s) => s.dim(),
        }
    }

    /// Shape of one sample: `[D]` for mixtures, `[C, H, W]` for images.
    pub fn shape(&self) -> Vec<usize> {
        match &self.source {
            Source::Mixture(g) => vec![g.dim()],
            Source::Images(s) => vec![s.c, s.h, s.w],
        }
    }

    pub fn mixture(&self) -> Option<&Gmm> {
        match &self.source {
            Source::Mixture(g) => Some(g),
            Source::Images(_) => None,
        }
    }

    pub fn is_images(&self) -> bool {
        matches!(self.source, Source::Images(_))
    }

    /// The closed-form teacher, for mixtures only.
    pub fn exact(&self) -> Result<&Gmm> {
        self.mixture().ok_or_else(|| {
            Error::input(format!(
                "{} has no exact teacher (only mixtures do); train one with `tract-studio teacher`",
                self.spec
            ))
        })
    }

    /// Root mean square of the data (EDM's sigma_data for mixtures; 0.5 for images).
    pub fn sigma_data(&self) -> f64 {
        match &self.source {
            Source::Mixture(g) => g.rms(),
            Source::Images(_) => 0.5,
        }
    }

    pub fn sample(&self, rng: &mut crate::engine::rng::Rng, n: usize) -> Vec<f32> {
        match &self.source {
            Source::Mixture(g) => g.sample(rng, n),
            Source::Images(s) => s.sample(rng, n),
        }
    }
}
