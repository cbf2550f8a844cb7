//! `images:DIR[,SIZE][,grey|rgb]`: a folder of PNG / JPEG files (sorted by name, not
//! recursive), each scaled so its shorter side is SIZE (default 32) and centre-cropped to
//! SIZE x SIZE, grey or RGB (default rgb), pixels in [-1, 1].

use std::path::Path;

use super::idx::ImageSet;
use crate::{Error, Result};

/// What `images:` takes after the colon.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderSpec {
    pub dir: String,
    pub size: usize,
    pub grey: bool,
}

impl FolderSpec {
    pub fn parse(rest: &str) -> Result<FolderSpec> {
        let mut parts = rest.split(',');
        let dir = parts.next().unwrap_or("").to_string();
        if dir.is_empty() {
            return Err(Error::input(
                "'images:' needs a folder of PNG/JPEG files, e.g. images:photos or images:photos,64,grey",
            ));
        }
        let mut spec = FolderSpec {
            dir,
            size: 32,
            grey: false,
        };
        for p in parts {
            match p {
                "grey" | "gray" => spec.grey = true,
                "rgb" => spec.grey = false,
                n => match n.parse::<usize>() {
                    Ok(s) if (4..=512).contains(&s) && s % 4 == 0 => spec.size = s,
                    _ => {
                        return Err(Error::input(format!(
                            "images:{rest}: '{n}' is not an option; expected a size (a multiple of 4 from 4 to 512), grey or rgb"
                        )));
                    }
                },
            }
        }
        Ok(spec)
    }
}

/// Scale so the shorter side is `size`, then crop the centre to `size` x `size`.
pub fn fit_square(img: &image::DynamicImage, size: u32) -> image::DynamicImage {
    let (w, h) = (img.width().max(1), img.height().max(1));
    let scale = size as f64 / w.min(h) as f64;
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(size),
        ((h as f64 * scale).round() as u32).max(size),
    );
    let resized = if (nw, nh) == (w, h) {
        img.clone()
    } else {
        img.resize_exact(nw, nh, image::imageops::FilterType::Triangle)
    };
    resized.crop_imm((nw - size) / 2, (nh - size) / 2, size, size)
}

/// Load every PNG / JPEG in the folder.
pub fn load(spec: &FolderSpec) -> Result<ImageSet> {
    let dir = Path::new(&spec.dir);
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::file(
            dir,
            format!("cannot read the folder ({e}); expected a folder of PNG/JPEG files"),
        )
    })?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
                .unwrap_or(false)
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::file(
            dir,
            "no .png, .jpg or .jpeg files here; expected a folder of images",
        ));
    }
    let c = if spec.grey { 1 } else { 3 };
    let s = spec.size;
    let mut pixels = Vec::with_capacity(files.len() * c * s * s);
    for f in &files {
        let bytes = crate::engine::error::read_file(f)?;
        let img = image::load_from_memory(&bytes)
            .map_err(|e| Error::file(f, format!("not a readable PNG/JPEG image ({e})")))?;
        let img = fit_square(&img, s as u32);
        if spec.grey {
            let g = img.to_luma8();
            pixels.extend(g.as_raw().iter().map(|&v| v as f32 / 127.5 - 1.0));
        } else {
            // interleaved RGB -> planes [3, s, s]
            let rgb = img.to_rgb8();
            let raw = rgb.as_raw();
            for ch in 0..3 {
                pixels.extend((0..s * s).map(|i| raw[i * 3 + ch] as f32 / 127.5 - 1.0));
            }
        }
    }
    Ok(ImageSet {
        n: files.len(),
        c,
        h: s,
        w: s,
        pixels,
        labels: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_strings() {
        assert_eq!(
            FolderSpec::parse("a/b").unwrap(),
            FolderSpec {
                dir: "a/b".into(),
                size: 32,
                grey: false
            }
        );
        let s = FolderSpec::parse("d,64,grey").unwrap();
        assert_eq!((s.size, s.grey), (64, true));
        for bad in ["", "d,33", "d,blue", "d,0"] {
            assert!(FolderSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn folder_of_png_and_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        // 1: a 16x8 PNG, left half black, right half white: scaled to 16x8 at size 8 ... crop
        //    keeps the middle 8 columns: 4 black then 4 white
        let mut a = image::RgbImage::new(16, 8);
        for (x, _, p) in a.enumerate_pixels_mut() {
            *p = if x < 8 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            };
        }
        a.save(dir.path().join("a.png")).unwrap();
        // 2: a solid red 20x20 JPEG (downscaled to 8x8)
        let b = image::RgbImage::from_pixel(20, 20, image::Rgb([255, 0, 0]));
        b.save(dir.path().join("b.jpg")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let set =
            load(&FolderSpec::parse(&format!("{},8", dir.path().display())).unwrap()).unwrap();
        assert_eq!((set.n, set.c, set.h, set.w), (2, 3, 8, 8));
        let img = set.image(0);
        for ch in 0..3 {
            for y in 0..8 {
                for x in 0..8 {
                    let want = if x < 4 { -1.0 } else { 1.0 };
                    assert_eq!(img[ch * 64 + y * 8 + x], want, "ch {ch} y {y} x {x}");
                }
            }
        }
        let red = set.image(1);
        assert!(red[..64].iter().all(|&v| v > 0.9), "red plane");
        assert!(red[64..].iter().all(|&v| v < -0.9), "green and blue planes");
        // grey: luma of black/white
        let g =
            load(&FolderSpec::parse(&format!("{},8,grey", dir.path().display())).unwrap()).unwrap();
        assert_eq!((g.c, g.h), (1, 8));
        assert_eq!(g.image(0)[0], -1.0);
        assert_eq!(g.image(0)[7], 1.0);
        // errors name the file and what was expected
        std::fs::write(dir.path().join("c.png"), b"\x89PNG broken").unwrap();
        let e = load(&FolderSpec::parse(&dir.path().display().to_string()).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.png") && e.contains("PNG/JPEG"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = load(&FolderSpec::parse(&empty.path().display().to_string()).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no .png"), "{e}");
        let e = load(&FolderSpec::parse("/no/such/folder").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/folder"), "{e}");
    }
}
