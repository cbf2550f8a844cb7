//! The gallery: one picture, one row per (model, steps), one column per noise seed, every row
//! from the same noise, rows labelled; a teacher's many-step row on top.

use std::path::Path;

use burn::tensor::Device;

use crate::engine::diffusion::Solver;
use crate::engine::schedule::Param;
use crate::jobs::generate::{Model, noise};
use crate::jobs::plot::Canvas;
use crate::{Error, Result};

pub struct Row {
    pub label: String,
    pub model: String,
    pub steps: usize,
    /// `cols` images, flattened.
    pub images: Vec<f32>,
}

/// The noise of column `j`: seed `seed + j`, one draw (the same as `sample --seed S+j --n 1`).
pub fn column_noise(seed: u64, cols: usize, dim: usize) -> Vec<f32> {
    (0..cols as u64)
        .flat_map(|j| noise(seed + j, 1, dim))
        .collect()
}

/// A short label for a model spec: the file stem or the asset name.
pub fn model_label(spec: &str) -> String {
    let s = spec
        .strip_prefix("asset:")
        .or_else(|| spec.strip_prefix("exact:").map(|_| "exact"))
        .unwrap_or(spec);
    let p = Path::new(s);
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or(s);
    // a run's `student.safetensors`: the run's folder names it
    match (
        stem,
        p.parent()
            .and_then(|d| d.file_name())
            .and_then(|d| d.to_str()),
    ) {
        ("student", Some(dir)) => dir.to_string(),
        _ => stem.to_string(),
    }
}

/// A model for the gallery: a spec, and the most steps to sample it at (none: its whole grid;
/// the manifest's `max_steps`, e.g. a diffusers teacher's best 50 of 1000).
#[derive(Clone, Debug)]
pub struct GalleryModel {
    pub spec: String,
    pub max_steps: Option<usize>,
}

impl GalleryModel {
    pub fn new(spec: &str) -> GalleryModel {
        GalleryModel {
            spec: spec.to_string(),
            max_steps: None,
        }
    }
}

/// Sample every row. Models whose native step count is their whole grid (teachers, exact)
/// also get a row at that many steps (or at their `max_steps`), and those rows come first.
/// A student gets rows at the step counts up to its own, and one at its own.
pub fn rows(
    models: &[GalleryModel],
    steps: &[usize],
    seed: u64,
    cols: usize,
    device: &Device,
) -> Result<(Vec<Row>, Vec<usize>)> {
    if models.is_empty() || steps.is_empty() || cols == 0 {
        return Err(Error::input(
            "the gallery needs at least one model, one step count and one column",
        ));
    }
    let mut shape: Option<Vec<usize>> = None;
    let (mut top, mut rest) = (vec![], vec![]);
    for GalleryModel { spec, max_steps } in models {
        let m = Model::load(spec, Param::Vp, None, device)?;
        let sh = m.shape();
        if sh.len() != 3 {
            return Err(Error::input(format!(
                "{spec}: the gallery draws images, and this model makes {}-D points (use `sample --png` or the app for 2-D data)",
                m.dim()
            )));
        }
        match &shape {
            None => shape = Some(sh.clone()),
            Some(s) if *s != sh => {
                return Err(Error::input(format!(
                    "{spec}: images of shape {sh:?}, but the first model's are {s:?}; a gallery compares models of one data set"
                )));
            }
            _ => {}
        }
        let z = column_noise(seed, cols, m.dim());
        let label = model_label(spec);
        let teacher = m.native_steps() == m.grid().steps;
        // every model also gets a row at the most it is sampled at: on top for a teacher
        let most = m.gallery_steps(*max_steps);
        let mut ks: Vec<usize> = steps.to_vec();
        if !ks.contains(&most) {
            if teacher {
                ks.insert(0, most);
            } else {
                ks.push(most);
            }
        }
        ks.retain(|&k| k <= most);
        for k in ks {
            let images = m.sample(&z, k, Solver::Ddim, device)?;
            let row = Row {
                label: format!("{label}  {k} STEP{}", if k == 1 { "" } else { "S" }),
                model: spec.clone(),
                steps: k,
                images,
            };
            if teacher && k == most {
                top.push(row)
            } else {
                rest.push(row)
            }
        }
    }
    top.extend(rest);
    Ok((top, shape.unwrap_or_default()))
}

/// Draw the rows as one PNG: labels on the left, images at `scale` x.
pub fn draw(rows: &[Row], shape: &[usize], scale: usize, path: &Path) -> Result<()> {
    let [c, h, w] = [shape[0], shape[1], shape[2]];
    let s = scale.max(1);
    let cols = rows
        .first()
        .map(|r| r.images.len() / (c * h * w))
        .unwrap_or(0);
    let text_scale = if h * s >= 48 { 2 } else { 1 };
    let label_w = rows
        .iter()
        .map(|r| Canvas::text_width(&r.label, text_scale))
        .max()
        .unwrap_or(0) as usize
        + 16;
    let gap = 2;
    let (cw, ch) = (w * s + gap, h * s + gap);
    let mut cv = Canvas::new(
        label_w + cols * cw + gap,
        rows.len() * ch + gap,
        [24, 24, 28],
    );
    for (r, row) in rows.iter().enumerate() {
        let y0 = gap + r * ch;
        cv.text(
            8,
            (y0 + (h * s).saturating_sub(7 * text_scale as usize) / 2) as i64,
            &row.label,
            text_scale,
            [230, 230, 235],
        );
        let px = crate::engine::kernels::reference::rgba_grid(
            &row.images,
            [cols, c, h, w],
            cols,
            -1.0,
            1.0,
        );
        cv.blit_rgba(&px, cols * w, h, s, label_w, y0, Some((w, gap)));
    }
    cv.save_png(path)
}
