//! What defines a run (saved in every checkpoint, so a checkpoint says how it was made),
//! with the paper's defaults.

use serde::{Deserialize, Serialize};

use super::Recipe;
use crate::engine::data::{Data, Source};
use crate::engine::model::{MlpConfig, NetConfig, Prediction, UnetConfig};
use crate::engine::optim::AdamConfig;
use crate::engine::schedule::Param;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Tract,
    Btd,
    /// Train a teacher on the data (docs/algorithm.md, "Teacher training"): one `fit` phase,
    /// target x0.
    Teacher,
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tract" => Ok(Method::Tract),
            "btd" => Ok(Method::Btd),
            "teacher" => Ok(Method::Teacher),
            o => Err(Error::input(format!(
                "unknown method '{o}': expected tract or btd"
            ))),
        }
    }
}

/// Everything that defines a run; saved in every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DistillConfig {
    pub data: String,
    /// "exact" (closed-form mixture denoiser) or a model file path.
    pub teacher: String,
    /// Start the student from this model file instead of fitting one to the teacher.
    pub init: Option<String>,
    pub method: Method,
    pub schedule: String,
    pub param: Param,
    /// Distillation budget in samples, across all phases (fit not included).
    pub train_samples: u64,
    /// Samples for fitting a fresh network to the exact teacher (0 with --init or a model teacher).
    pub fit_samples: u64,
    pub batch: usize,
    pub seed: u64,
    pub adam: AdamConfig,
    pub mu_s: f64,
    pub ema_eps: f64,
    /// Fixed inference EMA momentum instead of eps^(1/N).
    pub mu_i: Option<f64>,
    /// Relative budget per phase ("auto": the paper's 1:5 for two phases, equal otherwise).
    pub phase_split: Option<Vec<f64>>,
    pub clip_x0: bool,
    pub net: NetConfig,
    pub ckpt_every: u64,
    /// Recipe switches (issue #18), all off by default; absent from older configs.
    #[serde(default, skip_serializing_if = "Recipe::is_default")]
    pub recipe: Recipe,
    /// A diffusers teacher's student: what its network predicts (None: as the teacher).
    /// docs/diffusers.md, "The student's parametrisation".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_prediction: Option<Prediction>,
    /// Data-parallel runs (`mpirun -np N`): the rank counts the run used, each from the global
    /// step it (re)started at; empty for a run only ever in one process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranks: Vec<RankSpan>,
}

/// From global step `from_step` on, the run used `ranks` processes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RankSpan {
    pub from_step: u64,
    pub ranks: usize,
}

/// The default distillation schedule: VP the paper's 1024,32,1 (Algorithm 1); VE 40,1, one
/// phase from the 40-step Karras grid to 1 step, as the paper distills its EDM teachers
/// ("distilling from 40 steps (79 NFEs with Runge-Kutta) to 1 step"). On ring8 with the exact
/// VE teacher at 500k samples, 40,8,1 only ties 40,1 (RMSE 0.1210 vs 0.1211) for an extra phase.
pub fn default_schedule(param: Param) -> &'static str {
    match param {
        Param::Vp => "1024,32,1",
        Param::Ve => "40,1",
    }
}

impl DistillConfig {
    /// Defaults for a data set: the paper's hyper-parameters, an MLP sized for 2-D data.
    pub fn new(data: &Data, param: Param) -> Self {
        DistillConfig {
            data: data.spec.clone(),
            teacher: "exact".into(),
            init: None,
            method: Method::Tract,
            schedule: default_schedule(param).into(),
            param,
            train_samples: 2_000_000,
            fit_samples: 1_000_000,
            // images: the paper's batch and learning rate for UNets; 2-D data: a small MLP
            batch: if data.is_images() { 64 } else { 512 },
            seed: 0,
            adam: AdamConfig {
                lr: if data.is_images() { 2e-4 } else { 1e-3 },
                ..Default::default()
            },
            mu_s: 0.5,
            ema_eps: 1e-4,
            mu_i: None,
            phase_split: None,
            clip_x0: data.is_images(),
            net: match &data.source {
                Source::Images(s) => NetConfig::Unet(UnetConfig::small(s.c, s.h, s.w, param)),
                Source::Mixture(_) => {
                    NetConfig::Mlp(MlpConfig::new(data.dim(), param, data.sigma_data()))
                }
            },
            ckpt_every: 500,
            recipe: Recipe::default(),
            student_prediction: None,
            ranks: vec![],
        }
    }
}
