//! `tract-studio study`: the paired-seed TRACT vs BTD study (issue #18), and the recipe
//! switches `distill` takes.

use std::path::PathBuf;

use crate::engine::distill::DistillConfig;
use crate::engine::error::{Error, Result};
use crate::jobs::study::{self, StudyConfig, StudyMethod};

/// The command line of `tract-studio study`.
#[derive(clap::Args, Debug)]
#[command(after_help = super::examples(&[
    ("TRACT vs BTD on toy:ring8 at one budget, 2 paired seeds", "tract-studio study --methods tract,btd --budgets 500000 --seeds 0,1 --out study-out"),
    ("only the tables and plots again, from the cache", "tract-studio study --out study-out --aggregate-only"),
]))]
pub struct StudyArgs {
    /// a mixture with an exact teacher: toy:ring8, toy:grid5, toy:mix16 or gmm:PATH
    #[arg(long, default_value = "toy:ring8")]
    pub data: String,
    /// exact (the closed-form teacher) or learned (an MLP trained on the data; students start as its copy)
    #[arg(long, default_value = "exact")]
    pub teacher: String,
    /// tract, btd, btd-sh, each with optional +flat, +top=W, +sum, +clip=C, +keep-adam, +anneal, +noema, +eps=E, +s=A/B/C (another schedule), +per-phase (the budget is per phase)
    #[arg(long, value_delimiter = ',', default_value = "tract,btd,btd-sh")]
    pub methods: Vec<String>,
    /// distillation budgets in samples
    #[arg(long, value_delimiter = ',', default_value = "500000,2000000,8000000")]
    pub budgets: Vec<u64>,
    /// paired seeds: every method runs on each
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4,5,6,7")]
    pub seeds: Vec<u64>,
    /// sampling steps of the students (1 and/or 2)
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub steps: Vec<usize>,
    /// samples per student for the metrics
    #[arg(long, default_value_t = 20_000)]
    pub n_eval: usize,
    /// samples of each seed's fit to the exact teacher (exact teacher)
    #[arg(long, default_value_t = 1_000_000)]
    pub fit_samples: u64,
    /// training samples of the learned teacher
    #[arg(long, default_value_t = 8_000_000)]
    pub teacher_samples: u64,
    /// samples per optimizer step
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// tables, plots and the cache of finished runs (scripts/study.sh writes the published
    /// study into docs/results/study)
    #[arg(long, default_value = "study-out")]
    pub out: PathBuf,
    /// start networks, reference samples and run folders (outside the repository)
    #[arg(long, default_value = "/tmp/tract-study-work")]
    pub work: PathBuf,
    /// K/N: run only every N-th job starting at K (for N processes side by side)
    #[arg(long, default_value = "0/1")]
    pub shard: String,
    /// only rewrite tables and plots from the cache
    #[arg(long)]
    pub aggregate_only: bool,
    #[arg(long, default_value = "auto", value_parser = super::choices::pick::<super::choices::DeviceArg>())]
    pub(super) device: super::choices::DeviceArg,
}

impl StudyArgs {
    pub fn config(&self) -> Result<StudyConfig> {
        let (k, n) = self
            .shard
            .split_once('/')
            .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            .filter(|(k, n)| *n > 0 && k < n)
            .ok_or_else(|| {
                Error::input(format!("--shard {}: expected K/N with K < N", self.shard))
            })?;
        if self.seeds.is_empty() || self.budgets.is_empty() || self.methods.is_empty() {
            return Err(Error::input(
                "--seeds, --budgets and --methods must be non-empty",
            ));
        }
        if self.budgets.contains(&0) || self.n_eval < 2 || self.batch == 0 {
            return Err(Error::input(
                "budgets, --n-eval and --batch must be positive",
            ));
        }
        if self.steps.iter().any(|&s| !(1..=32).contains(&s)) {
            return Err(Error::input("--steps: 1 to 32"));
        }
        Ok(StudyConfig {
            data: self.data.clone(),
            teacher: self.teacher.parse()?,
            methods: self
                .methods
                .iter()
                .map(|m| StudyMethod::parse(m))
                .collect::<Result<_>>()?,
            budgets: self.budgets.clone(),
            seeds: self.seeds.clone(),
            steps: self.steps.clone(),
            n_eval: self.n_eval,
            fit_samples: self.fit_samples,
            teacher_samples: self.teacher_samples,
            batch: self.batch,
            out: self.out.clone(),
            work: self.work.clone(),
            shard: (k, n),
        })
    }
}

/// The recipe switches of `tract-studio distill` (issue #18; all off by default).
#[derive(clap::Args, Debug, Default)]
pub struct RecipeArgs {
    /// Salimans & Ho's BTD recipe: lr linearly to 0 within each phase, no inference EMA, fresh Adam
    #[arg(long)]
    pub salimans_ho: bool,
    /// the learning rate decays linearly to 0 within each phase
    #[arg(long)]
    pub lr_anneal: bool,
    /// keep Adam's state across phases (ml-tract) instead of restarting it
    #[arg(long)]
    pub keep_adam: bool,
    /// loss weight 1 at every t instead of max(1, SNR)
    #[arg(long)]
    pub flat_weight: bool,
    /// multiply the loss weight at t = T in the final phase by this
    #[arg(long)]
    pub final_t_weight: Option<f64>,
    /// sum the squared error over dimensions instead of averaging it (ml-tract)
    #[arg(long)]
    pub loss_sum: bool,
    /// clip x0 predictions in the training targets to [-C, C] (low-dimensional data)
    #[arg(long)]
    pub clip_x0_range: Option<f64>,
}

impl RecipeArgs {
    pub fn apply(&self, c: &mut DistillConfig) -> Result<()> {
        let r = &mut c.recipe;
        if self.salimans_ho {
            r.lr_anneal = true;
            c.mu_i = Some(0.0);
        }
        r.lr_anneal |= self.lr_anneal;
        r.keep_adam |= self.keep_adam;
        r.flat_weight |= self.flat_weight;
        r.loss_sum |= self.loss_sum;
        if let Some(w) = self.final_t_weight {
            r.final_t_weight = w;
        }
        if self.clip_x0_range.is_some() {
            r.clip_x0_range = self.clip_x0_range;
        }
        r.validate()
    }
}

pub(super) fn study_cmd(a: StudyArgs) -> anyhow::Result<()> {
    let cfg = a.config()?;
    if a.aggregate_only {
        let s = study::write_outputs(&cfg.out)?;
        println!("{}", s.markdown());
        return Ok(());
    }
    let dev = super::pick_device(a.device)?;
    let t = std::time::Instant::now();
    let n = study::run(&cfg, &dev.device, &mut |line: &str| {
        eprintln!("[{:>6.0}s] {line}", t.elapsed().as_secs_f64())
    })?;
    println!(
        "{n} runs done; tables: {}",
        cfg.out.join("tables.md").display()
    );
    Ok(())
}
