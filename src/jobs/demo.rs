//! The README's main job: distill toy:ring8 with TRACT and BTD at the same budget from
//! the same starting network, then compare with the exact teacher from the same noise.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Serialize;

use crate::engine::data::Data;
use crate::engine::diffusion::Solver;
use crate::engine::distill::{DistillConfig, Method, Observer, Run};
use crate::engine::eval::metrics;
use crate::engine::schedule::Param;
use crate::jobs::generate::{Model, noise};
use crate::jobs::plot::{Panel, scatter_panels};
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub data: String,
    pub out: PathBuf,
    pub fit_samples: u64,
    pub train_samples: u64,
    pub batch: usize,
    pub n_eval: usize,
    pub seed: u64,
    pub two_step: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            data: "toy:ring8".into(),
            out: PathBuf::from("demo-out"),
            fit_samples: 1_000_000,
            train_samples: 2_000_000,
            batch: 512,
            n_eval: 10_000,
            seed: 0,
            two_step: true,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub steps: usize,
    pub rmse_to_teacher: f64,
    pub sw2: f64,
    pub max_weight_error: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DemoResult {
    pub rows: Vec<Row>,
    pub train_samples: u64,
    pub picture: PathBuf,
}

impl DemoResult {
    pub fn row(&self, name: &str) -> &Row {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .expect("row exists")
    }
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<22} {:>5} {:>16} {:>8} {:>12}\n",
            "model", "steps", "RMSE to exact-1024", "SW2", "max |dw|"
        );
        for r in &self.rows {
            s += &format!(
                "{:<22} {:>5} {:>16.4} {:>8.4} {:>12.4}\n",
                r.name, r.steps, r.rmse_to_teacher, r.sw2, r.max_weight_error
            );
        }
        s
    }
}

pub fn run(cfg: &DemoConfig, device: &Device, observer: &mut dyn Observer) -> Result<DemoResult> {
    let data = Data::parse(&cfg.data)?;
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| Error::io(format!("creating {}", cfg.out.display()), e))?;
    let mut base = DistillConfig::new(&data, Param::Vp);
    base.batch = cfg.batch;
    base.seed = cfg.seed;
    base.train_samples = cfg.train_samples;
    base.fit_samples = cfg.fit_samples;

    // 1. TRACT 1024,32,1, starting with the fit of a fresh network to the exact teacher
    let tract_dir = cfg.out.join("tract-1step");
    let tract1 = distill(base.clone(), &tract_dir, device, observer)?;
    let fit = tract_dir.join("phase0-fit.safetensors");
    let from_fit = |schedule: &str, method: Method| {
        let mut c = base.clone();
        c.schedule = schedule.into();
        c.method = method;
        c.fit_samples = 0;
        c.init = Some(fit.display().to_string());
        c
    };
    // 2. BTD 1024 -> 512 -> ... -> 1, same budget, same start
    let btd1 = distill(
        from_fit("1024,1", Method::Btd),
        &cfg.out.join("btd-1step"),
        device,
        observer,
    )?;
    // 3. TRACT 1024,32,2
    let tract2 = if cfg.two_step {
        Some(distill(
            from_fit("1024,32,2", Method::Tract),
            &cfg.out.join("tract-2step"),
            device,
            observer,
        )?)
    } else {
        None
    };

    // evaluation from one noise
    let d = data.dim();
    let z = noise(cfg.seed, cfg.n_eval, d);
    let exact = Model::load(
        &format!("exact:{}", cfg.data),
        Param::Vp,
        Some(1024),
        device,
    )?;
    let reference = exact.sample(&z, 1024, Solver::Ddim, device)?;
    let mut entries: Vec<(String, usize, Vec<f32>)> = vec![
        ("teacher (exact)".into(), 1024, reference.clone()),
        (
            "teacher (exact)".into(),
            1,
            exact.sample(&z, 1, Solver::Ddim, device)?,
        ),
    ];
    let mut add = |name: &str, path: &Path, steps: usize| -> Result<()> {
        let m = Model::load(&path.display().to_string(), Param::Vp, None, device)?;
        entries.push((
            name.into(),
            steps,
            m.sample(&z, steps, Solver::Ddim, device)?,
        ));
        Ok(())
    };
    add("BTD", &btd1, 1)?;
    add("TRACT", &tract1, 1)?;
    if let Some(t2) = &tract2 {
        add("TRACT", t2, 2)?;
    }
    let mut rows = vec![];
    for (name, steps, s) in &entries {
        let (sw2, werr, r) = metrics(&data, s, Some(&reference), cfg.seed + 1);
        rows.push(Row {
            name: name.clone(),
            steps: *steps,
            rmse_to_teacher: r.unwrap_or(0.0),
            sw2,
            max_weight_error: werr,
        });
    }
    let panels: Vec<Panel> = entries
        .iter()
        .zip(&rows)
        .map(|((name, steps, s), r)| Panel {
            title: format!(
                "{} {}",
                name.split(' ').next().unwrap_or(name).to_uppercase(),
                if *steps == 1 {
                    "1 STEP".to_string()
                } else {
                    format!("{steps} STEPS")
                }
            ),
            subtitle: format!("RMSE {:.3}  SW2 {:.3}", r.rmse_to_teacher, r.sw2),
            points: s,
            dim: d,
        })
        .collect();
    let picture = cfg.out.join("demo.png");
    scatter_panels(&panels, 2.6, &picture)?;
    let res = DemoResult {
        rows,
        train_samples: cfg.train_samples,
        picture,
    };
    crate::engine::error::write_atomic(
        &cfg.out.join("results.json"),
        serde_json::to_string_pretty(&res)
            .expect("serializes")
            .as_bytes(),
    )?;
    Ok(res)
}

fn distill(
    cfg: DistillConfig,
    dir: &Path,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<PathBuf> {
    let student = Run::new(cfg, dir, device)?.run_to_end(observer)?;
    let pts = crate::jobs::plot::read_loss_csv(&dir.join(crate::engine::distill::LOSS_FILE));
    crate::jobs::plot::loss_curve(
        &pts,
        &format!(
            "LOSS {}",
            dir.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_uppercase()
        ),
        &dir.join("loss.png"),
    )?;
    Ok(student)
}
