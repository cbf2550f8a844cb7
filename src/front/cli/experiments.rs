//! `demo` and `report`: the README's experiments (TRACT vs BTD on a mixture with an exact
//! teacher; the paper's ablations in small), as tables and pictures.

use std::path::PathBuf;

use anyhow::bail;

use super::choices::{DeviceArg, pick};
use super::progress::{Progress, say};
use super::{MAX_BATCH, count, examples, pick_device};
use crate::engine::distill::Event;
use crate::jobs::demo;

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("TRACT vs BTD on toy:ring8 with the exact teacher (about 2 minutes on 2 cores)", "tract-studio demo"),
    ("a quicker run without the 2-step student", "tract-studio demo --no-two-step --train-samples 200000 --out demo-quick"),
]))]
pub(super) struct DemoArgs {
    /// the data (default toy:ring8; any gmm:PATH works)
    #[arg(long, default_value = "toy:ring8")]
    pub(super) data: String,
    /// skip the TRACT 1024,32,2 run
    #[arg(long)]
    pub(super) no_two_step: bool,
    /// the folder for the runs, results.json and the picture
    #[arg(long, default_value = "demo-out")]
    pub(super) out: PathBuf,
    /// distillation samples per run (default 500000)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) train_samples: Option<u64>,
    /// samples for fitting the start network to the exact teacher (default 1000000)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) fit_samples: Option<u64>,
    /// samples per optimizer step (default 512)
    #[arg(long, value_parser = count(1, MAX_BATCH))]
    pub(super) batch: Option<usize>,
    /// the seed of every run
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    #[arg(long, default_value = "auto", value_parser = pick::<DeviceArg>())]
    pub(super) device: DeviceArg,
}

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("the ablations on toy:ring8, 3 seeds", "tract-studio report --out report-out"),
    ("one seed at a smaller budget", "tract-studio report --seeds 0 --train-samples 100000 --out report-quick"),
]))]
pub(super) struct ReportArgs {
    /// a mixture with an exact teacher: toy:ring8 or gmm:PATH
    #[arg(long, default_value = "toy:ring8")]
    pub(super) data: String,
    /// tables and plots (the published ones are in docs/results)
    #[arg(long, default_value = "report-out")]
    pub(super) out: PathBuf,
    /// seeds: each setting runs once per seed
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub(super) seeds: Vec<u64>,
    /// distillation samples per run
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) train_samples: u64,
    /// samples for fitting each seed's start network to the exact teacher
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) fit_samples: u64,
    /// samples per optimizer step
    #[arg(long, default_value_t = 512, value_parser = count(1, MAX_BATCH))]
    pub(super) batch: usize,
    /// samples per model for the metrics
    #[arg(long, default_value_t = 4000, value_parser = count(1, 1_000_000))]
    pub(super) n_eval: usize,
    #[arg(long, default_value = "auto", value_parser = pick::<DeviceArg>())]
    pub(super) device: DeviceArg,
}

pub(super) fn demo_cmd(a: DemoArgs) -> anyhow::Result<()> {
    let dev = pick_device(a.device)?;
    let mut cfg = demo::DemoConfig {
        data: a.data.clone(),
        out: a.out.clone(),
        seed: a.seed,
        two_step: !a.no_two_step,
        ..Default::default()
    };
    if let Some(t) = a.train_samples {
        cfg.train_samples = t;
    }
    if let Some(f) = a.fit_samples {
        cfg.fit_samples = f;
    }
    if let Some(b) = a.batch {
        cfg.batch = b;
    }
    println!(
        "demo: {}, exact teacher, VP, {} fit samples, then TRACT 1024,32,1 / BTD 1024->...->1{} with {} distillation samples each",
        if cfg.data == "toy:ring8" {
            "toy:ring8 (8 Gaussians on a circle)"
        } else {
            &cfg.data
        },
        cfg.fit_samples,
        if cfg.two_step {
            " / TRACT 1024,32,2"
        } else {
            ""
        },
        cfg.train_samples
    );
    let t = std::time::Instant::now();
    let mut prog = Progress::new("demo");
    let res = demo::run(&cfg, &dev.device, &mut prog);
    prog.bar.finish_and_clear();
    let res = res?;
    println!("\n{}", res.table());
    let (t1, tr1, b1) = (
        res.rows[1].rmse_to_teacher,
        res.row("TRACT").rmse_to_teacher,
        res.row("BTD").rmse_to_teacher,
    );
    println!(
        "TRACT 1-step RMSE = {:.3} x the teacher's own 1-step RMSE (BTD: {:.3} x)",
        tr1 / t1,
        b1 / t1
    );
    println!(
        "picture: {}\nresults: {}\ntime: {:.0}s",
        res.picture.display(),
        a.out.join("results.json").display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(super) fn report_cmd(a: ReportArgs) -> anyhow::Result<()> {
    use crate::jobs::report;
    if a.seeds.is_empty() || a.batch == 0 || a.n_eval == 0 || a.train_samples == 0 {
        bail!("--seeds, --batch, --n-eval and --train-samples must be non-empty / at least 1");
    }
    let dev = pick_device(a.device)?;
    let cfg = report::ReportConfig {
        data: a.data.clone(),
        out: a.out.clone(),
        seeds: a.seeds.clone(),
        train_samples: a.train_samples,
        fit_samples: a.fit_samples,
        batch: a.batch,
        n_eval: a.n_eval,
    };
    let total = a.seeds.len() * report::settings().len();
    let prog = Progress::new("report");
    let mut observer = |e: &Event| {
        if let Event::Step {
            samples_done,
            samples_total,
            ..
        } = e
        {
            prog.update(*samples_done, *samples_total);
        }
        true
    };
    let t = std::time::Instant::now();
    let mut done = 0usize;
    let r = report::run(&cfg, &dev.device, &mut observer, &mut |line: &str| {
        if line.starts_with("seed") && !line.contains("fitting") {
            done += 1;
            let el = t.elapsed().as_secs_f64();
            say(
                &prog.bar,
                &format!(
                    "[{done}/{total}, ETA {:.0}s] {line}",
                    el / done as f64 * (total - done) as f64
                ),
            );
        } else {
            say(&prog.bar, line);
        }
        prog.bar.set_message(format!("run {}/{total}", done + 1));
    })?;
    prog.bar.finish_and_clear();
    println!("{}", r.markdown());
    println!(
        "tables: {}  plots: {}/table1.png ...  ({:.0}s)",
        a.out.join("tables.md").display(),
        a.out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
