//! The statistics of the study: loss-curve bins and plateaus, 95% t-intervals, and the cells
//! and paired differences (TRACT-based minus BTD-based methods over matching seeds).

use serde::Serialize;

use super::cache::{Baseline, RunRecord};

/// Mean loss of bins of a curve.
pub fn bin_means(v: &[f64], bins: usize) -> Vec<f64> {
    if v.is_empty() {
        return vec![];
    }
    let bins = bins.min(v.len()).max(1);
    (0..bins)
        .map(|b| {
            let (lo, hi) = (
                b * v.len() / bins,
                ((b + 1) * v.len() / bins).max(b * v.len() / bins + 1),
            );
            v[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
        })
        .collect()
}

/// Mean of the last quarter over the third quarter of a curve (1 when too short).
pub fn plateau_ratio(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 4 {
        return 1.0;
    }
    let m = |a: usize, b: usize| v[a..b].iter().sum::<f64>() / (b - a) as f64;
    m(3 * n / 4, n) / m(n / 2, 3 * n / 4)
}

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom.
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        _ => {
            // Cornish-Fisher expansion around the normal quantile
            let z: f64 = 1.959964;
            let n = df as f64;
            z + (z.powi(3) + z) / (4.0 * n)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// Mean and the half-width of its 95% t-interval (infinite for one value).
pub fn mean_ci(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (m, f64::INFINITY);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    (m, t975(n - 1) * (var / n as f64).sqrt())
}

/// One cell of a table: a method at a budget.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub tag: String,
    pub steps: usize,
    pub budget: u64,
    pub method: String,
    pub n: usize,
    pub rmse: (f64, f64),
    pub rmse_exact: (f64, f64),
    pub sw2: (f64, f64),
    pub plateau: (f64, f64),
    pub final_steps: u64,
    /// over the records that have it, when every record of the cell has it
    pub rmse_32: Option<(f64, f64)>,
}

/// A paired difference `a - b` over the seeds both have.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub tag: String,
    pub steps: usize,
    pub budget: u64,
    pub a: String,
    pub b: String,
    pub n: usize,
    pub rmse: (f64, f64),
    pub rmse_exact: (f64, f64),
    pub sw2: (f64, f64),
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub cells: Vec<Cell>,
    pub diffs: Vec<Diff>,
    pub baselines: Vec<Baseline>,
}

pub(super) fn uniq<T: PartialEq + Clone>(v: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = vec![];
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Cells and paired differences (TRACT-based methods minus every BTD-based one).
pub fn summarize(recs: &[RunRecord], baselines: Vec<Baseline>) -> Summary {
    let mut cells = vec![];
    let mut diffs = vec![];
    let mut groups = uniq(recs.iter().map(|r| (r.tag.clone(), r.steps, r.budget)));
    groups.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (tag, steps, budget) in groups {
        let g: Vec<&RunRecord> = recs
            .iter()
            .filter(|r| r.tag == tag && r.steps == steps && r.budget == budget)
            .collect();
        let methods = uniq(g.iter().map(|r| r.method.clone()));
        for m in &methods {
            let rs: Vec<&&RunRecord> = g.iter().filter(|r| &r.method == m).collect();
            let col = |f: &dyn Fn(&RunRecord) -> f64| {
                mean_ci(&rs.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            cells.push(Cell {
                tag: tag.clone(),
                steps,
                budget,
                method: m.clone(),
                n: rs.len(),
                rmse: col(&|r| r.rmse),
                rmse_exact: col(&|r| r.rmse_exact),
                sw2: col(&|r| r.sw2),
                plateau: col(&|r| r.plateau),
                final_steps: rs[0].final_steps,
                rmse_32: rs
                    .iter()
                    .map(|r| r.rmse_32)
                    .collect::<Option<Vec<f64>>>()
                    .map(|v| mean_ci(&v)),
            });
        }
        // TRACT-based minus every BTD-based method; a variant (`m+switch`) minus its base
        let mut pairs: Vec<(String, String)> = vec![];
        for a in methods.iter().filter(|m| m.starts_with("tract")) {
            for b in methods.iter().filter(|m| m.starts_with("btd")) {
                pairs.push((a.clone(), b.clone()));
            }
        }
        for a in methods.iter().filter(|m| m.contains('+')) {
            let base = a.split('+').next().unwrap_or("").to_string();
            if methods.contains(&base) {
                pairs.push((a.clone(), base));
            }
        }
        for (a, b) in &pairs {
            {
                let mut d = (vec![], vec![], vec![]);
                for ra in g.iter().filter(|r| &r.method == a) {
                    if let Some(rb) = g.iter().find(|r| &r.method == b && r.seed == ra.seed) {
                        d.0.push(ra.rmse - rb.rmse);
                        d.1.push(ra.rmse_exact - rb.rmse_exact);
                        d.2.push(ra.sw2 - rb.sw2);
                    }
                }
                if d.0.is_empty() {
                    continue;
                }
                diffs.push(Diff {
                    tag: tag.clone(),
                    steps,
                    budget,
                    a: a.clone(),
                    b: b.clone(),
                    n: d.0.len(),
                    rmse: mean_ci(&d.0),
                    rmse_exact: mean_ci(&d.1),
                    sw2: mean_ci(&d.2),
                });
            }
        }
    }
    Summary {
        cells,
        diffs,
        baselines,
    }
}
