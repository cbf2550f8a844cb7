//! Throughput benchmarks, reported as ratios measured in one run.

use std::time::Instant;

use burn::tensor::Device;

use crate::data::Data;
use crate::distill::{DistillConfig, Event, Run};
use crate::schedule::Param;
use crate::Result;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Throughput {
    pub backend: String,
    pub batch: usize,
    pub steps: u64,
    pub samples_per_s: f64,
}

/// Distillation throughput (TRACT 1024 -> 32 steps with the exact ring8 teacher), timed
/// after `warmup` steps so shader compilation and autotuning are excluded.
pub fn distill_throughput(device: &Device, label: &str, batch: usize, warmup: u64, steps: u64) -> Result<Throughput> {
    let data = Data::parse("toy:ring8")?;
    let mut cfg = DistillConfig::new(&data, Param::Vp);
    cfg.batch = batch;
    cfg.fit_samples = batch as u64;
    cfg.schedule = "1024,32".into();
    cfg.train_samples = (warmup + steps) * batch as u64;
    cfg.ckpt_every = u64::MAX;
    let dir = std::env::temp_dir().join(format!("tract-bench-{}-{}", std::process::id(), label.replace(' ', "_")));
    let mut run = Run::new(cfg, &dir, device)?;
    let mut t0: Option<Instant> = None;
    let mut counted = 0u64;
    let mut obs = |e: &Event| {
        if let Event::Step { phase: 1, step, .. } = e {
            if *step == warmup {
                t0 = Some(Instant::now());
            } else if *step > warmup {
                counted += 1;
            }
        }
        true
    };
    run.run(false, &mut obs, None)?;
    let secs = t0.map(|t| t.elapsed().as_secs_f64()).unwrap_or(f64::NAN);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Throughput { backend: label.into(), batch, steps: counted, samples_per_s: counted as f64 * batch as f64 / secs })
}
