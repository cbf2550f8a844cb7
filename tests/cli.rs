//! End-to-end tests of the command line: bad input gives a clear error and no partial
//! output; an interrupted run resumed with --resume ends with the same weights.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tract-studio"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tract-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Fails with a message containing `want`, without panicking, and leaves `out` absent.
fn fails_with(args: &[&str], want: &str, out: Option<&Path>) {
    let o = run(args);
    let e = stderr(&o);
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(
        e.contains(want),
        "{args:?}: stderr does not mention '{want}':\n{e}"
    );
    assert!(!e.contains("panicked"), "{args:?} panicked:\n{e}");
    if let Some(p) = out {
        assert!(
            !p.exists(),
            "{args:?} left a partial output {}",
            p.display()
        );
    }
}

const TINY: &[&str] = &[
    "--train-samples",
    "4096",
    "--fit-samples",
    "2048",
    "--batch",
    "256",
    "--device",
    "cpu",
];

fn distill_args<'a>(extra: &[&'a str], out: &'a str) -> Vec<&'a str> {
    let mut v = vec!["distill", "--data", "toy:ring8", "--out", out];
    v.extend_from_slice(TINY);
    v.extend_from_slice(extra);
    v
}

#[test]
fn bad_schedules_and_specs_are_named() {
    let d = tmp("bad");
    let out = d.join("run");
    let o = out.to_str().unwrap();
    for (s, want) in [
        ("1024,33,1", "33 does not divide 1024"),
        ("32,1024", "does not come down"),
        ("0", "at least two step counts"),
        ("abc", "not a whole number"),
    ] {
        fails_with(&distill_args(&["--schedule", s], o), want, Some(&out));
    }
    fails_with(
        &distill_args(&["--method", "magic"], o),
        "unknown method",
        Some(&out),
    );
    // missing and malformed mixture specs
    let missing = d.join("nope.json");
    let mut a = distill_args(&[], o);
    let spec = format!("gmm:{}", missing.display());
    a[2] = &spec;
    fails_with(&a, "file not found", Some(&out));
    let bad = d.join("bad.json");
    std::fs::write(
        &bad,
        "{\"components\": [{\"weight\": 1, \"mean\": [0, 0]}]}",
    )
    .unwrap();
    let spec = format!("gmm:{}", bad.display());
    a[2] = &spec;
    fails_with(&a, "malformed mixture spec", Some(&out));
    a[2] = "toy:moons";
    fails_with(&a, "unknown toy data set", Some(&out));
}

#[test]
fn bad_checkpoints_are_named() {
    let d = tmp("ckpt");
    let out = d.join("samples.safetensors");
    let o = out.to_str().unwrap();
    fails_with(
        &[
            "sample",
            "--model",
            d.join("missing.safetensors").to_str().unwrap(),
            "--out",
            o,
            "--device",
            "cpu",
        ],
        "file not found",
        Some(&out),
    );
    // truncated: a real model file cut in half
    let run_dir = d.join("run");
    let ok = run(&distill_args(
        &["--schedule", "64,1"],
        run_dir.to_str().unwrap(),
    ));
    assert!(ok.status.success(), "{}", stderr(&ok));
    let student = run_dir.join("student.safetensors");
    let bytes = std::fs::read(&student).unwrap();
    let cut = d.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(
        &[
            "sample",
            "--model",
            cut.to_str().unwrap(),
            "--out",
            o,
            "--device",
            "cpu",
        ],
        "not a valid safetensors file",
        Some(&out),
    );
    // foreign: valid safetensors without our metadata
    let foreign = d.join("foreign.safetensors");
    let data = vec![0u8; 16];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &data).unwrap();
    std::fs::write(
        &foreign,
        safetensors::serialize(vec![("w", view)], None).unwrap(),
    )
    .unwrap();
    fails_with(
        &[
            "sample",
            "--model",
            foreign.to_str().unwrap(),
            "--out",
            o,
            "--device",
            "cpu",
        ],
        "without tract-studio metadata",
        Some(&out),
    );
    // garbage
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"hello, not a checkpoint").unwrap();
    fails_with(
        &[
            "sample",
            "--model",
            junk.to_str().unwrap(),
            "--out",
            o,
            "--device",
            "cpu",
        ],
        "not a valid safetensors file",
        Some(&out),
    );
    // wrong dimension between checkpoint and data
    let spec3 = d.join("mix3.json");
    std::fs::write(&spec3, r#"{"components": [{"weight": 1, "mean": [0, 0, 1], "std": 0.3}, {"weight": 2, "mean": [1, 0, 0], "std": 0.2}]}"#).unwrap();
    let run3 = d.join("run3");
    let data3 = format!("gmm:{}", spec3.display());
    fails_with(
        &[
            "distill",
            "--data",
            &data3,
            "--teacher",
            student.to_str().unwrap(),
            "--train-samples",
            "512",
            "--out",
            run3.to_str().unwrap(),
            "--device",
            "cpu",
        ],
        "2-dimensional data",
        Some(&run3),
    );
    // eval: wrong dimension between samples and data
    let s2 = d.join("s2.safetensors");
    assert!(
        run(&[
            "sample",
            "--model",
            student.to_str().unwrap(),
            "--n",
            "100",
            "--out",
            s2.to_str().unwrap(),
            "--device",
            "cpu"
        ])
        .status
        .success()
    );
    fails_with(
        &["eval", "--samples", s2.to_str().unwrap(), "--data", &data3],
        "2-dimensional",
        None,
    );
    // resume with nothing to resume
    fails_with(
        &distill_args(&["--resume"], d.join("empty").to_str().unwrap()),
        "nothing to resume",
        None,
    );
}

#[test]
fn nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let d = tmp("nan");
    let out = d.join("run");
    let o = run(&distill_args(
        &["--lr", "1e30", "--ckpt-every", "2", "--schedule", "64,1"],
        out.to_str().unwrap(),
    ));
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(
        e.contains("training stopped: loss is") && e.contains("last good checkpoint"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    assert!(!out.join("student.safetensors").exists());
    // whatever checkpoint exists holds finite weights
    if out.join("state.safetensors").exists() {
        let bytes = std::fs::read(out.join("state.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("student").unwrap();
        assert!(
            t.data()
                .chunks_exact(4)
                .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
        );
    }
}

#[test]
fn resume_after_interruption_gives_identical_weights() {
    let d = tmp("resume");
    let (a, b) = (d.join("straight"), d.join("interrupted"));
    let extra = ["--schedule", "64,8,1", "--ckpt-every", "3"];
    let o = run(&distill_args(&extra, a.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    // stderr is a pipe here, not a terminal: the progress bar is a log line every 5%
    let e = stderr(&o);
    let lines: Vec<&str> = e.lines().filter(|l| l.contains("% (")).collect();
    assert!(
        lines.len() >= 10 && lines.iter().all(|l| l.contains("samples/s, ETA ")),
        "progress lines:\n{e}"
    );
    assert!(lines.last().unwrap().contains(": 100% ("), "{e}");
    // interrupt twice: once inside the fit phase, once inside a distillation phase
    for stop in ["5", "13"] {
        let mut args = distill_args(&extra, b.to_str().unwrap());
        if stop == "13" {
            args.push("--resume");
        }
        args.extend(["--stop-after", stop]);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("stopped after"));
        assert!(!b.join("student.safetensors").exists());
    }
    // the last resume names only the run: its options come from its state
    let o = run(&[
        "distill",
        "--resume",
        "--out",
        b.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (sa, sb) = (
        std::fs::read(a.join("student.safetensors")).unwrap(),
        std::fs::read(b.join("student.safetensors")).unwrap(),
    );
    assert!(sa == sb, "resumed run differs from the uninterrupted one");
    let (la, lb) = (
        std::fs::read_to_string(a.join("loss.csv")).unwrap(),
        std::fs::read_to_string(b.join("loss.csv")).unwrap(),
    );
    assert_eq!(la, lb, "loss logs differ");
    assert!(la.lines().count() > 10);
}

#[test]
fn sample_and_eval_end_to_end() {
    let d = tmp("e2e");
    let (s1, s2) = (d.join("a.safetensors"), d.join("b.safetensors"));
    for (p, k) in [(&s1, "1024"), (&s2, "1")] {
        let o = run(&[
            "sample",
            "--model",
            "exact:toy:ring8",
            "--steps",
            k,
            "--n",
            "2000",
            "--seed",
            "3",
            "--out",
            p.to_str().unwrap(),
            "--device",
            "cpu",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // same noise in both files
    let n1 = tract_studio::generate::read_samples(&s1).unwrap();
    let n2 = tract_studio::generate::read_samples(&s2).unwrap();
    assert_eq!(n1.1, n2.1);
    assert_eq!(n1.0.len(), 4000);
    let o = run(&[
        "eval",
        "--samples",
        s1.to_str().unwrap(),
        "--data",
        "toy:ring8",
        "--reference",
        s2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    // exact 1024 steps sits on the data; the 1-step teacher collapses to the mean (0, 0)
    assert!(v["sw2"].as_f64().unwrap() < 0.1, "{v}");
    let r = v["rmse_to_reference"].as_f64().unwrap();
    assert!((r - 1.5 / 2f64.sqrt()).abs() < 0.1, "{v}");
}

// --- the command line as people meet it (issue 28 items 11-13, issue 29 item 3)

const CLI_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md");

/// docs/cli.md is every command's `--help`, rendered from the clap definition;
/// `TRACT_UPDATE_DOCS=1 cargo test --release --test cli -- cli_md` rewrites it.
#[test]
fn cli_md_is_the_help_of_every_command() {
    let md = tract_studio::front::cli::docs::markdown();
    if std::env::var("TRACT_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(CLI_MD, &md).unwrap();
    }
    let doc = std::fs::read_to_string(CLI_MD).unwrap_or_default();
    assert!(
        doc == md,
        "docs/cli.md differs from the command line's help; rewrite it with TRACT_UPDATE_DOCS=1 cargo test --release --locked --test cli -- cli_md"
    );
    // every command has its section and at least one example
    for c in tract_studio::front::cli::command().get_subcommands() {
        let name = c.get_name();
        if name == "help" {
            continue;
        }
        let section = md
            .split(&format!("\n## {name}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {name}"));
        let section = section.split("\n## ").next().unwrap();
        assert!(
            section.contains("Examples:") && section.contains(&format!("tract-studio {name}")),
            "{name} has no example:\n{section}"
        );
    }
}

/// Every example in the help (and so in docs/cli.md) is accepted by the command line's parser.
#[test]
fn every_example_parses() {
    use tract_studio::front::cli::docs::{example_lines, words};
    let lines = example_lines();
    assert!(lines.len() >= 30, "{lines:?}");
    for l in &lines {
        if let Err(e) = tract_studio::front::cli::parses(words(l)) {
            panic!("{l}\n{e}");
        }
    }
    // and the parser is strict: a typo is refused
    assert!(
        tract_studio::front::cli::parses(words("tract-studio sample --modle x --out y")).is_err()
    );
}

#[test]
fn choices_are_listed_and_completed() {
    let o = run(&["sample", "--help"]);
    let h = String::from_utf8_lossy(&o.stdout);
    for want in [
        "ddim",
        "heun",
        "auto",
        "wgpu",
        "trailing",
        "linspace",
        "Examples:",
    ] {
        assert!(h.contains(want), "sample --help lacks {want}:\n{h}");
    }
    let o = run(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "tract-studio",
        "distill",
        "inspect",
        "ddim heun",
        "auto cpu wgpu",
        "tiny small large",
    ] {
        assert!(s.contains(want), "bash completions lack '{want}'");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = run(&["completions", shell]);
        assert!(
            o.status.success() && !o.stdout.is_empty(),
            "{shell}: {}",
            stderr(&o)
        );
    }
    fails_with(&["completions", "tcsh"], "tcsh", None);
    // a wrong choice names the flag, the value and the choices
    fails_with(
        &[
            "distill",
            "--data",
            "toy:ring8",
            "--train-samples",
            "8",
            "--method",
            "magic",
            "--out",
            "/nonexistent/x",
        ],
        "--method magic: unknown method 'magic'",
        None,
    );
    fails_with(
        &[
            "convert",
            "--model",
            "asset:ring8-fit.safetensors",
            "--dtype",
            "f8",
            "--out",
            "/nonexistent/x",
        ],
        "expected f32 or f16",
        None,
    );
    // `gpu` is another name for wgpu, as before
    assert!(tract_studio::front::cli::parses(["tract-studio", "bench", "--device", "gpu"]).is_ok());
}

#[test]
fn list_and_inspect_describe_the_shipped_models() {
    let o = run(&["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let l = String::from_utf8_lossy(&o.stdout);
    for e in tract_studio::assets::manifest() {
        let spec = format!("asset:{}", e.path.trim_start_matches("asset:"));
        assert!(l.contains(&spec), "list lacks {spec}:\n{l}");
        assert!(l.contains(&e.name), "list lacks {}:\n{l}", e.name);
    }
    let o = run(&["list", "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        tract_studio::assets::manifest().len()
    );
    let o = run(&["inspect", "asset:fashion-mnist-tract-1step.safetensors"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    for want in [
        "kind             tract",
        "fashion-mnist",
        "parametrisation  vp",
        "grid             1024 steps",
        "steps            1\n",
        "UNet",
        "1x32x32",
        "268,401",
        "F16",
        "checksum",
        "training budget",
    ] {
        assert!(t.contains(want), "inspect lacks '{want}':\n{t}");
    }
    // a file written here: the JSON agrees with the file's own metadata
    let d = tmp("inspect");
    let f = d.join("fit32.safetensors");
    let o = run(&[
        "convert",
        "--model",
        "asset:ring8-tract-2step.safetensors",
        "--dtype",
        "f32",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["inspect", f.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = tract_studio::checkpoint::ModelFile::load(&f).unwrap();
    assert_eq!(v["kind"], "tract");
    assert_eq!(v["steps"], 2);
    assert_eq!(v["schedule"], m.meta.schedule.as_str());
    assert_eq!(v["train_samples"], m.meta.train_samples);
    assert_eq!(v["parameters"], m.flat.len());
    assert_eq!(v["dtype"], "F32");
    assert_eq!(v["checksum"].as_str().unwrap().len(), 16);
    assert_eq!(v["bytes"], std::fs::metadata(&f).unwrap().len());
    fails_with(
        &["inspect", d.join("missing.safetensors").to_str().unwrap()],
        "file not found",
        None,
    );
    fails_with(
        &["inspect", "asset:nope.safetensors"],
        "no shipped model 'nope.safetensors'",
        None,
    );
}

#[test]
fn sample_says_what_it_does_and_eval_reads_the_data_from_the_file() {
    let d = tmp("defaults");
    // 2-D: 10,000 points by default, said before the work
    let s = d.join("s.safetensors");
    let o = run(&[
        "sample",
        "--model",
        "exact:toy:ring8",
        "--steps",
        "64",
        "--out",
        s.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("sampling 10000 samples (the default --n) at 64 steps (DDIM): 640000 network evaluations; about "),
        "{e}"
    );
    assert_eq!(
        tract_studio::generate::read_samples(&s).unwrap().0.len(),
        20_000
    );
    // eval without --data: the file records it
    let o = run(&["eval", "--samples", s.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("data: toy:ring8 (recorded in"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["sw2"].as_f64().unwrap() < 0.2, "{v}");
    // images: 64 by default
    let s = d.join("img.safetensors");
    let o = run(&[
        "sample",
        "--model",
        "asset:fashion-mnist-tract-1step.safetensors",
        "--out",
        s.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("64 samples at 1 steps"));
    assert_eq!(
        tract_studio::generate::read_samples(&s).unwrap().0.len(),
        64 * 1024
    );
    // a samples file without the record needs --data
    let bare = d.join("bare.safetensors");
    tract_studio::generate::write_samples(
        &bare,
        &[0.0; 8],
        &[0.0; 8],
        &[2],
        &serde_json::json!({}),
    )
    .unwrap();
    fails_with(
        &["eval", "--samples", bare.to_str().unwrap()],
        "give --data",
        None,
    );
}

#[test]
fn distill_says_it_fits_before_distilling() {
    let d = tmp("plan");
    let out = d.join("run");
    let o = run(&[
        "distill",
        "--data",
        "toy:ring8",
        "--train-samples",
        "512",
        "--fit-samples",
        "512",
        "--batch",
        "256",
        "--schedule",
        "16,4,1",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("plan: fit a fresh student to the exact teacher: 512 samples (--fit-samples), then tract-16to4: 85 samples, then tract-4to1: 427 samples; 1024 samples in all"),
        "{e}"
    );
}

/// The shipped classifier knows Fashion-MNIST only: `eval` refuses it for other images of
/// the same 1x32x32 shape (it used to report an FID in its features without a word).
#[test]
fn eval_refuses_the_fashion_classifier_for_other_images() {
    let d = tmp("clf");
    let data = d.join("mnist32");
    std::fs::create_dir_all(&data).unwrap();
    let px: Vec<u8> = (0..16 * 32 * 32).map(|i| ((i * 37) % 256) as u8).collect();
    for f in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
        tract_studio::data::idx::write_idx(&data.join(f), &[16, 32, 32], &px, false).unwrap();
    }
    let spec = format!("mnist:{}", data.display());
    let s = d.join("s.safetensors");
    tract_studio::generate::write_samples(
        &s,
        &vec![0.0; 4 * 1024],
        &vec![0.0; 4 * 1024],
        &[1, 32, 32],
        &serde_json::json!({ "data": spec }),
    )
    .unwrap();
    let o = run(&["eval", "--samples", s.to_str().unwrap()]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(
        e.contains("trained on Fashion-MNIST (1x32x32 images)")
            && e.contains(&format!("classifier --data {spec}")),
        "{e}"
    );
}

/// `eval --reference` of another size compares the first samples of both, where their noise is
/// the same (the PSNR of a long run against a short reference of the same seed), and refuses a
/// reference from other noise.
#[test]
fn a_reference_of_another_size_compares_the_samples_of_the_same_noise() {
    let d = tmp("ref-prefix");
    let sample = |model: &str, n: &str, seed: &str, out: &str| {
        let p = d.join(out);
        let o = run(&[
            "sample",
            "--model",
            model,
            "--n",
            n,
            "--seed",
            seed,
            "--out",
            p.to_str().unwrap(),
            "--device",
            "cpu",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        p.to_str().unwrap().to_string()
    };
    let tract = "asset:fashion-mnist-tract-1step.safetensors";
    let btd = "asset:fashion-mnist-btd-1step.safetensors";
    let long = sample(tract, "40", "3", "long.safetensors");
    let short = sample(tract, "16", "3", "short.safetensors");
    let reference = sample(btd, "16", "3", "ref.safetensors");
    let other = sample(btd, "16", "4", "other.safetensors");
    let eval = |s: &str, r: &str| {
        let o = run(&["eval", "--samples", s, "--reference", r]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v, stderr(&o))
    };
    // the same N: all of them
    let (same, _) = eval(&short, &reference);
    assert_eq!(same["n_reference"], 16, "{same}");
    // 40 against 16: the first 16 of the 40, which are the 16-sample run's
    let (prefix, said) = eval(&long, &reference);
    assert_eq!(prefix["n"], 40, "{prefix}");
    assert_eq!(prefix["n_reference"], 16, "{prefix}");
    assert!(said.contains("the first 16 samples of each"), "{said}");
    let (a, b) = (
        prefix["psnr_to_reference"].as_f64().unwrap(),
        same["psnr_to_reference"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-3 && b.is_finite() && b < 60.0, "{a} {b}");
    // the other way round too
    let (back, _) = eval(&reference, &long);
    assert_eq!(back["n_reference"], 16, "{back}");
    // another seed's noise: refused, naming the reference
    fails_with(
        &["eval", "--samples", &long, "--reference", &other],
        "must come from the same noise",
        None,
    );
    let _ = std::fs::remove_dir_all(&d);
}
