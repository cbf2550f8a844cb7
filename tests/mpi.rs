//! Data-parallel training over MPI (`--features mpi`): `mpirun -np 2` runs equal the
//! single-process runs with the same global batch, a killed rank ends the job cleanly with
//! an intact checkpoint that resumes with 1 and with 2 ranks, and jobs the ranks cannot run
//! together are refused at start. Every test skips (with a message) where mpirun is missing.
//!
//! Tolerances: the two ranks' mean gradient is (g_0 + g_1) / 2 against one process's g over
//! the whole batch, the same sum in another order, so the runs agree to float rounding
//! amplified by training, not bit for bit: weights within 1e-4 (relative to 1 + |w|; measured
//! 4e-6 on ring8 after 120 steps) and every logged loss within 1e-4 relative.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tract-studio");
const TOL: f32 = 1e-4;

/// `mpirun` with what this machine needs (root, fewer cores than ranks), or None (skip).
fn mpirun() -> Option<Command> {
    let found = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("skipped: mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)");
        return None;
    }
    let mut c = Command::new("mpirun");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        c.arg("--allow-run-as-root");
    }
    c.args(["--oversubscribe", "-x", "RAYON_NUM_THREADS=1"]);
    single_env(&mut c);
    Some(c)
}

fn single_env(c: &mut Command) {
    c.env("RAYON_NUM_THREADS", "1")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
}

/// `mpirun -np N tract-studio ARGS`
fn ranks(n: usize, args: &[String]) -> Option<Command> {
    let mut c = mpirun()?;
    c.args(["-np", &n.to_string(), BIN]).args(args);
    Some(c)
}

fn one(args: &[String]) -> Command {
    let mut c = Command::new(BIN);
    single_env(&mut c);
    c.args(args);
    c
}

fn ok(mut c: Command, what: &str) -> Output {
    let o = c.output().expect("runs");
    assert!(
        o.status.success(),
        "{what}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tract-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn weights(p: &Path) -> Vec<f32> {
    tract_studio::checkpoint::ModelFile::load(p).unwrap().flat
}

fn losses(dir: &Path) -> Vec<f32> {
    std::fs::read_to_string(dir.join("loss.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect()
}

fn same_run(a: &Path, b: &Path, model: &str) {
    let (la, lb) = (losses(a), losses(b));
    assert_eq!(la.len(), lb.len(), "loss logs of different lengths");
    common::close(&lb, &la, TOL, "losses");
    common::close(
        &weights(&b.join(model)),
        &weights(&a.join(model)),
        TOL,
        model,
    );
}

fn ring8(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = strings(&[
        "distill",
        "--data",
        "toy:ring8",
        "--train-samples",
        "20480",
        "--fit-samples",
        "10240",
        "--batch",
        "256",
        "--schedule",
        "64,8,1",
        "--ckpt-every",
        "10",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    v.extend(strings(extra));
    v
}

#[test]
fn ring8_distillation_on_two_ranks_equals_one_process() {
    let d = tmp("ring8");
    let (a, b) = (d.join("one"), d.join("two"));
    let Some(two) = ranks(2, &ring8(&b, &[])) else {
        return;
    };
    ok(one(&ring8(&a, &[])), "one process");
    let o = ok(two, "mpirun -np 2");
    let err = String::from_utf8_lossy(&o.stderr);
    // rank 0 alone reports: one plan, and one line for each rank's device, with its place
    // among the ranks on this machine (MPI's shared-memory split)
    assert_eq!(err.matches("plan:").count(), 1, "{err}");
    for r in 0..2 {
        let line = format!(
            "device of rank {r} of 2: CPU backend (Burn flex), local rank {r} of 2: --device cpu"
        );
        assert_eq!(err.matches(&line).count(), 1, "{line}\n{err}");
    }
    same_run(&a, &b, "student.safetensors");
    for p in ["phase0-fit", "phase1-tract-64to8"] {
        common::close(
            &weights(&b.join(format!("{p}.safetensors"))),
            &weights(&a.join(format!("{p}.safetensors"))),
            TOL,
            p,
        );
    }
    // the config records the ranks (and a one-process run's config does not)
    let cfg = std::fs::read_to_string(b.join("config.json")).unwrap();
    assert!(cfg.contains("\"ranks\": 2"), "{cfg}");
    let cfg = std::fs::read_to_string(a.join("config.json")).unwrap();
    assert!(!cfg.contains("\"ranks\""), "{cfg}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The wgpu path under MPI: each rank opens its own adapter (here both share lavapipe, the
/// one this machine has, and say so), and the job equals a one-process wgpu run (measured
/// 1.5e-6).
#[test]
fn two_wgpu_ranks_take_their_adapters_and_equal_one_process() {
    let found = tract_studio::engine::device::adapters();
    if found.is_empty() {
        eprintln!("skipped: no wgpu adapter (Debian: mesa-vulkan-drivers libvulkan1)");
        return;
    }
    let d = tmp("wgpu");
    let args = |out: &Path| {
        let v = ring8(out, &[]);
        let swap = |a: &String| match a.as_str() {
            "cpu" => "wgpu".to_string(),
            "20480" => "4096".into(),
            "10240" => "2048".into(),
            _ => a.clone(),
        };
        v.iter().map(swap).collect::<Vec<_>>()
    };
    let (a, b) = (d.join("one"), d.join("two"));
    let Some(two) = ranks(2, &args(&b)) else {
        return;
    };
    ok(one(&args(&a)), "one process on wgpu");
    let o = ok(two, "mpirun -np 2 on wgpu");
    let err = String::from_utf8_lossy(&o.stderr);
    if let [(kind, name)] = &found[..] {
        // one adapter: both ranks on it, and they say so
        for r in 0..2 {
            let line = format!(
                "device of rank {r} of 2: wgpu backend on '{name}' ({kind:?} adapter 1 of 1), local rank {r} of 2, shared by 2 ranks"
            );
            assert_eq!(err.matches(&line).count(), 1, "{line}\n{err}");
        }
    } else {
        assert_eq!(err.matches("wgpu backend on '").count(), 2, "{err}");
    }
    same_run(&a, &b, "student.safetensors");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn tiny_unet_teacher_on_two_ranks_equals_one_process() {
    let d = tmp("teacher");
    common::square_idx(&d);
    let data = format!("mnist:{}", d.display());
    let args = |out: &Path| {
        strings(&[
            "teacher",
            "--data",
            &data,
            "--size",
            "tiny",
            "--train-samples",
            "128",
            "--batch",
            "8",
            "--ckpt-every",
            "4",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (a, b) = (d.join("one"), d.join("two"));
    let Some(two) = ranks(2, &args(&b)) else {
        return;
    };
    ok(one(&args(&a)), "one process");
    ok(two, "mpirun -np 2");
    same_run(&a, &b, "teacher.safetensors");
    assert!(b.join("samples.png").exists(), "rank 0 draws the samples");
    let _ = std::fs::remove_dir_all(&d);
}

/// The pid of rank `r` among mpirun's children.
fn rank_pid(mpirun: u32, r: usize) -> Option<u32> {
    let kids = Command::new("pgrep")
        .args(["-P", &mpirun.to_string()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&kids.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .find(|p| {
            std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|e| {
                e.split(|b| *b == 0)
                    .any(|v| v == format!("OMPI_COMM_WORLD_RANK={r}").as_bytes())
            })
        })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_killed_rank_ends_the_job_cleanly_and_the_run_resumes_on_one_or_two_ranks() {
    let d = tmp("kill");
    let run = d.join("run");
    // long enough to be killed mid-run (a few seconds at 2 ranks)
    let args = |out: &Path, extra: &[&str]| {
        let mut v = strings(&[
            "distill",
            "--data",
            "toy:ring8",
            "--train-samples",
            "600000",
            "--fit-samples",
            "10240",
            "--batch",
            "256",
            "--schedule",
            "64,8,1",
            "--ckpt-every",
            "20",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        v.extend(strings(extra));
        v
    };
    let Some(mut c) = ranks(2, &args(&run, &[])) else {
        return;
    };
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait for the first checkpoint after the fit, then kill rank 1
    let t = Instant::now();
    while !(run.join("phase0-fit.safetensors").exists() && run.join("state.safetensors").exists()) {
        assert!(t.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let r1 = rank_pid(child.id(), 1).expect("rank 1 runs");
    assert!(
        Command::new("kill")
            .args(["-9", &r1.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let killed = Instant::now();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // no hang, a failure, and the survivor's one clear message
    assert!(killed.elapsed() < Duration::from_secs(60), "the job hung");
    assert!(!o.status.success(), "{err}");
    assert_eq!(err.matches("stopped by mpirun").count(), 1, "{err}");
    assert!(err.contains("is intact: continue with --resume"), "{err}");
    assert!(!run.join("student.safetensors").exists(), "it ended early");
    // the checkpoint loads: resume it on one process and on two ranks, both to the end
    let (r1d, r2d) = (d.join("resume1"), d.join("resume2"));
    copy_dir(&run, &r1d);
    copy_dir(&run, &r2d);
    let resume = |out: &Path| {
        strings(&[
            "distill",
            "--resume",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    ok(one(&resume(&r1d)), "resume on one process");
    ok(ranks(2, &resume(&r2d)).unwrap(), "resume on two ranks");
    same_run(&r1d, &r2d, "student.safetensors");
    // the configs record the rank counts: 2 from the start, then 1 (or 2) from the resume
    let cfg = std::fs::read_to_string(r1d.join("config.json")).unwrap();
    assert!(
        cfg.contains("\"ranks\": 2") && cfg.contains("\"ranks\": 1"),
        "{cfg}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn jobs_the_ranks_cannot_run_together_are_refused_at_start() {
    let d = tmp("refuse");
    // a global batch that does not split over the ranks: refused, one message naming both
    let mut odd = ring8(&d.join("odd"), &[]);
    let at = odd.iter().position(|a| a == "--batch").unwrap() + 1;
    odd[at] = "255".into();
    let Some(mut c) = ranks(2, &odd) else {
        return;
    };
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.matches("--batch 255").count(), 1, "{err}");
    assert!(err.contains("2 ranks"), "{err}");
    assert!(!d.join("odd").join("state.safetensors").exists());
    // ranks started with other options (MPMD: one command line per rank)
    let out = d.join("differ");
    let mut c = mpirun().unwrap();
    c.args(["-np", "1", BIN])
        .args(ring8(&out, &["--seed", "1"]))
        .args([":", "-np", "1", BIN])
        .args(ring8(&out, &["--seed", "2"]));
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.matches("the ranks disagree").count(), 1, "{err}");
    assert!(
        err.contains("rank 0 has \"seed\": 1") && err.contains("rank 1 has \"seed\": 2"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
