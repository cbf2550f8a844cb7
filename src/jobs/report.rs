//! `tract-studio report`: the paper's ablations in small, on a 2-D mixture with the exact
//! teacher, over several seeds (mean and spread), regenerated from scratch by one command.
//!
//! - Table 1 shape: TRACT vs BTD at 1 and 2 steps, same start, same budget.
//! - Table 3 shape: the self-teacher EMA mu_S in {0, 0.1, 0.5, 0.9, 0.99}.
//! - Table 5 shape: schedules at a fixed total budget.
//! - A.7: the inference EMA from the eps heuristic vs fixed mu_I.
//!
//! Every run of a seed starts from the same network fitted to the exact teacher; every model
//! is evaluated from the same noise against the exact 1024-step DDIM teacher (RMSE) and
//! against fresh data (sliced W2).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Serialize;

use crate::engine::data::Data;
use crate::engine::diffusion::Solver;
use crate::engine::distill::{DistillConfig, Method, Observer, Run};
use crate::engine::eval::metrics;
use crate::engine::schedule::Param;
use crate::jobs::generate::{Model, noise};
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct ReportConfig {
    pub data: String,
    pub out: PathBuf,
    pub seeds: Vec<u64>,
    pub train_samples: u64,
    pub fit_samples: u64,
    pub batch: usize,
    pub n_eval: usize,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            data: "toy:ring8".into(),
            out: PathBuf::from("report-out"),
            seeds: vec![0, 1, 2],
            train_samples: 500_000,
            fit_samples: 1_000_000,
            batch: 512,
            n_eval: 4000,
        }
    }
}

/// One distillation setting.
#[derive(Clone, Debug, Serialize)]
pub struct Setting {
    pub key: String,
    pub method: String,
    pub schedule: String,
    pub mu_s: f64,
    pub mu_i: Option<f64>,
    /// sampling steps
    pub steps: usize,
}

fn setting(key: &str, method: Method, schedule: &str, steps: usize) -> Setting {
    Setting {
        key: key.into(),
        method: if method == Method::Btd {
            "btd"
        } else {
            "tract"
        }
        .into(),
        schedule: schedule.into(),
        mu_s: 0.5,
        mu_i: None,
        steps,
    }
}

/// Every setting the tables use (keys are unique; tables share the base run).
pub fn settings() -> Vec<Setting> {
    let mut v = vec![
        setting("tract-1", Method::Tract, "1024,32,1", 1),
        setting("btd-1", Method::Btd, "1024,1", 1),
        setting("tract-2", Method::Tract, "1024,32,2", 2),
        setting("btd-2", Method::Btd, "1024,2", 2),
    ];
    for mu in [0.0, 0.1, 0.9, 0.99] {
        v.push(Setting {
            mu_s: mu,
            ..setting(&format!("mu_s={mu}"), Method::Tract, "1024,32,1", 1)
        });
    }
    for s in [
        "1024,1",
        "4096,256,16,1",
        "4096,512,64,8,1",
        "1024,256,64,16,4,1",
    ] {
        v.push(setting(&format!("schedule={s}"), Method::Tract, s, 1));
    }
    for mu in [0.0, 0.99, 0.999] {
        v.push(Setting {
            mu_i: Some(mu),
            ..setting(&format!("mu_i={mu}"), Method::Tract, "1024,32,1", 1)
        });
    }
    v
}

/// A table of the report: its name, its title and its rows (label, setting key).
pub type Table = (&'static str, &'static str, Vec<(String, String)>);

/// The report's tables.
pub fn tables() -> Vec<Table> {
    let r = |l: &str, k: &str| (l.to_string(), k.to_string());
    vec![
        (
            "table1",
            "Table 1 shape: TRACT vs BTD at the same budget",
            vec![
                r("TRACT 1024,32,1 (1 step)", "tract-1"),
                r("BTD 1024->1 (1 step)", "btd-1"),
                r("TRACT 1024,32,2 (2 steps)", "tract-2"),
                r("BTD 1024->2 (2 steps)", "btd-2"),
            ],
        ),
        (
            "table3",
            "Table 3 shape: self-teacher EMA mu_S (TRACT 1024,32,1)",
            vec![
                r("mu_S = 0", "mu_s=0"),
                r("mu_S = 0.1", "mu_s=0.1"),
                r("mu_S = 0.5 (default)", "tract-1"),
                r("mu_S = 0.9", "mu_s=0.9"),
                r("mu_S = 0.99", "mu_s=0.99"),
            ],
        ),
        (
            "table5",
            "Table 5 shape: schedules at a fixed total budget (TRACT, 1 step)",
            vec![
                r("1024,1", "schedule=1024,1"),
                r("1024,32,1 (default)", "tract-1"),
                r("4096,256,16,1", "schedule=4096,256,16,1"),
                r("4096,512,64,8,1", "schedule=4096,512,64,8,1"),
                r("1024,256,64,16,4,1", "schedule=1024,256,64,16,4,1"),
            ],
        ),
        (
            "a7",
            "A.7: inference EMA (TRACT 1024,32,1)",
            vec![
                r("eps heuristic mu_I = eps^(1/N) (default)", "tract-1"),
                r("no EMA (mu_I = 0)", "mu_i=0"),
                r("fixed mu_I = 0.99", "mu_i=0.99"),
                r("fixed mu_I = 0.999", "mu_i=0.999"),
            ],
        ),
    ]
}

#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    pub key: String,
    pub seed: u64,
    pub rmse: f64,
    pub sw2: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub data: String,
    pub seeds: Vec<u64>,
    pub train_samples: u64,
    pub fit_samples: u64,
    pub batch: usize,
    pub n_eval: usize,
    /// the exact teacher's own 1-step DDIM, per seed (RMSE, SW2)
    pub teacher_1step: Vec<(f64, f64)>,
    pub teacher_1024_sw2: Vec<f64>,
    pub runs: Vec<Measured>,
}

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

impl Report {
    pub fn stat(&self, key: &str) -> ((f64, f64), (f64, f64)) {
        let r: Vec<&Measured> = self.runs.iter().filter(|m| m.key == key).collect();
        (
            mean_std(&r.iter().map(|m| m.rmse).collect::<Vec<_>>()),
            mean_std(&r.iter().map(|m| m.sw2).collect::<Vec<_>>()),
        )
    }

    /// The tables as Markdown.
    pub fn markdown(&self) -> String {
        let (t1, _) = mean_std(&self.teacher_1step.iter().map(|x| x.0).collect::<Vec<_>>());
        let mut s = format!(
            "Data {}, exact teacher (VP, 1024-step grid), {} distillation samples per run (batch {}), \
             each seed's runs start from one network fitted to the exact teacher ({} samples). \
             Seeds {:?}; mean +- standard deviation over seeds; {} samples from the same noise per model. \
             RMSE: to the exact teacher's 1024-step DDIM samples from the same noise \
             (the exact teacher's own 1-step DDIM: {:.3}); SW2: sliced W2 to fresh data \
             (exact 1024-step teacher: {:.3}).\n\n",
            self.data,
            self.train_samples,
            self.batch,
            self.fit_samples,
            self.seeds,
            self.n_eval,
            t1,
            mean_std(&self.teacher_1024_sw2).0
        );
        for (_, title, rows) in tables() {
            s += &format!("### {title}\n\n| setting | RMSE to exact-1024 | SW2 |\n|---|---|---|\n");
            for (label, key) in rows {
                let ((rm, rs), (wm, ws)) = self.stat(&key);
                s += &format!("| {label} | {rm:.4} +- {rs:.4} | {wm:.4} +- {ws:.4} |\n");
            }
            s += "\n";
        }
        s
    }
}

/// Run every setting for every seed, write report.json, tables.md and one PNG per table.
pub fn run(
    cfg: &ReportConfig,
    device: &Device,
    observer: &mut dyn Observer,
    log: &mut dyn FnMut(&str),
) -> Result<Report> {
    let data = Data::parse(&cfg.data)?;
    data.exact()?;
    let work = cfg.out.join("runs");
    std::fs::create_dir_all(&work)
        .map_err(|e| Error::io(format!("creating {}", work.display()), e))?;
    let exact = Model::load(
        &format!("exact:{}", cfg.data),
        Param::Vp,
        Some(1024),
        device,
    )?;
    let mut report = Report {
        data: cfg.data.clone(),
        seeds: cfg.seeds.clone(),
        train_samples: cfg.train_samples,
        fit_samples: cfg.fit_samples,
        batch: cfg.batch,
        n_eval: cfg.n_eval,
        teacher_1step: vec![],
        teacher_1024_sw2: vec![],
        runs: vec![],
    };
    for &seed in &cfg.seeds {
        let z = noise(1000 + seed, cfg.n_eval, data.dim());
        let reference = exact.sample(&z, 1024, Solver::Ddim, device)?;
        let (sw_ref, _, _) = metrics(&data, &reference, None, seed + 7);
        let one = exact.sample(&z, 1, Solver::Ddim, device)?;
        let (sw1, _, r1) = metrics(&data, &one, Some(&reference), seed + 7);
        report.teacher_1step.push((r1.unwrap_or(0.0), sw1));
        report.teacher_1024_sw2.push(sw_ref);
        // the shared start: the first run fits a fresh network to the exact teacher; the
        // others start from that fit
        let mut fit: Option<PathBuf> = None;
        log(&format!(
            "seed {seed}: fitting the start network, then {} runs",
            settings().len()
        ));
        for s in settings() {
            let t = web_time::Instant::now();
            let mut c = DistillConfig::new(&data, Param::Vp);
            c.seed = seed;
            c.batch = cfg.batch;
            c.train_samples = cfg.train_samples;
            c.fit_samples = if fit.is_none() { cfg.fit_samples } else { 0 };
            c.init = fit.as_ref().map(|f| f.display().to_string());
            c.schedule = s.schedule.clone();
            c.method = if s.method == "btd" {
                Method::Btd
            } else {
                Method::Tract
            };
            c.mu_s = s.mu_s;
            c.mu_i = s.mu_i;
            let dir = work.join(format!("seed{seed}-{}", s.key.replace([',', '='], "_")));
            let student = distill(c, &dir, device, observer)?;
            let m = Model::load(&student.display().to_string(), Param::Vp, None, device)?;
            let out = m.sample(&z, s.steps, Solver::Ddim, device)?;
            let (sw2, _, r) = metrics(&data, &out, Some(&reference), seed + 7);
            let meas = Measured {
                key: s.key.clone(),
                seed,
                rmse: r.unwrap_or(0.0),
                sw2,
                seconds: t.elapsed().as_secs_f64(),
            };
            log(&format!(
                "seed {seed} {:<28} RMSE {:.4}  SW2 {:.4}  ({:.0}s)",
                s.key, meas.rmse, meas.sw2, meas.seconds
            ));
            report.runs.push(meas);
            if fit.is_none() {
                let keep = work.join(format!("seed{seed}-fit.safetensors"));
                std::fs::copy(dir.join("phase0-fit.safetensors"), &keep)
                    .map_err(|e| Error::io(format!("keeping the fit of {}", dir.display()), e))?;
                fit = Some(keep);
            }
            // keep the disk small: only the metrics matter here
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&student);
        }
        if let Some(f) = fit {
            let _ = std::fs::remove_file(f);
        }
    }
    write_outputs(&report, &cfg.out)?;
    let _ = std::fs::remove_dir(&work);
    Ok(report)
}

/// report.json, tables.md and one bar chart per table.
pub fn write_outputs(report: &Report, out: &Path) -> Result<()> {
    crate::engine::error::write_atomic(
        &out.join("report.json"),
        serde_json::to_string_pretty(report)
            .expect("serializes")
            .as_bytes(),
    )?;
    crate::engine::error::write_atomic(&out.join("tables.md"), report.markdown().as_bytes())?;
    for (name, title, rows) in tables() {
        let bars: Vec<crate::jobs::plot::Bar> = rows
            .iter()
            .map(|(label, key)| {
                let ((m, s), _) = report.stat(key);
                crate::jobs::plot::Bar {
                    label: label.clone(),
                    mean: m,
                    spread: s,
                }
            })
            .collect();
        crate::jobs::plot::bars(
            &bars,
            &title.to_uppercase(),
            "RMSE TO EXACT-1024 (MEAN, BAR = 1 STD OVER SEEDS)",
            &out.join(format!("{name}.png")),
        )?;
    }
    Ok(())
}

fn distill(
    cfg: DistillConfig,
    dir: &Path,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    let student = Run::new(cfg, dir, device)?.run_to_end(observer)?;
    // a copy outside the run folder, which the caller may delete
    let keep = dir.with_extension("safetensors");
    std::fs::copy(&student, &keep)
        .map_err(|e| Error::io(format!("copying {}", student.display()), e))?;
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_unique_and_tables_refer_to_them() {
        let s = settings();
        let keys: std::collections::HashSet<_> = s.iter().map(|x| x.key.clone()).collect();
        assert_eq!(keys.len(), s.len());
        for (_, _, rows) in tables() {
            for (_, k) in rows {
                assert!(keys.contains(&k), "{k}");
            }
        }
        for x in &s {
            crate::engine::schedule::Schedule::parse(&x.schedule).unwrap();
        }
        let (m, sd) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
    }
}
