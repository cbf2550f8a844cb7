//! The study's cache: one JSON record per finished run and the baselines of each tag under
//! `OUT/cache/TAG/`, and sample files cached in the work folder.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::config::{CACHE_VERSION, Job, TeacherKind};
use crate::engine::diffusion::Solver;
use crate::engine::error::{Error, Result};
use crate::engine::schedule::Param;
use crate::jobs::generate::Model;

/// One finished run's numbers (one cache file).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub version: u32,
    pub tag: String,
    pub data: String,
    pub teacher: TeacherKind,
    pub method: String,
    pub schedule: String,
    pub steps: usize,
    pub budget: u64,
    pub seed: u64,
    pub n_eval: usize,
    /// to the teacher's own 1024-step DDIM samples from the same noise (distillation error)
    pub rmse: f64,
    /// to the exact mixture's 1024-step DDIM from the same noise (equal to `rmse` for the
    /// exact teacher)
    pub rmse_exact: f64,
    /// sliced W2 to fresh data
    pub sw2: f64,
    pub seconds: f64,
    /// optimizer steps of the final phase
    pub final_steps: u64,
    /// the final phase's loss: means over LOSS_BINS equal bins of its steps
    pub final_loss: Vec<f64>,
    /// mean loss of the final phase's last quarter over its third quarter (near 1: plateaued)
    pub plateau: f64,
    /// the run's 32-step stage (the model its later phases were distilled from: TRACT's
    /// 1024 -> 32 student, BTD's 64 -> 32 one) sampled at 32 steps, RMSE to the teacher's
    /// 1024-step samples: how much of the final error was there before the last jump.
    /// None for a schedule without a 32-step stage, and in records of older versions.
    #[serde(default)]
    pub rmse_32: Option<f64>,
}

/// Baselines of one tag (the teacher's own samplers), cached.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    pub tag: String,
    pub n_eval: usize,
    /// teacher at K steps: (K, RMSE to its 1024-step samples, RMSE to exact-1024, SW2)
    pub teacher_k: Vec<(usize, f64, f64, f64)>,
    /// SW2 of the teacher's 1024-step samples (the noise floor of SW2 at n_eval)
    pub teacher_1024_sw2: f64,
    /// SW2 of the exact sampler at 1024 steps
    pub exact_1024_sw2: f64,
    /// RMSE of the teacher's 1024-step samples to the exact sampler's (learned teacher only)
    pub teacher_1024_rmse_exact: f64,
}

pub(super) fn io<T>(r: std::io::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    r.map_err(|e| Error::io(what(), e))
}

fn write_f32(path: &Path, v: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    crate::engine::error::write_atomic(path, &bytes)
}

fn read_f32(path: &Path, n: usize) -> Option<Vec<f32>> {
    let b = std::fs::read(path).ok()?;
    if b.len() != n * 4 {
        return None;
    }
    Some(
        b.chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Samples of `spec` at `steps` from `z`, cached in `path`.
pub(super) fn cached_samples(
    path: &Path,
    spec: &str,
    z: &[f32],
    steps: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    if let Some(v) = read_f32(path, z.len()) {
        return Ok(v);
    }
    let m = Model::load(spec, Param::Vp, Some(1024), device)?;
    let v = m.sample(z, steps, Solver::Ddim, device)?;
    write_f32(path, &v)?;
    Ok(v)
}

pub(super) fn cached(cache: &Path, job: &Job, n_eval: usize) -> bool {
    std::fs::read_to_string(cache.join(job.file_name()))
        .ok()
        .and_then(|s| serde_json::from_str::<RunRecord>(&s).ok())
        .is_some_and(|r| r.version == CACHE_VERSION && r.n_eval == n_eval)
}

/// Every record and baseline under `OUT/cache`.
pub fn load_cache(out: &Path) -> (Vec<RunRecord>, Vec<Baseline>) {
    let (mut recs, mut bases) = (vec![], vec![]);
    let Ok(tags) = std::fs::read_dir(out.join("cache")) else {
        return (recs, bases);
    };
    let mut paths: Vec<PathBuf> = tags
        .flatten()
        .filter_map(|t| std::fs::read_dir(t.path()).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let Ok(s) = std::fs::read_to_string(&p) else {
            continue;
        };
        if let Ok(b) = serde_json::from_str::<Baseline>(&s) {
            if b.version == CACHE_VERSION {
                bases.push(b);
            }
        } else if let Ok(r) = serde_json::from_str::<RunRecord>(&s)
            && r.version == CACHE_VERSION
        {
            recs.push(r);
        }
    }
    (recs, bases)
}
