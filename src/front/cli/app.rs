//! `app` (and no command at all): the desktop app.

use std::path::PathBuf;

use anyhow::bail;

#[cfg(feature = "gui")]
use super::pick_device;

#[derive(clap::Args, Default)]
#[command(after_help = super::examples(&[
    ("the app on the gallery panel", "tract-studio app --panel gallery"),
    ("on the CPU, with Fashion-MNIST", "tract-studio app --device cpu --data fashion-mnist"),
    ("the diffusers teacher and its students, to look at or to distill from", "tract-studio app --data fashion-mnist --set diffusers --panel gallery"),
]))]
pub(super) struct AppArgs {
    /// panel to open: data, teacher, schedule, distill, gallery, compare
    #[arg(long)]
    pub(super) panel: Option<String>,
    /// save a screenshot of the panel once it has its content, then exit
    #[arg(long)]
    pub(super) screenshot: Option<PathBuf>,
    /// start a distillation run at once
    #[arg(long)]
    pub(super) autostart: bool,
    /// manifest of shipped models
    #[arg(long)]
    pub(super) assets: Option<PathBuf>,
    /// the data to open with: toy:ring8, gmm:PATH, fashion-mnist[:DIR], emoji, images:DIR
    #[arg(long)]
    pub(super) data: Option<String>,
    /// the gallery's set of shipped models for that data (`diffusers`: the diffusers teacher and
    /// its students; default the data's own, else its first, e.g. emoji's diffusers set)
    #[arg(long)]
    pub(super) set: Option<String>,
    /// where runs started in the app go; an unfinished one there is offered for resuming
    #[arg(long, default_value = "studio-runs")]
    pub(super) runs: PathBuf,
    #[arg(long, default_value = "auto", value_parser = super::choices::pick::<super::choices::DeviceArg>())]
    pub(super) device: super::choices::DeviceArg,
}

#[cfg(feature = "gui")]
pub(super) fn app(a: AppArgs) -> anyhow::Result<()> {
    use crate::front::app::{AppOptions, Tab, run_app};
    let tab = match &a.panel {
        Some(p) => Some(Tab::parse(p).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown panel '{p}': expected data, teacher, schedule, distill, gallery or compare"
            )
        })?),
        None => None,
    };
    if let Some(s) = &a.set
        && a.assets.is_none()
    {
        let data = a.data.clone().unwrap_or_else(|| "toy:ring8".into());
        let sets: Vec<String> = crate::jobs::assets::sets(&crate::jobs::assets::manifest(), &data)
            .into_iter()
            .flatten()
            .collect();
        if !sets.contains(s) {
            let elsewhere = crate::jobs::assets::manifest()
                .into_iter()
                .find(|e| e.set.as_deref() == Some(s.as_str()))
                .map(|e| format!(" (it is {}'s: add --data {})", e.data, e.data));
            bail!(
                "--set {s}: no such set of shipped models for {data}; expected {}{}",
                if sets.is_empty() {
                    "none".to_string()
                } else {
                    format!("one of {}", sets.join(", "))
                },
                elsewhere.unwrap_or_default()
            );
        }
    }
    let dev = pick_device(a.device)?;
    run_app(
        AppOptions {
            tab,
            screenshot: a.screenshot,
            autostart: a.autostart,
            assets: a.assets,
            data: a.data,
            set: a.set,
            runs_dir: Some(a.runs),
            ..Default::default()
        },
        dev.device,
    )
    .map_err(|e| anyhow::anyhow!(e))
}

#[cfg(not(feature = "gui"))]
pub(super) fn app(_a: AppArgs) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let _ = super::Cli::command().print_help();
    bail!("this build has no desktop app (built without the 'gui' feature); use a subcommand")
}
