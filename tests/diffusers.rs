//! diffusers pipelines in and out, against diffusers' own outputs.
//!
//! tests/fixtures/diffusers/<case>/ are small seeded UNet2DModel pipelines written by
//! `benches/peer/diffusers_golden.py` (torch + diffusers; run once, committed, so this test
//! needs no Python), with golden.safetensors: the UNet's output at several timesteps and the
//! plain DDIM loop's samples at 1, 2, 3 and 10 steps from fixed noise, as diffusers computes them.
//! Together the cases cover every supported field value (one head and several, downsample
//! padding 0 and 1, flip and not, freq_shift 0 and 1, f32/f16/bf16 weights, legacy attention
//! names, a sharded file, each beta schedule, each prediction type, each timestep spacing,
//! clip_sample on and off, set_alpha_to_one on and off, steps_offset).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use safetensors::SafeTensors;
use tract_studio::diffusion::{Solver, Times};
use tract_studio::generate::Model;
use tract_studio::model::{Net, flat_from_host};
use tract_studio::schedule::Param;
use tract_studio::tensors::{from_vec2, to_vec};

const CASES: [&str; 4] = [
    "ddpm_legacy",
    "multihead_f16",
    "cos_sample_bf16_sharded",
    "trailing_eps_3level",
];

fn dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diffusers")
        .join(case)
}

/// The golden tensors of a case (F32; `timesteps*` as F32 or I64) as f32 vectors.
fn golden(case: &str) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(dir(case).join("golden.safetensors")).expect("golden file");
    let st = SafeTensors::deserialize(&bytes).expect("golden safetensors");
    st.tensors()
        .into_iter()
        .map(|(n, t)| {
            let v: Vec<f32> = match t.dtype() {
                safetensors::Dtype::F32 => t
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::I64 => t
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                d => panic!("{n}: {d:?}"),
            };
            (n, (t.shape().to_vec(), v))
        })
        .collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn max_of(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

#[test]
fn unet_forward_matches_diffusers() {
    let dev = Device::flex();
    for case in CASES {
        let (file, _) = tract_studio::pipeline::load(&dir(case).display().to_string())
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let g = golden(case);
        let net = match Net::new(&file.meta.net().unwrap()) {
            Net::Diffusers(u) => u,
            _ => unreachable!(),
        };
        let flat = flat_from_host(file.flat.clone(), &dev);
        let grid = file.meta.grid();
        let (xs, x) = &g["x"];
        let n = xs[0];
        let d = x.len() / n;
        let ts = &g["timesteps"].1;
        let times = Times::new(
            ts.iter().map(|&t| grid.coef(t as usize + 1)).collect(),
            &dev,
        );
        let out = to_vec(net.raw(&flat, from_vec2(x.clone(), [n, d], &dev), &times));
        let want = &g["unet_out"].1;
        let err = max_abs(&out, want);
        // f32 forward: max abs 2e-5 (measured 1.2e-6 to 3.0e-6; outputs are O(1))
        assert!(
            err < 2e-5,
            "{case}: UNet output max abs error {err:.2e} (outputs up to {:.2})",
            max_of(want)
        );
        eprintln!("{case}: UNet max abs error {err:.2e}");
    }
}

#[test]
fn ddim_samples_match_diffusers_at_1_2_and_10_steps() {
    let dev = Device::flex();
    for case in CASES {
        let spec = format!("diffusers:{}", dir(case).display());
        let m = Model::load(&spec, Param::Vp, None, &dev).unwrap_or_else(|e| panic!("{case}: {e}"));
        let g = golden(case);
        let noise = &g["noise"].1;
        let d = m.dim();
        for k in [1usize, 2, 3, 10] {
            let ddpm = m.grid().ddpm.unwrap();
            if let Some((_, ts)) = g.get(&format!("timesteps_{k}")) {
                let ours: Vec<f32> = ddpm.timesteps(k).iter().map(|&t| t as f32).collect();
                assert_eq!(&ours, ts, "{case}: timesteps at {k} steps");
            }
            let got = m.sample(noise, k, Solver::Ddim, &dev).unwrap();
            let want = &g[&format!("ddim_{k}")].1;
            let err = max_abs(&got, want);
            assert_eq!(got.len(), noise.len());
            assert_eq!(noise.len() % d, 0);
            // relative to the samples' size: where nothing is clipped, alpha at the last
            // timestep of a 500-step schedule is 0.08 and samples reach about 50
            let scale = max_of(want).max(1.0);
            assert!(
                err < 2e-4 * scale,
                "{case}: DDIM {k} steps max abs error {err:.2e} (samples up to {scale:.2})"
            );
            eprintln!("{case}: DDIM {k} steps max abs error {err:.2e}");
        }
    }
}

#[test]
fn export_writes_a_pipeline_that_loads_back_identically() {
    let dev = Device::flex();
    for case in CASES {
        let spec = format!("diffusers:{}", dir(case).display());
        let file = tract_studio::generate::model_file(&spec).unwrap();
        let out = tempfile::tempdir().unwrap();
        tract_studio::pipeline::export(&file, out.path()).unwrap();
        for f in [
            "model_index.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "scheduler/scheduler_config.json",
            "README.md",
        ] {
            assert!(out.path().join(f).is_file(), "{case}: {f} missing");
        }
        let back =
            tract_studio::generate::model_file(&format!("diffusers:{}", out.path().display()))
                .unwrap();
        assert_eq!(back.flat, file.flat, "{case}: weights");
        assert_eq!(back.meta.diffusers, file.meta.diffusers, "{case}: network");
        let (a, b) = (file.meta.ddpm.unwrap(), back.meta.ddpm.unwrap());
        assert_eq!(
            (
                a.beta_schedule,
                a.beta_start,
                a.beta_end,
                a.clip,
                a.set_alpha_to_one
            ),
            (
                b.beta_schedule,
                b.beta_start,
                b.beta_end,
                b.clip,
                b.set_alpha_to_one
            ),
            "{case}: scheduler"
        );
        assert_eq!(b.spacing, tract_studio::schedule::Spacing::Trailing);
        // the exported file is a tract-studio model file as well
        let direct = tract_studio::checkpoint::ModelFile::load(
            &out.path().join("unet/diffusion_pytorch_model.safetensors"),
        )
        .unwrap();
        assert_eq!(direct.flat, file.flat);
        // and samples the same as the original with trailing spacing
        let mut orig = Model::load(&spec, Param::Vp, None, &dev).unwrap();
        orig.set_spacing(tract_studio::schedule::Spacing::Trailing)
            .unwrap();
        let re = Model::load(
            &format!("diffusers:{}", out.path().display()),
            Param::Vp,
            None,
            &dev,
        )
        .unwrap();
        let z = tract_studio::generate::noise(3, 2, orig.dim());
        assert_eq!(
            orig.sample(&z, 2, Solver::Ddim, &dev).unwrap(),
            re.sample(&z, 2, Solver::Ddim, &dev).unwrap()
        );
    }
}

#[test]
fn a_ddpm_cifar10_sized_network_runs_forward_and_backward() {
    // the layout of google/ddpm-cifar10-32 (35,746,307 parameters) on one 32x32 image
    use tract_studio::model::{DiffusersUnet, Unet2dConfig};
    let dev = Device::flex();
    let u = DiffusersUnet::new(Unet2dConfig::ddpm_cifar10());
    let flat = flat_from_host(u.init(&mut tract_studio::rng::Rng::new(0)), &dev);
    let grid = tract_studio::schedule::Grid::new(Param::Vp, 1000);
    let times = Times::new(vec![grid.coef(500)], &dev);
    let x: Tensor<2> = from_vec2(vec![0.1; 3 * 32 * 32], [1, 3 * 32 * 32], &dev);
    let y = to_vec(u.raw(&flat, x, &times));
    assert_eq!(y.len(), 3 * 32 * 32);
    assert!(y.iter().all(|v| v.is_finite()));
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tract-studio"))
}

fn run_ok(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{args:?} failed:\n{err}");
    String::from_utf8_lossy(&out.stdout).to_string() + &err
}

/// 1x8x8 idx images (squares on black) as a `mnist:DIR` data set.
fn idx_data(dir: &Path) {
    use tract_studio::data::idx::write_idx;
    std::fs::create_dir_all(dir).unwrap();
    let mut px = vec![0u8; 64 * 64];
    for k in 0..64 {
        let (y0, x0) = (k % 5, (k / 5) % 5);
        for y in y0..y0 + 3 {
            for x in x0..x0 + 3 {
                px[k * 64 + y * 8 + x] = 255;
            }
        }
    }
    for f in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
        write_idx(&dir.join(f), &[64, 8, 8], &px, false).unwrap();
    }
}

#[test]
fn distill_a_diffusers_teacher_export_the_student_and_sample_it() {
    // a teacher nobody trained here (v-prediction, 1000 steps, f16 weights), distilled with
    // TRACT 1000,10,1 on the discrete grid, exported, and read back
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("idx");
    idx_data(&data);
    let teacher = format!("diffusers:{}", dir("multihead_f16").display());
    let run = tmp.path().join("run");
    let data_spec = format!("mnist:{}", data.display());
    let common = [
        "--data",
        &data_spec,
        "--teacher",
        &teacher,
        "--train-samples",
        "128",
        "--batch",
        "16",
        "--device",
        "cpu",
    ];
    // a schedule that does not start at the teacher's num_train_timesteps is refused
    let bad = bin()
        .args(["distill"])
        .args(common)
        .args(["--schedule", "1024,32,1", "--out"])
        .arg(tmp.path().join("bad"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("1024,32,1") && err.contains("num_train_timesteps 1000"),
        "{err}"
    );
    assert!(!tmp.path().join("bad").exists());
    let printed = run_ok(
        &[
            &["distill"][..],
            &common[..],
            &["--schedule", "1000,10,1", "--out", run.to_str().unwrap()],
        ]
        .concat(),
    );
    // the pipeline does not say what it was trained on: said as such, not as other data
    assert!(
        printed.contains("a diffusers pipeline does not say what data it was trained on")
            && !printed.contains("was trained on diffusers:"),
        "{printed}"
    );
    let student = run.join("student.safetensors");
    let file = tract_studio::checkpoint::ModelFile::load(&student).unwrap();
    assert_eq!(file.meta.steps, 1);
    assert_eq!(file.meta.kind, "tract");
    let d = file
        .meta
        .ddpm
        .expect("the student keeps the teacher's grid");
    assert_eq!(
        (d.train_steps, d.spacing),
        (1000, tract_studio::schedule::Spacing::Trailing)
    );
    let exp = tmp.path().join("exported");
    run_ok(&[
        "export",
        "--model",
        student.to_str().unwrap(),
        "--out",
        exp.to_str().unwrap(),
    ]);
    let sched: serde_json::Value = serde_json::from_slice(
        &std::fs::read(exp.join("scheduler/scheduler_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sched["prediction_type"], "v_prediction");
    assert_eq!(sched["timestep_spacing"], "trailing");
    // the exported folder is the student: same weights, same 1-step samples, same step count
    let dev = Device::flex();
    let a = Model::load(student.to_str().unwrap(), Param::Vp, None, &dev).unwrap();
    let b = Model::load(
        &format!("diffusers:{}", exp.display()),
        Param::Vp,
        None,
        &dev,
    )
    .unwrap();
    assert_eq!(b.native_steps(), 1);
    let z = tract_studio::generate::noise(1, 4, a.dim());
    assert_eq!(
        a.sample(&z, 1, Solver::Ddim, &dev).unwrap(),
        b.sample(&z, 1, Solver::Ddim, &dev).unwrap()
    );
}

/// `distill` of the v-prediction fixture teacher on 8x8 idx data (made in `tmp` once), batch
/// 16 on the CPU, into `out`, with `extra` flags.
fn distill_fixture(tmp: &Path, extra: &[&str], out: &Path) -> std::process::Output {
    let data = tmp.join("idx");
    if !data.exists() {
        idx_data(&data);
    }
    let teacher = format!("diffusers:{}", dir("multihead_f16").display());
    let data_spec = format!("mnist:{}", data.display());
    bin()
        .args(["distill", "--data", &data_spec, "--teacher", &teacher])
        .args(["--batch", "16", "--device", "cpu"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// stdout and stderr of a command that must succeed.
fn ok(out: std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "failed:\n{err}");
    String::from_utf8_lossy(&out.stdout).to_string() + &err
}

#[test]
fn a_reparametrised_student_is_refit_to_its_teacher_first() {
    // the v-prediction fixture's student read as x0 ("sample"): --fit-samples re-fits the
    // copied network to the teacher's x0 on the teacher's own timesteps before distilling
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let short = ["--schedule", "1000,10,1", "--train-samples", "32"];
    let x0 = ["--student-prediction", "sample"];
    let refit = ["--fit-samples", "768", "--lr", "2e-3"];
    let out = ok(distill_fixture(
        tmp.path(),
        &[&x0[..], &refit[..], &short[..]].concat(),
        &run,
    ));
    assert!(
        out.contains("re-fit the student's new parametrisation (sample)"),
        "{out}"
    );
    assert!(run.join("phase0-fit.safetensors").exists());
    // the fit's loss (x0 error to the teacher, truncated-SNR weights) falls: the last 12
    // steps' mean is under half the first 12's
    let csv = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    let fit: Vec<f64> = csv
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("0,"))
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(fit.len(), 48);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&fit[..12]), mean(&fit[36..]));
    assert!(last < 0.5 * first, "fit loss {first} -> {last}");
    // without --fit-samples the re-parametrised student starts from the copied weights
    let plain = tmp.path().join("plain");
    let out = ok(distill_fixture(
        tmp.path(),
        &[&x0[..], &short[..]].concat(),
        &plain,
    ));
    assert!(!out.contains("re-fit"), "{out}");
    assert!(!plain.join("phase0-fit.safetensors").exists());
}

#[test]
fn btd_from_a_1000_step_teacher_starts_with_one_tract_phase() {
    // 1000 / 1 is not a power of two: BTD 1000,8,1 is TRACT 1000 -> 8, then BTD 8 -> 4 -> 2 -> 1
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let btd = |sched: &'static str| {
        [
            "--method",
            "btd",
            "--schedule",
            sched,
            "--train-samples",
            "64",
        ]
    };
    let out = ok(distill_fixture(tmp.path(), &btd("1000,8,1"), &run));
    assert!(
        out.contains("tract-1000to8: 16 samples, then btd-8to4: 16 samples, then btd-4to2"),
        "{out}"
    );
    for f in [
        "phase0-tract-1000to8",
        "phase1-btd-8to4",
        "phase2-btd-4to2",
        "phase3-btd-2to1",
    ] {
        assert!(run.join(format!("{f}.safetensors")).exists(), "{f}");
    }
    let file = tract_studio::checkpoint::ModelFile::load(&run.join("student.safetensors")).unwrap();
    assert_eq!((file.meta.steps, file.meta.kind.as_str()), (1, "btd"));
    // 1000,1 alone is refused, naming the schedule that works
    let bad = distill_fixture(tmp.path(), &btd("1000,1"), &tmp.path().join("bad"));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("for example 1000,8,1"), "{err}");
    assert!(!tmp.path().join("bad").exists());
}
