//! `inspect`, `list` and `completions`: what a model file is, which models ship with the
//! binary, and shell completion scripts.

use clap::CommandFactory;

use super::examples;
use crate::jobs::inspect::{ModelInfo, model_info, shipped};

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("a shipped model", "tract-studio inspect asset:fashion-mnist-tract-1step.safetensors"),
    ("a run's student, as JSON", "tract-studio inspect run1/student.safetensors --json"),
]))]
pub(super) struct InspectArgs {
    /// a model file, asset:NAME (a shipped model, see `list`) or diffusers:DIR
    pub(super) model: String,
    /// print one JSON object instead of the table
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("the shipped models", "tract-studio list"),
    ("as JSON lines, for scripts", "tract-studio list --json"),
]))]
pub(super) struct ListArgs {
    /// one JSON object per model instead of the table
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("bash, for the current user", "tract-studio completions bash > ~/.local/share/bash-completion/completions/tract-studio"),
    ("zsh (a folder on $fpath)", "tract-studio completions zsh > ~/.zfunc/_tract-studio"),
]))]
pub(super) struct CompletionsArgs {
    /// the shell to write the script for
    pub(super) shell: clap_complete::Shell,
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a model of this kind is for, in words.
fn what(i: &ModelInfo) -> String {
    match i.kind.as_str() {
        "teacher" => format!("a teacher: samples in up to {} steps", i.grid_steps),
        "fit" => format!(
            "a network fitted to the exact teacher (the start of a distillation), {} steps",
            i.grid_steps
        ),
        "tract" | "btd" => format!(
            "a {} student: samples in {} step{} (distilled on a {}-step grid)",
            i.kind.to_uppercase(),
            i.steps,
            if i.steps == 1 { "" } else { "s" },
            i.grid_steps
        ),
        k => format!("kind '{k}'"),
    }
}

pub(super) fn inspect_cmd(a: InspectArgs) -> anyhow::Result<()> {
    let i = model_info(&a.model)?;
    if a.json {
        println!("{}", serde_json::to_string(&i)?);
        return Ok(());
    }
    let shape: Vec<String> = i.shape.iter().map(|d| d.to_string()).collect();
    let mut rows: Vec<(&str, String)> = vec![
        ("model", i.spec.clone()),
        ("kind", format!("{} ({})", i.kind, what(&i))),
        ("data", i.data.clone()),
        ("parametrisation", i.param.clone()),
        ("grid", format!("{} steps", i.grid_steps)),
        ("steps", i.steps.to_string()),
        (
            "schedule",
            // a teacher's file carries the default schedule of its run's config: not its own
            if i.schedule.is_empty() || i.kind == "teacher" || i.kind == "fit" {
                "-".into()
            } else {
                i.schedule.clone()
            },
        ),
        (
            "training budget",
            if i.train_samples == 0 {
                "not recorded in the file".into()
            } else {
                format!("{} samples", thousands(i.train_samples))
            },
        ),
        ("network", i.network.clone()),
        ("sample shape", shape.join("x")),
        ("parameters", thousands(i.parameters as u64)),
        ("dtype", i.dtype.clone()),
        (
            "checksum",
            i.checksum.clone().unwrap_or_else(|| "none stored".into()),
        ),
    ];
    if let Some(b) = i.bytes {
        rows.push(("size", format!("{} bytes", thousands(b))));
    }
    if let Some(s) = &i.scheduler {
        rows.push(("scheduler", s.clone()));
    }
    if i.clip_x0 {
        rows.push(("x0 clipping", "[-1, 1] in every DDIM step".into()));
    }
    for (k, v) in rows {
        println!("{k:<16} {v}");
    }
    Ok(())
}

pub(super) fn list_cmd(a: ListArgs) -> anyhow::Result<()> {
    let models = shipped()?;
    if a.json {
        for m in &models {
            println!("{}", serde_json::to_string(m)?);
        }
        return Ok(());
    }
    println!(
        "{:<46} {:<14} {:<8} {:>5} {:>11}  what",
        "model (--model / --teacher / --init)", "data", "kind", "steps", "parameters"
    );
    for m in &models {
        println!(
            "{:<46} {:<14} {:<8} {:>5} {:>11}  {}",
            m.spec,
            m.info.data,
            m.info.kind,
            m.info.steps,
            thousands(m.info.parameters as u64),
            m.name
        );
    }
    println!(
        "\n`tract-studio inspect MODEL` says more about one; `tract-studio gallery --data DATA` draws every model of DATA side by side."
    );
    Ok(())
}

pub(super) fn completions_cmd(a: CompletionsArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let mut cmd = super::Cli::command();
    let mut script = vec![];
    clap_complete::generate(a.shell, &mut cmd, "tract-studio", &mut script);
    match std::io::stdout().write_all(&script) {
        // `completions bash | head` closes the pipe early: not an error
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}
