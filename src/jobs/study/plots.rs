//! The plots (budget sweeps with intervals, paired differences, final-phase loss curves) and
//! the writing of tables.md, study.json and every plot from the cache.

use std::path::Path;

use super::cache::{RunRecord, load_cache};
use super::stats::{Cell, Summary, summarize, uniq};
use super::tables::budget_label;
use crate::engine::error::Result;

const COLORS: [[u8; 3]; 6] = [
    [200, 60, 30],
    [30, 80, 170],
    [40, 140, 60],
    [150, 50, 150],
    [20, 140, 150],
    [120, 120, 20],
];

/// A method's color, the same in every plot (other names: by position).
fn color_of(name: &str, i: usize) -> [u8; 3] {
    match name {
        "tract" | "tract - btd" => COLORS[2],
        "btd" => COLORS[0],
        "btd-sh" | "tract - btd-sh" => COLORS[1],
        _ => COLORS[3 + i % 3],
    }
}

/// A plot's line: its name and its (x, y, ci half-width) points.
type Series = (String, Vec<(f64, f64, f64)>);

/// A tick value with 3 significant digits below 1 (0.000213, not 0.000), 3 decimals above,
/// exponent form below 1e-4.
pub(super) fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || a >= 1.0 {
        format!("{v:.3}")
    } else if a >= 1e-4 {
        let digits = (2 - a.log10().floor() as i64).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.2e}")
    }
}

/// A line plot: series of (x, y, ci) points, log10 x (and optionally log10 y), a legend.
fn line_plot(
    series: &[Series],
    title: &str,
    xlabel: &str,
    log_x: bool,
    log_y: bool,
    zero_line: bool,
    path: &Path,
) -> Result<()> {
    use crate::jobs::plot::Canvas;
    let (w, h, l, r, t, b) = (760i64, 420i64, 70i64, 200i64, 40i64, 40i64);
    let mut cv = Canvas::new(w as usize, h as usize, [255, 255, 255]);
    cv.text(l, 10, title, 2, [20, 20, 30]);
    let fx = |x: f64| if log_x { x.max(1e-300).log10() } else { x };
    let fy = |y: f64| if log_y { y.max(1e-300).log10() } else { y };
    let pts: Vec<(f64, f64, f64)> = series.iter().flat_map(|s| s.1.iter().cloned()).collect();
    if pts.is_empty() {
        return cv.save_png(path);
    }
    let xs: Vec<f64> = pts.iter().map(|p| fx(p.0)).collect();
    let ys: Vec<f64> = pts
        .iter()
        .flat_map(|p| {
            let c = if p.2.is_finite() { p.2 } else { 0.0 };
            [fy(p.1 - c), fy(p.1 + c), fy(p.1)]
        })
        .filter(|v| v.is_finite())
        .chain(if zero_line { Some(0.0) } else { None })
        .collect();
    let (mut x0, mut x1) = (
        xs.iter().cloned().fold(f64::MAX, f64::min),
        xs.iter().cloned().fold(f64::MIN, f64::max),
    );
    if x1 - x0 < 1e-12 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let pad = (x1 - x0) * 0.05;
    let (x0, x1) = (x0 - pad, x1 + pad);
    let (mut y0, mut y1) = (
        ys.iter().cloned().fold(f64::MAX, f64::min),
        ys.iter().cloned().fold(f64::MIN, f64::max),
    );
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.06;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (pw, ph) = (w - l - r, h - t - b);
    let sx = |x: f64| l as f64 + (fx(x) - x0) / (x1 - x0) * pw as f64;
    let sy = |y: f64| (t + ph) as f64 - (fy(y) - y0) / (y1 - y0) * ph as f64;
    cv.frame(l, t, pw, ph, [150, 150, 160]);
    // y ticks: 5 values
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * i as f64 / 4.0;
        let y = (t + ph) as f64 - (v - y0) / (y1 - y0) * ph as f64;
        cv.rect(l, y as i64, pw, 1, [236, 236, 240]);
        let shown = if log_y { 10f64.powf(v) } else { v };
        cv.text(4, y as i64 - 3, &tick_label(shown), 1, [90, 90, 100]);
    }
    if zero_line && !log_y {
        let y = sy(0.0);
        cv.line(l as f64, y, (l + pw) as f64, y, [60, 60, 60]);
    }
    // x ticks at each distinct x
    let mut xt: Vec<f64> = pts.iter().map(|p| p.0).collect();
    xt.sort_by(|a, b| a.total_cmp(b));
    xt.dedup();
    if xt.len() <= 12 {
        for x in &xt {
            let px = sx(*x);
            cv.rect(px as i64, t + ph, 1, 4, [90, 90, 100]);
            let lab = if log_x {
                budget_label(*x as u64)
            } else {
                format!("{x:.2}")
            };
            cv.text(px as i64 - 8, t + ph + 8, &lab, 1, [90, 90, 100]);
        }
    }
    cv.text(l, h - 16, xlabel, 1, [90, 90, 100]);
    for (i, (name, s)) in series.iter().enumerate() {
        let c = color_of(name, i);
        let mut prev: Option<(f64, f64)> = None;
        for &(x, y, ci) in s {
            let (px, py) = (sx(x), sy(y));
            if let Some((qx, qy)) = prev {
                cv.line(qx, qy, px, py, c);
            }
            if ci.is_finite() && ci > 0.0 {
                let (a, bb) = (sy(y - ci), sy(y + ci));
                cv.line(px, a, px, bb, c);
                cv.line(px - 4.0, a, px + 4.0, a, c);
                cv.line(px - 4.0, bb, px + 4.0, bb, c);
            }
            cv.rect(px as i64 - 2, py as i64 - 2, 5, 5, c);
            prev = Some((px, py));
        }
        let ly = t + 10 + i as i64 * 18;
        cv.rect(l + pw + 12, ly, 14, 4, c);
        cv.text(l + pw + 32, ly - 2, &name.to_uppercase(), 1, [30, 30, 40]);
    }
    cv.save_png(path)
}

/// tables.md, study.json and the plots of everything in the cache.
pub fn write_outputs(out: &Path) -> Result<Summary> {
    let (recs, bases) = load_cache(out);
    let sum = summarize(&recs, bases);
    crate::engine::error::write_atomic(
        &out.join("study.json"),
        serde_json::to_string_pretty(&sum)
            .expect("serializes")
            .as_bytes(),
    )?;
    crate::engine::error::write_atomic(&out.join("tables.md"), sum.markdown().as_bytes())?;
    let tags = uniq(sum.cells.iter().map(|c| (c.tag.clone(), c.steps)));
    for (tag, steps) in tags {
        let cells: Vec<&Cell> = sum
            .cells
            .iter()
            .filter(|c| c.tag == tag && c.steps == steps)
            .collect();
        let methods = uniq(cells.iter().map(|c| c.method.clone()));
        let series: Vec<Series> = methods
            .iter()
            .map(|m| {
                (
                    m.clone(),
                    cells
                        .iter()
                        .filter(|c| &c.method == m)
                        .map(|c| (c.budget as f64, c.rmse.0, c.rmse.1))
                        .collect(),
                )
            })
            .collect();
        line_plot(
            &series,
            &format!("{tag}: {steps}-STEP RMSE TO TEACHER-1024 (95% CI)").to_uppercase(),
            "DISTILLATION BUDGET (SAMPLES, LOG SCALE)",
            true,
            true,
            false,
            &out.join(format!("{tag}-k{steps}-rmse.png")),
        )?;
        let dser: Vec<Series> = uniq(
            sum.diffs
                .iter()
                .filter(|d| d.tag == tag && d.steps == steps)
                .map(|d| (d.a.clone(), d.b.clone())),
        )
        .into_iter()
        .map(|(a, b)| {
            (
                format!("{a} - {b}"),
                sum.diffs
                    .iter()
                    .filter(|d| d.tag == tag && d.steps == steps && d.a == a && d.b == b)
                    .map(|d| (d.budget as f64, d.rmse.0, d.rmse.1))
                    .collect(),
            )
        })
        .collect();
        line_plot(
            &dser,
            &format!("{tag}: PAIRED RMSE DIFFERENCE, <0 = TRACT BETTER").to_uppercase(),
            "DISTILLATION BUDGET (SAMPLES, LOG SCALE)",
            true,
            false,
            true,
            &out.join(format!("{tag}-k{steps}-diff.png")),
        )?;
        // final-phase loss curves: mean over seeds per method, x = fraction of the phase
        for b in uniq(cells.iter().map(|c| c.budget)) {
            let lser: Vec<Series> = methods
                .iter()
                .filter_map(|m| {
                    let rs: Vec<&RunRecord> = recs
                        .iter()
                        .filter(|r| {
                            r.tag == tag && r.steps == steps && r.budget == b && &r.method == m
                        })
                        .collect();
                    let n = rs.iter().map(|r| r.final_loss.len()).min()?;
                    if n == 0 {
                        return None;
                    }
                    let pts = (0..n)
                        .map(|i| {
                            let v: Vec<f64> = rs.iter().map(|r| r.final_loss[i]).collect();
                            (
                                (i as f64 + 0.5) / n as f64,
                                v.iter().sum::<f64>() / v.len() as f64,
                                0.0,
                            )
                        })
                        .collect();
                    Some((m.clone(), pts))
                })
                .collect();
            line_plot(
                &lser,
                &format!(
                    "{tag} {}: FINAL-PHASE LOSS (MEAN OVER SEEDS)",
                    budget_label(b)
                )
                .to_uppercase(),
                "FRACTION OF THE FINAL PHASE",
                false,
                true,
                false,
                &out.join(format!("{tag}-k{steps}-loss-{}.png", budget_label(b))),
            )?;
        }
    }
    Ok(sum)
}
