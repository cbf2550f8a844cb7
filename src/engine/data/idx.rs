//! MNIST-format idx files (images: magic 0x803, labels: 0x801), gzipped or not, and the
//! image sets built from them: pixels scaled to [-1, 1], 28x28 optionally padded to 32x32.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::engine::error::read_file;
use crate::engine::rng::Rng;
use crate::{Error, Result};

/// Images [n, c, h, w] in [-1, 1], with labels when the set has them.
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub pixels: Vec<f32>,
    pub labels: Option<Vec<u8>>,
}

impl ImageSet {
    pub fn dim(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn image(&self, i: usize) -> &[f32] {
        &self.pixels[i * self.dim()..(i + 1) * self.dim()]
    }
    /// `n` images drawn uniformly with replacement, flattened [n, c*h*w].
    pub fn sample(&self, rng: &mut Rng, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * self.dim());
        for _ in 0..n {
            out.extend_from_slice(self.image(rng.below(self.n)));
        }
        out
    }
    /// Pad every image with `p` pixels of background (-1) on each side.
    pub fn padded(&self, p: usize) -> ImageSet {
        let (h2, w2) = (self.h + 2 * p, self.w + 2 * p);
        let mut px = vec![-1.0f32; self.n * self.c * h2 * w2];
        for k in 0..self.n * self.c {
            for y in 0..self.h {
                let src = &self.pixels[(k * self.h + y) * self.w..(k * self.h + y + 1) * self.w];
                let dst = (k * h2 + y + p) * w2 + p;
                px[dst..dst + self.w].copy_from_slice(src);
            }
        }
        ImageSet {
            n: self.n,
            c: self.c,
            h: h2,
            w: w2,
            pixels: px,
            labels: self.labels.clone(),
        }
    }
    pub fn take(&self, n: usize) -> ImageSet {
        let n = n.min(self.n);
        ImageSet {
            n,
            c: self.c,
            h: self.h,
            w: self.w,
            pixels: self.pixels[..n * self.dim()].to_vec(),
            labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
        }
    }
}

fn decompress(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = vec![];
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::file(path, format!("corrupt or truncated gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Read an idx file: (dims, bytes of u8 data).
pub fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let b = decompress(path, read_file(path)?)?;
    if b.len() < 4 || b[0] != 0 || b[1] != 0 {
        return Err(Error::file(
            path,
            "not an idx file (bad magic number); expected MNIST-format idx data",
        ));
    }
    if b[2] != 0x08 {
        return Err(Error::file(
            path,
            format!(
                "idx element type 0x{:02x} is not supported; expected unsigned bytes (0x08)",
                b[2]
            ),
        ));
    }
    let nd = b[3] as usize;
    if nd == 0 || b.len() < 4 + 4 * nd {
        return Err(Error::file(path, "truncated idx header"));
    }
    let dims: Vec<usize> = (0..nd).map(|i| be32(&b, 4 + 4 * i) as usize).collect();
    let Some(count) = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
        return Err(Error::file(
            path,
            format!("the header's dimensions {dims:?} are impossibly large"),
        ));
    };
    let data = &b[4 + 4 * nd..];
    if data.len() < count {
        return Err(Error::file(
            path,
            format!(
                "truncated: header says {dims:?} ({count} bytes) but only {} bytes follow",
                data.len()
            ),
        ));
    }
    Ok((dims, data[..count].to_vec()))
}

/// Write an idx file of u8 data (for fixtures and tests).
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> Result<()> {
    let mut b = vec![0u8, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    b.extend_from_slice(data);
    let bytes = if gzip {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        e.write_all(&b).map_err(|e| Error::io("gzip", e))?;
        e.finish().map_err(|e| Error::io("gzip", e))?
    } else {
        b
    };
    crate::engine::error::write_atomic(path, &bytes)
}

/// Find `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))]
        .into_iter()
        .find(|p| p.exists())
}

/// Load an MNIST-format directory (train or test split).
pub fn load_mnist_dir(dir: &Path, train: bool, hint: &str) -> Result<ImageSet> {
    let split = if train { "train" } else { "t10k" };
    let img = find(dir, &format!("{split}-images-idx3-ubyte")).ok_or_else(|| {
        Error::file(
            dir,
            format!("no {split}-images-idx3-ubyte[.gz] here; {hint}"),
        )
    })?;
    let (dims, data) = read_idx(&img)?;
    if dims.len() != 3 {
        return Err(Error::file(
            &img,
            format!("expected images [n, h, w], found dimensions {dims:?}"),
        ));
    }
    if dims.contains(&0) || dims[1] > 4096 || dims[2] > 4096 {
        return Err(Error::file(
            &img,
            format!(
                "holds images {dims:?} [n, h, w]; expected at least one image, each 1 to 4096 pixels a side"
            ),
        ));
    }
    let labels = match find(dir, &format!("{split}-labels-idx1-ubyte")) {
        Some(p) => {
            let (ld, l) = read_idx(&p)?;
            if ld != vec![dims[0]] {
                return Err(Error::file(
                    &p,
                    format!(
                        "{} labels for {} images",
                        ld.first().copied().unwrap_or(0),
                        dims[0]
                    ),
                ));
            }
            Some(l)
        }
        None => None,
    };
    Ok(ImageSet {
        n: dims[0],
        c: 1,
        h: dims[1],
        w: dims[2],
        pixels: data.iter().map(|&v| v as f32 / 127.5 - 1.0).collect(),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_round_trip_pad_and_errors() {
        let dir = std::env::temp_dir().join(format!("tract-idx-{}", std::process::id()));
        let data: Vec<u8> = (0..3 * 4 * 5).map(|i| (i * 4) as u8).collect();
        write_idx(
            &dir.join("train-images-idx3-ubyte.gz"),
            &[3, 4, 5],
            &data,
            true,
        )
        .unwrap();
        write_idx(
            &dir.join("train-labels-idx1-ubyte"),
            &[3],
            &[7, 1, 9],
            false,
        )
        .unwrap();
        let s = load_mnist_dir(&dir, true, "hint").unwrap();
        assert_eq!((s.n, s.c, s.h, s.w), (3, 1, 4, 5));
        assert_eq!(s.labels, Some(vec![7, 1, 9]));
        assert_eq!(s.pixels[0], -1.0);
        assert!((s.pixels[59] - (236.0 / 127.5 - 1.0)).abs() < 1e-6);
        let p = s.padded(2);
        assert_eq!((p.h, p.w), (8, 9));
        assert_eq!(p.pixels[0], -1.0);
        assert_eq!(p.image(1)[2 * 9 + 2], s.image(1)[0]);
        assert_eq!(p.image(2)[5 * 9 + 6], s.image(2)[3 * 5 + 4]);
        // errors
        let e = load_mnist_dir(&dir, false, "install dataset-fashion-mnist")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains("install dataset-fashion-mnist"),
            "{e}"
        );
        let bytes = std::fs::read(dir.join("train-labels-idx1-ubyte")).unwrap();
        std::fs::write(dir.join("cut"), &bytes[..bytes.len() - 1]).unwrap();
        assert!(
            read_idx(&dir.join("cut"))
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        std::fs::write(dir.join("junk"), b"\x89PNG....").unwrap();
        assert!(
            read_idx(&dir.join("junk"))
                .unwrap_err()
                .to_string()
                .contains("bad magic")
        );
        let gz = std::fs::read(dir.join("train-images-idx3-ubyte.gz")).unwrap();
        std::fs::write(dir.join("cutgz"), &gz[..gz.len() / 2]).unwrap();
        assert!(
            read_idx(&dir.join("cutgz"))
                .unwrap_err()
                .to_string()
                .contains("gzip")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fashion_mnist_if_installed() {
        let dir = Path::new("/usr/share/datasets/fashion-mnist");
        if !dir.exists() {
            eprintln!("SKIPPED: {} not installed", dir.display());
            return;
        }
        let s = load_mnist_dir(dir, false, "").unwrap();
        assert_eq!((s.n, s.h, s.w), (10_000, 28, 28));
        let mean = s.pixels.iter().map(|&v| v as f64).sum::<f64>() / s.pixels.len() as f64;
        assert!(mean < -0.2 && mean > -0.8, "{mean}");
        assert_eq!(
            s.labels
                .as_ref()
                .unwrap()
                .iter()
                .filter(|&&l| l == 3)
                .count(),
            1000
        );
    }
}
