//! Throughput benchmarks, reported as ratios measured in one run.

use web_time::Instant;

use burn::tensor::{Device, Tensor};

use crate::Result;
use crate::engine::data::Data;
use crate::engine::distill::{DistillConfig, Event, Run};
use crate::engine::schedule::Param;
use crate::engine::tensors::transfers;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Throughput {
    pub backend: String,
    pub batch: usize,
    pub steps: u64,
    pub samples_per_s: f64,
    /// host round trips per optimizer step over the measured steps: tensors read back
    pub reads_per_step: f64,
    /// and host data uploaded
    pub uploads_per_step: f64,
}

/// Distillation throughput (TRACT 1024 -> 32 steps with the exact ring8 teacher), timed
/// after `warmup` steps (rounded up to a multiple of the loop's loss-read interval, whose
/// step events come after the read) so shader compilation and autotuning are excluded.
pub fn distill_throughput(
    device: &Device,
    label: &str,
    batch: usize,
    warmup: u64,
    steps: u64,
) -> Result<Throughput> {
    let k = crate::engine::distill::LOSS_READ_EVERY;
    let warmup = warmup.div_ceil(k).max(1) * k;
    let data = Data::parse("toy:ring8")?;
    let mut cfg = DistillConfig::new(&data, Param::Vp);
    cfg.batch = batch;
    cfg.fit_samples = batch as u64;
    cfg.schedule = "1024,32".into();
    cfg.train_samples = (warmup + steps) * batch as u64;
    cfg.ckpt_every = u64::MAX;
    let dir = std::env::temp_dir().join(format!(
        "tract-bench-{}-{}",
        std::process::id(),
        label.replace(' ', "_")
    ));
    let mut run = Run::new(cfg, &dir, device)?;
    let mut t0: Option<Instant> = None;
    let mut counted = 0u64;
    // host transfers from the end of the warm-up to the last step's event (which comes after
    // the last step's loss is read); a phase end's reads (the model file) are not counted
    let (mut x0, mut x1) = (None, None);
    let last = warmup + steps;
    let mut obs = |e: &Event| {
        if let Event::Step { phase: 1, step, .. } = e {
            if *step == warmup {
                t0 = Some(Instant::now());
                x0 = Some(transfers());
            } else if *step > warmup {
                counted += 1;
            }
            if *step == last {
                x1 = Some(transfers());
            }
        }
        true
    };
    run.run(false, &mut obs, None)?;
    let secs = t0.map(|t| t.elapsed().as_secs_f64()).unwrap_or(f64::NAN);
    let _ = std::fs::remove_dir_all(&dir);
    let per_step = match (x0, x1) {
        (Some(a), Some(b)) if counted > 0 => {
            let d = b - a;
            (
                d.reads as f64 / counted as f64,
                d.uploads as f64 / counted as f64,
            )
        }
        _ => (f64::NAN, f64::NAN),
    };
    Ok(Throughput {
        backend: label.into(),
        batch,
        steps: counted,
        samples_per_s: counted as f64 * batch as f64 / secs,
        reads_per_step: per_step.0,
        uploads_per_step: per_step.1,
    })
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTiming {
    pub name: String,
    pub elements: usize,
    pub bytes: usize,
    pub kernel_ms: f64,
    pub burn_ms: f64,
}

impl KernelTiming {
    pub fn gbps(&self, ms: f64) -> f64 {
        self.bytes as f64 / (ms * 1e-3) / 1e9
    }
}

type Keep = Box<dyn std::any::Any>;

/// The one timing loop: `warmup + reps` rounds of `setup(i)` (not timed) then `work` on its
/// result (timed); the median of the last `reps`, in ms. What `work` returns is dropped after
/// the clock stops.
fn median_ms<T, K>(
    warmup: usize,
    reps: usize,
    mut setup: impl FnMut(usize) -> T,
    mut work: impl FnMut(T) -> K,
) -> f64 {
    let mut v = Vec::with_capacity(reps);
    for i in 0..warmup + reps {
        let input = setup(i);
        let t = Instant::now();
        let keep = work(input);
        let dt = t.elapsed().as_secs_f64() * 1e3;
        drop(keep);
        if i >= warmup {
            v.push(dt);
        }
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median time (ms) of `f` followed by a device sync, after warm-up.
/// The outputs stay alive until after the sync, so lazily fused work cannot be skipped.
fn time_ms(device: &Device, reps: usize, f: &mut dyn FnMut() -> Keep) -> f64 {
    median_ms(
        3,
        reps,
        |_| (),
        |()| {
            let k = f();
            let _ = device.sync();
            k
        },
    )
}

/// Each WGSL kernel against the same math as plain Burn ops (with Burn's own fusion), on
/// one device, at realistic sizes: a batch of 256 images of 1x32x32 and a 2M-weight model.
pub fn kernels(device: &Device, reps: usize) -> Vec<KernelTiming> {
    use crate::engine::kernels::{self, reference};
    use crate::engine::tensors::{from_vec1, from_vec2};
    let mut rng = crate::engine::rng::Rng::new(1);
    let (n, d) = (256usize, 1024usize);
    let m = n * d;
    let x = from_vec2(rng.normals(m), [n, d], device);
    let y = from_vec2(rng.normals(m), [n, d], device);
    let e = from_vec2(rng.normals(m), [n, d], device);
    let f = from_vec2(rng.normals(m), [n, d], device);
    let a: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let b: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let w: Vec<f64> = (0..n).map(|_| rng.uniform() + 1.0).collect();
    let col = |v: &[f64]| from_vec1(v.iter().map(|&x| x as f32).collect(), device);
    let (ta, tb, tw) = (col(&a), col(&b), col(&w));
    let mut out = vec![];
    let mut run = |name: &str,
                   elems: usize,
                   bytes: usize,
                   k: &mut dyn FnMut() -> Keep,
                   r: &mut dyn FnMut() -> Keep| {
        kernels::set_enabled(true);
        let kernel_ms = time_ms(device, reps, k);
        kernels::set_enabled(false);
        let burn_ms = time_ms(device, reps, r);
        kernels::set_enabled(true);
        out.push(KernelTiming {
            name: name.into(),
            elements: elems,
            bytes,
            kernel_ms,
            burn_ms,
        });
    };
    fn keep<T: 'static>(t: T) -> Keep {
        Box::new(t)
    }
    // DDIM step / noisify / target: read x, y, write out (+ per-row coefficients)
    run(
        "DDIM step / noisify (a x + b y)",
        m,
        3 * m * 4,
        &mut || keep(kernels::row_axpby(x.clone(), y.clone(), &a, &b, false)),
        &mut || {
            keep(reference::row_axpby(
                x.clone(),
                y.clone(),
                ta.clone(),
                tb.clone(),
                false,
            ))
        },
    );
    run(
        "DDIM step with x0 clip",
        m,
        3 * m * 4,
        &mut || keep(kernels::row_axpby(x.clone(), y.clone(), &a, &b, true)),
        &mut || {
            keep(reference::row_axpby(
                x.clone(),
                y.clone(),
                ta.clone(),
                tb.clone(),
                true,
            ))
        },
    );
    run(
        "Heun combination",
        m,
        5 * m * 4,
        &mut || {
            keep(kernels::heun_combine(
                x.clone(),
                y.clone(),
                e.clone(),
                f.clone(),
                &a,
                &b,
            ))
        },
        &mut || {
            keep(reference::heun_combine(
                x.clone(),
                y.clone(),
                e.clone(),
                f.clone(),
                ta.clone(),
                tb.clone(),
            ))
        },
    );
    run(
        "TRACT target + weighted loss",
        m,
        5 * m * 4,
        &mut || {
            keep(kernels::tract_loss(
                e.clone(),
                x.clone(),
                y.clone(),
                &a,
                &b,
                &w,
            ))
        },
        &mut || {
            keep(reference::tract_loss(
                e.clone(),
                x.clone(),
                y.clone(),
                ta.clone(),
                tb.clone(),
                tw.clone(),
            ))
        },
    );
    let p = 2_000_000usize;
    let phi = from_vec1(rng.normals(p), device);
    let es = from_vec1(rng.normals(p), device);
    let ei = from_vec1(rng.normals(p), device);
    run(
        "EMA pair, 2M weights",
        p,
        5 * p * 4,
        &mut || {
            keep(kernels::ema2_kernel(
                &phi,
                es.clone(),
                ei.clone(),
                0.5,
                0.001,
            ))
        },
        &mut || keep(reference::ema2(&phi, es.clone(), ei.clone(), 0.5, 0.001)),
    );
    let img = x.clone().reshape([256, 1, 32, 32]);
    // the grid: the kernel packs on the device; the reference reads back and packs on the host
    run(
        "RGBA8 grid 256 x 32x32 (16 cols)",
        m,
        2 * m * 4,
        &mut || keep(kernels::rgba_grid(img.clone(), 16, -1.0, 1.0)),
        &mut || keep(kernels::rgba_grid(img.clone(), 16, -1.0, 1.0)),
    );
    out
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct UnetThroughput {
    pub what: String,
    pub batch: usize,
    pub ms: f64,
    pub images_per_s: f64,
    /// The process's peak resident memory after this measurement (VmHWM, MiB; on lavapipe
    /// the "GPU" memory is host memory too). None where /proc is missing.
    pub peak_mib: Option<f64>,
}

/// Peak resident set size of this process so far, in MiB (Linux /proc/self/status VmHWM).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A UNet on 1x32x32: one training step (forward, backward, Adam) and one sampling step
/// (a forward pass), each at batch 64 and 256; median of `reps` after a warm-up.
pub fn unet(
    device: &Device,
    cfg: &crate::engine::model::UnetConfig,
    reps: usize,
) -> Vec<UnetThroughput> {
    let cfg = crate::engine::model::NetConfig::Unet(cfg.clone());
    let points = [(true, 64), (true, 256), (false, 64), (false, 256)];
    net_throughput(device, &cfg, &points, reps)
}

/// google/ddpm-cifar10-32's UNet2DModel (35.7M parameters, 3x32x32, randomly initialised): a
/// training step at batch 8, a forward pass at batch 8 and 32 (the points benches/peer/unet2d.py
/// measures).
pub fn ddpm_cifar10(device: &Device, reps: usize) -> Vec<UnetThroughput> {
    let cfg = crate::engine::model::NetConfig::Diffusers(
        crate::engine::model::Unet2dConfig::ddpm_cifar10(),
    );
    net_throughput(device, &cfg, &[(true, 8), (false, 8), (false, 32)], reps)
}

/// Training steps (`true`) and forward passes at the given batches.
pub fn net_throughput(
    device: &Device,
    cfg: &crate::engine::model::NetConfig,
    points: &[(bool, usize)],
    reps: usize,
) -> Vec<UnetThroughput> {
    use crate::engine::diffusion::Times;
    use crate::engine::model::{Net, flat_from_host};
    use crate::engine::optim::{Adam, AdamConfig};
    use crate::engine::schedule::Grid;
    use crate::engine::tensors::{from_vec2, to_vec};
    let net = Net::new(cfg);
    let layout = net.layout();
    let dim = cfg.dim();
    let mut rng = crate::engine::rng::Rng::new(1);
    let mut flat = flat_from_host(net.init(&mut rng), device);
    let mut adam = Adam::new(&flat);
    let acfg = AdamConfig::default();
    let g = Grid::new(Param::Vp, 1024);
    let mut out = vec![];
    // TRACT_BENCH_ONLY=sample256,train64 (a profiling aid): only these points
    let only = std::env::var("TRACT_BENCH_ONLY").ok();
    for &(train, b) in points {
        // a build without training has no train row
        if train && !cfg!(feature = "train") {
            continue;
        }
        {
            let point = format!("{}{b}", if train { "train" } else { "sample" });
            if only
                .as_ref()
                .is_some_and(|o| !o.split(',').any(|p| p.trim() == point))
            {
                continue;
            }
            // fresh inputs each round (not timed); a one-value read ends each timed round
            let setup = |i: usize| {
                let x = from_vec2(rng.normals(b * dim), [b, dim], device);
                let tm = Times::new(
                    (0..b).map(|k| g.coef(1 + (k * 997 + i) % 1024)).collect(),
                    device,
                );
                (x, tm)
            };
            let work = |(x, tm): (Tensor<2>, Times)| {
                if train {
                    // as training runs it: the tensors as autodiff leaves (model::Params)
                    let leaves = layout.leaves(&flat);
                    let y = net.forward(&leaves, x.clone(), &tm);
                    let loss = ((y - x).powf_scalar(2.0)).mean();
                    #[cfg(feature = "train")]
                    let g = layout.backward(&leaves, &loss).expect("gradient");
                    // never run: without training there is no train row (above)
                    #[cfg(not(feature = "train"))]
                    let g = (flat.clone(), loss, leaves).0;
                    flat = adam.step(&acfg, flat.clone(), g);
                    let _ = to_vec(flat.clone().narrow(0, 0, 1));
                } else {
                    let _ = to_vec(net.forward(&flat, x, &tm).narrow(0, 0, 1));
                }
            };
            let ms = median_ms(1, reps, setup, work);
            out.push(UnetThroughput {
                // the names benches/peer/unet.py uses
                what: if train { "train" } else { "sample" }.into(),
                batch: b,
                ms,
                images_per_s: b as f64 / ms * 1e3,
                peak_mib: peak_rss_mib(),
            });
        }
    }
    out
}

fn json_lines(text: &str) -> Vec<UnetThroughput> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<UnetThroughput>(l).ok())
        .collect()
}

/// `bench --unet` for one size on the CPU backend in a child process of `exe` (so its peak RSS
/// is its own), the CPU kernels "on" or "off".
pub fn unet_child(
    exe: &std::path::Path,
    size: &str,
    mode: &str,
    reps: usize,
) -> crate::Result<Vec<UnetThroughput>> {
    // the diffusers network has its own flag
    let what = if size == "ddpm-cifar10" {
        ["--net", size]
    } else {
        ["--size", size]
    };
    let o = std::process::Command::new(exe)
        .args([
            "bench",
            "--unet",
            "--cpu-only",
            what[0],
            what[1],
            "--child",
            mode,
        ])
        .args(["--reps", &reps.to_string()])
        .output()
        .map_err(|e| crate::Error::io(format!("running {}", exe.display()), e))?;
    let out = json_lines(&String::from_utf8_lossy(&o.stdout));
    let want = if size == "ddpm-cifar10" { 3 } else { 4 };
    if !o.status.success() || out.len() != want {
        return Err(crate::Error::Input(format!(
            "the {size} UNet benchmark (kernels {mode}) failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(out)
}

/// The PyTorch peer (benches/peer/unet.py, the same network) at the same points, when python3
/// with torch is here; an error saying why not otherwise.
pub fn peer_unet(
    size: &str,
    threads: usize,
    device: &str,
    reps: usize,
) -> crate::Result<Vec<UnetThroughput>> {
    // the diffusers network's peer is diffusers' own UNet2DModel
    let script = if size == "ddpm-cifar10" {
        [
            "benches/peer/unet2d.py",
            concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/unet2d.py"),
        ]
    } else {
        [
            "benches/peer/unet.py",
            concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/unet.py"),
        ]
    };
    let script = script
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| crate::Error::Input(format!("{} not found", script[0])))?;
    let o = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--size",
            size,
            "--threads",
            &threads.to_string(),
            "--device",
            device,
        ])
        .args(["--reps", &reps.to_string(), "--json"])
        .output()
        .map_err(|e| crate::Error::io("running python3".to_string(), e))?;
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        let why = if err.contains("No module named") {
            "torch (and diffusers for ddpm-cifar10) is not importable (pip install torch diffusers)"
                .to_string()
        } else {
            err.lines().last().unwrap_or("python3 failed").to_string()
        };
        return Err(crate::Error::Input(why));
    }
    Ok(json_lines(&String::from_utf8_lossy(&o.stdout)))
}

/// One data-parallel training step, measured (`bench --allreduce`): per step, the whole
/// step and its gradient all-reduce (with the device -> host -> device copies), medians
/// over the measured steps on rank 0.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DataParallelStep {
    pub what: String,
    pub ranks: usize,
    pub batch: usize,
    pub params: usize,
    /// bytes each rank puts into the all-reduce per step (the f32 gradient and the loss)
    pub bytes: usize,
    pub steps: u64,
    pub step_ms: f64,
    pub allreduce_ms: f64,
    pub compute_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Time the steps after `warmup` of the run `cfg` describes over `collective`, of
/// phase `phase` (the fit of a teacher: 0; a TRACT phase after a one-step fit: 1).
pub fn data_parallel_steps(
    device: &Device,
    collective: std::sync::Arc<dyn crate::engine::collective::Collective>,
    what: &str,
    cfg: DistillConfig,
    phase: usize,
    warmup: u64,
) -> Result<DataParallelStep> {
    let (ranks, batch) = (collective.size(), cfg.batch);
    let dir = std::env::temp_dir().join(format!(
        "tract-bench-dp-{}-{}",
        std::process::id(),
        what.replace([' ', ':', '/'], "_")
    ));
    let mut run = Run::new(cfg, &dir, device)?;
    run.set_collective(collective)?;
    let params = crate::engine::model::Net::new(&run.cfg.net).layout().total;
    let (mut step_s, mut sync_s) = (vec![], vec![]);
    let mut obs = |e: &Event| {
        if let Event::Step {
            phase: p,
            step,
            step_s: s,
            allreduce_s: a,
            ..
        } = e
            && *p == phase
            && *step > warmup
        {
            step_s.push(*s);
            sync_s.push(*a);
        }
        true
    };
    run.run(false, &mut obs, None)?;
    let _ = std::fs::remove_dir_all(&dir);
    let n = step_s.len() as u64;
    let compute: Vec<f64> = step_s.iter().zip(&sync_s).map(|(s, a)| s - a).collect();
    Ok(DataParallelStep {
        what: what.into(),
        ranks,
        batch,
        params,
        bytes: 4 * (params + 1),
        steps: n,
        step_ms: 1e3 * median(step_s),
        allreduce_ms: 1e3 * median(sync_s),
        compute_ms: 1e3 * median(compute),
    })
}

/// Median seconds of one all-reduce of `n` f32 (host buffers, MPI only) over `reps` calls.
pub fn allreduce_seconds(
    collective: &dyn crate::engine::collective::Collective,
    n: usize,
    reps: usize,
) -> Result<f64> {
    let mut buf = vec![1.0f32; n];
    collective.all_reduce_sum(&mut buf)?;
    let mut t = vec![];
    for _ in 0..reps.max(1) {
        let s = Instant::now();
        collective.all_reduce_sum(&mut buf)?;
        t.push(s.elapsed().as_secs_f64());
    }
    Ok(median(t))
}
