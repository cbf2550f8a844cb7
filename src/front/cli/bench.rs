//! `bench`: distillation throughput on the CPU backend and on wgpu, the WGSL kernels against
//! Burn's ops, and `--unet`: the UNet with the CPU kernels on and off against PyTorch.

use anyhow::{Context, bail};

use super::choices::{DeviceArg, SizeArg, pick};
use super::{MAX_BATCH, count, examples, pick_device};
use crate::engine::device::{self, Choice};
use crate::engine::schedule::Param;

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("distillation throughput on the CPU backend only", "tract-studio bench --cpu-only"),
    ("the UNet with the CPU kernels on and off, without the PyTorch peer", "tract-studio bench --unet --size tiny --no-peer --cpu-only"),
    ("the UNet on a GPU through wgpu against the PyTorch peer on CUDA, results also as JSON", "tract-studio bench --unet --size small --device wgpu --peer-device cuda --json unet.json"),
]))]
pub(super) struct BenchArgs {
    /// samples per optimizer step
    #[arg(long, default_value_t = 512, value_parser = count(1, MAX_BATCH))]
    pub(super) batch: usize,
    /// optimizer steps measured on the CPU (wgpu: a quarter, at least 10)
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(super) steps: u64,
    /// skip the wgpu measurement
    #[arg(long)]
    pub(super) cpu_only: bool,
    /// time each WGSL kernel against the same math as Burn ops, and the distillation step
    /// with kernels on and off
    #[arg(long)]
    pub(super) kernels: bool,
    /// --kernels: where they run (auto means wgpu here, software adapters included: the
    /// WGSL kernels run only there); --unet: cpu measures the CPU only, wgpu only wgpu (against
    /// the PyTorch peer), auto both; the distillation throughput measures the CPU and wgpu both
    #[arg(long, default_value = "auto", value_parser = pick::<DeviceArg>())]
    pub(super) device: DeviceArg,
    /// UNet (images) training and sampling throughput instead
    #[arg(long)]
    pub(super) unet: bool,
    /// the UNet presets for --unet, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "tiny,small", value_parser = pick::<SizeArg>())]
    pub(super) size: Vec<SizeArg>,
    /// --unet: a diffusers UNet2DModel instead of the presets: ddpm-cifar10 (google/ddpm-cifar10-32's
    /// network, 35.7M parameters, random weights; peer: diffusers' own UNet2DModel)
    #[arg(long)]
    pub(super) net: Option<String>,
    /// --unet: measurements per point (median after a warm-up)
    #[arg(long, default_value_t = 3)]
    pub(super) reps: usize,
    /// --unet: do not run the PyTorch peer (benches/peer/unet.py)
    #[arg(long)]
    pub(super) no_peer: bool,
    /// --unet: the PyTorch peer's device (cpu, or cuda where a GPU is)
    #[arg(long, default_value = "cpu")]
    pub(super) peer_device: String,
    /// also write what was measured to this file, as one JSON object
    #[arg(long, value_name = "FILE")]
    pub(super) json: Option<std::path::PathBuf>,
    /// data-parallel training on the CPU, under `mpirun -np N` (or in one process): per step
    /// the compute and the gradient all-reduce (ring8 MLP distillation at --batch, a tiny-UNet
    /// teacher at batch 16), and the all-reduce alone at the gradient sizes of the tiny, small
    /// and ddpm-cifar10 UNets
    #[arg(long)]
    pub(super) allreduce: bool,
    /// internal: one CPU measurement with the CPU kernels on or off, as JSON lines
    #[arg(long, hide = true)]
    pub(super) child: Option<String>,
}

/// `bench --unet`: per size, the CPU backend with the CPU kernels on and off (each in its own
/// process, so peak RSS is each one's own) and the PyTorch peer, in one invocation, as ratios;
/// then wgpu unless --cpu-only.
pub(super) fn bench_unet(a: &BenchArgs) -> anyhow::Result<()> {
    use crate::jobs::bench::{UnetThroughput, peer_unet, unet_child};
    if let Some(n) = &a.net {
        return bench_ddpm_cifar10(a, n);
    }
    let sizes: Vec<&str> = a.size.iter().map(|s| s.name()).collect();
    let mut cfgs = vec![];
    for s in &sizes {
        let Some(cfg) = crate::engine::model::UnetConfig::preset(s, 1, 32, 32, Param::Vp) else {
            bail!("--size {s}: expected tiny, small or large (comma-separated)");
        };
        cfgs.push(cfg);
    }
    if let Some(mode) = &a.child {
        let on = match mode.as_str() {
            "on" => true,
            "off" => false,
            _ => bail!("--child {mode}: expected on or off"),
        };
        crate::engine::kernels::cpu::set_enabled(on);
        for r in crate::jobs::bench::unet(&device::cpu().device, &cfgs[0], a.reps) {
            println!("{}", serde_json::to_string(&r)?);
        }
        return Ok(());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // --device: cpu = the CPU table only, wgpu = wgpu only (against the peer), auto = both
    let on_cpu = a.device != DeviceArg::Wgpu;
    let on_wgpu = !a.cpu_only && a.device != DeviceArg::Cpu;
    let peer_of = |name: &str| -> Option<Vec<UnetThroughput>> {
        if a.no_peer {
            return None;
        }
        match peer_unet(name, threads, &a.peer_device, a.reps) {
            Ok(p) => Some(p),
            Err(e) => {
                println!("  PyTorch peer skipped: {e}");
                None
            }
        }
    };
    let params_of = |cfg: &crate::engine::model::UnetConfig| {
        crate::engine::model::unet::Unet::new(cfg.clone())
            .layout()
            .total
    };
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    // per size: what was measured, for --json
    let mut found = serde_json::Map::new();
    if on_cpu {
        println!(
            "UNet on 1x32x32, CPU ({threads} threads): median of {} after a warm-up; peak = each process's peak RSS",
            a.reps
        );
        let exe = std::env::current_exe().context("locating this binary")?;
        for (name, cfg) in sizes.iter().zip(&cfgs) {
            let params = params_of(cfg);
            println!("\n{name} UNet ({params} parameters)");
            let ours = unet_child(&exe, name, "on", a.reps)?;
            let burn = unet_child(&exe, name, "off", a.reps)?;
            let peer = peer_of(name);
            println!(
                "  {:<10} {:>5} {:>10} {:>12} {:>11} {:>11} {:>13} {:>21}",
                "step",
                "batch",
                "ours ms",
                "Burn ops ms",
                "PyTorch ms",
                "ours/Burn",
                "ours/PyTorch",
                "peak MiB ours/Burn/PT"
            );
            for (i, o) in ours.iter().enumerate() {
                let b = &burn[i];
                let p = peer
                    .as_ref()
                    .and_then(|p| p.iter().find(|r| r.what == o.what && r.batch == o.batch));
                println!(
                    "  {:<10} {:>5} {:>10.0} {:>12.0} {:>11} {:>10.2}x {:>12} {:>21}",
                    o.what,
                    o.batch,
                    o.ms,
                    b.ms,
                    f(p.map(|p| p.ms)),
                    b.ms / o.ms,
                    p.map_or("-".to_string(), |p| format!("{:.2}x", p.ms / o.ms)),
                    format!(
                        "{}/{}/{}",
                        f(o.peak_mib),
                        f(b.peak_mib),
                        f(p.and_then(|p| p.peak_mib))
                    )
                );
            }
            found.insert(
                name.to_string(),
                serde_json::json!({"parameters": params, "cpu": ours, "cpu_burn_ops": burn, "peer": peer}),
            );
        }
        println!("\n(ours/Burn and ours/PyTorch: how many times faster ours is; above 1 = faster)");
    }
    let mut adapter = None;
    if on_wgpu {
        match device::pick(Choice::Wgpu) {
            Ok(p) => {
                if !on_cpu {
                    println!(
                        "UNet on 1x32x32 on {}: median of {} after a warm-up; PyTorch peer on {}",
                        p.label, a.reps, a.peer_device
                    );
                }
                for (name, cfg) in sizes.iter().zip(&cfgs) {
                    let params = params_of(cfg);
                    let entry = found
                        .entry(name.to_string())
                        .or_insert_with(|| serde_json::json!({"parameters": params}));
                    if on_cpu {
                        let ours = crate::jobs::bench::unet(&p.device, cfg, a.reps);
                        for r in &ours {
                            println!(
                                "  {} {name}: {:<8} batch {:>3}: {:>8.0} ms  {:>7.1} images/s",
                                p.label, r.what, r.batch, r.ms, r.images_per_s
                            );
                        }
                        entry["wgpu"] = serde_json::json!(ours);
                        continue;
                    }
                    // wgpu alone: against the peer, side by side
                    println!("\n{name} UNet ({params} parameters)");
                    let ours = crate::jobs::bench::unet(&p.device, cfg, a.reps);
                    let peer = peer_of(name);
                    println!(
                        "  {:<10} {:>5} {:>10} {:>10} {:>11} {:>13}",
                        "step", "batch", "wgpu ms", "images/s", "PyTorch ms", "ours/PyTorch"
                    );
                    for o in &ours {
                        let pt = peer.as_ref().and_then(|p| {
                            p.iter().find(|r| r.what == o.what && r.batch == o.batch)
                        });
                        println!(
                            "  {:<10} {:>5} {:>10.1} {:>10.1} {:>11} {:>13}",
                            o.what,
                            o.batch,
                            o.ms,
                            o.images_per_s,
                            pt.map_or("-".to_string(), |p| format!("{:.1}", p.ms)),
                            pt.map_or("-".to_string(), |p| format!("{:.2}x", p.ms / o.ms)),
                        );
                    }
                    entry["wgpu"] = serde_json::json!(ours);
                    entry["peer"] = serde_json::json!(peer);
                }
                if !on_cpu {
                    println!("\n(ours/PyTorch: how many times faster ours is; above 1 = faster)");
                }
                adapter = Some(p.label);
            }
            Err(e) => println!("wgpu: skipped ({e})"),
        }
    }
    write_json(
        a,
        serde_json::json!({
            "bench": "unet",
            "reps": a.reps,
            "cpu_threads": threads,
            "peer_device": if a.no_peer { None } else { Some(&a.peer_device) },
            "wgpu_adapter": adapter,
            "sizes": found,
        }),
    )
}

/// --json FILE: what a bench measured, as one JSON object.
fn write_json(a: &BenchArgs, v: serde_json::Value) -> anyhow::Result<()> {
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&v)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("results: {}", path.display());
    }
    Ok(())
}

/// `bench --unet --net ddpm-cifar10`: the diffusers network with the CPU kernels on and off
/// and diffusers' UNet2DModel in PyTorch, in one invocation, with GFLOP/s of the forward.
fn bench_ddpm_cifar10(a: &BenchArgs, net: &str) -> anyhow::Result<()> {
    use crate::jobs::bench::{ddpm_cifar10, peer_unet, unet_child};
    if net != "ddpm-cifar10" {
        bail!("--net {net}: expected ddpm-cifar10");
    }
    if let Some(mode) = &a.child {
        crate::engine::kernels::cpu::set_enabled(mode == "on");
        for r in ddpm_cifar10(&device::cpu().device, a.reps) {
            println!("{}", serde_json::to_string(&r)?);
        }
        return Ok(());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let exe = std::env::current_exe().context("locating this binary")?;
    // forward FLOPs per image (multiply-adds x 2): convolutions, linears and attention
    let gflop = ddpm_cifar10_forward_gflop();
    println!(
        "google/ddpm-cifar10-32's UNet2DModel (35,746,307 parameters, random weights) on 3x32x32, CPU ({threads} threads), median of {}; {gflop:.2} GFLOP per image forward",
        a.reps
    );
    let ours = unet_child(&exe, net, "on", a.reps)?;
    let burn = unet_child(&exe, net, "off", a.reps)?;
    let peer = if a.no_peer {
        None
    } else {
        match peer_unet(net, threads, &a.peer_device, a.reps) {
            Ok(p) => Some(p),
            Err(e) => {
                println!("  PyTorch peer skipped: {e}");
                None
            }
        }
    };
    println!(
        "  {:<7} {:>5} {:>9} {:>11} {:>11} {:>12} {:>10} {:>21}",
        "step",
        "batch",
        "ours ms",
        "Burn ops ms",
        "PyTorch ms",
        "ours/PyTorch",
        "GFLOP/s",
        "peak MiB ours/Burn/PT"
    );
    for (o, b) in ours.iter().zip(&burn) {
        let p = peer
            .as_ref()
            .and_then(|p| p.iter().find(|r| r.what == o.what && r.batch == o.batch));
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        // a training step is about 3 forwards
        let flop = gflop * o.batch as f64 * if o.what == "train" { 3.0 } else { 1.0 };
        println!(
            "  {:<7} {:>5} {:>9.0} {:>11.0} {:>11} {:>12} {:>10.1} {:>21}",
            o.what,
            o.batch,
            o.ms,
            b.ms,
            f(p.map(|p| p.ms)),
            p.map_or("-".to_string(), |p| format!("{:.2}x", p.ms / o.ms)),
            flop / (o.ms / 1e3),
            format!(
                "{}/{}/{}",
                f(o.peak_mib),
                f(b.peak_mib),
                f(p.and_then(|p| p.peak_mib))
            )
        );
    }
    println!(
        "(ours/PyTorch above 1 = ours faster; GFLOP/s of ours, a train step counted as 3 forwards)"
    );
    write_json(
        a,
        serde_json::json!({
            "bench": "unet",
            "net": net,
            "reps": a.reps,
            "cpu_threads": threads,
            "forward_gflop_per_image": gflop,
            "cpu": ours,
            "cpu_burn_ops": burn,
            "peer_device": if a.no_peer { None } else { Some(&a.peer_device) },
            "peer": peer,
        }),
    )
}

/// Forward GFLOP per image of google/ddpm-cifar10-32's network (2 x multiply-adds of every
/// convolution, linear layer and attention product at its resolution).
fn ddpm_cifar10_forward_gflop() -> f64 {
    let cfg = crate::engine::model::Unet2dConfig::ddpm_cifar10();
    let lay = crate::engine::model::DiffusersUnet::new(cfg.clone()).layout();
    let mut macs = 0f64;
    // the resolution each tensor works at: level from its block index
    let levels = cfg.block_out_channels.len();
    for (name, s) in lay.names.iter().zip(&lay.shapes) {
        if !name.ends_with(".weight") || s.len() < 2 {
            continue;
        }
        let level = if let Some(r) = name.strip_prefix("down_blocks.") {
            let i: usize = r
                .split('.')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            // a downsampler writes the next level's resolution
            if name.contains("downsamplers") {
                i + 1
            } else {
                i
            }
        } else if let Some(r) = name.strip_prefix("up_blocks.") {
            let i: usize = r
                .split('.')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let l = levels - 1 - i;
            if name.contains("upsamplers") {
                l - 1
            } else {
                l
            }
        } else if name.starts_with("mid_block") {
            levels - 1
        } else if name.starts_with("time_embedding") {
            macs += (s[0] * s[1]) as f64;
            continue;
        } else {
            0
        };
        let pixels = ((cfg.height >> level) * (cfg.width >> level)) as f64;
        let per_pixel: usize = s.iter().product();
        if name.contains("time_emb_proj") {
            macs += per_pixel as f64;
        } else {
            macs += per_pixel as f64 * pixels;
        }
        // attention: q k^T and att v, each pixels^2 x channels
        if name.ends_with("to_q.weight") {
            macs += 2.0 * pixels * pixels * s[0] as f64;
        }
    }
    2.0 * macs / 1e9
}

/// A distillation step's host transfers: tensors read back (each a pipeline stall on a GPU)
/// and host data uploaded.
fn round_trips(t: &crate::jobs::bench::Throughput) -> String {
    format!(
        "{:.3} reads, {:.2} uploads",
        t.reads_per_step, t.uploads_per_step
    )
}

pub(super) fn bench(a: BenchArgs, ranks: super::Ranks) -> anyhow::Result<()> {
    use crate::jobs::bench::distill_throughput;
    if a.allreduce {
        return bench_allreduce(&a, ranks);
    }
    if let Some(c) = &ranks
        && c.size() > 1
    {
        bail!("under mpirun, bench measures --allreduce only");
    }
    if a.unet {
        return bench_unet(&a);
    }
    if a.kernels {
        // the WGSL kernels run on wgpu only: there `auto` takes any adapter
        let d = match a.device {
            DeviceArg::Auto => DeviceArg::Wgpu,
            d => d,
        };
        let p = pick_device(d)?;
        println!(
            "kernels on {} (median of 30 calls, each followed by a device sync)",
            p.label
        );
        println!(
            "{:<36} {:>10} {:>12} {:>12} {:>8} {:>10} {:>10}",
            "kernel", "elements", "WGSL ms", "Burn ops ms", "ratio", "WGSL GB/s", "Burn GB/s"
        );
        let timings = crate::jobs::bench::kernels(&p.device, 30);
        for k in &timings {
            println!(
                "{:<36} {:>10} {:>12.3} {:>12.3} {:>8.2} {:>10.2} {:>10.2}",
                k.name,
                k.elements,
                k.kernel_ms,
                k.burn_ms,
                k.burn_ms / k.kernel_ms,
                k.gbps(k.kernel_ms),
                k.gbps(k.burn_ms)
            );
        }
        let steps = (a.steps / 4).max(10);
        crate::engine::kernels::set_enabled(true);
        let on = distill_throughput(&p.device, "kernels-on", a.batch, 20, steps)?;
        crate::engine::kernels::set_enabled(false);
        let off = distill_throughput(&p.device, "kernels-off", a.batch, 20, steps)?;
        crate::engine::kernels::set_enabled(true);
        println!(
            "whole distillation step (TRACT, batch {}): kernels {:.0} samples/s, Burn ops {:.0} samples/s, ratio {:.2}",
            a.batch,
            on.samples_per_s,
            off.samples_per_s,
            on.samples_per_s / off.samples_per_s
        );
        println!(
            "  host round trips per step, kernels on: {}",
            round_trips(&on)
        );
        println!(
            "  host round trips per step, kernels off: {}",
            round_trips(&off)
        );
        let kernels: Vec<_> = timings
            .iter()
            .map(|k| {
                serde_json::json!({
                    "name": k.name,
                    "elements": k.elements,
                    "kernel_ms": k.kernel_ms,
                    "burn_ms": k.burn_ms,
                    "ratio": k.burn_ms / k.kernel_ms,
                    "kernel_gbps": k.gbps(k.kernel_ms),
                    "burn_gbps": k.gbps(k.burn_ms),
                })
            })
            .collect();
        return write_json(
            &a,
            serde_json::json!({
                "bench": "kernels",
                "device": p.label,
                "kernels": kernels,
                "distill_step": {"batch": a.batch, "kernels_on": on, "kernels_off": off},
            }),
        );
    }
    println!(
        "distillation throughput, TRACT 1024->32 on toy:ring8 with the exact teacher, batch {}",
        a.batch
    );
    let cpu = distill_throughput(&device::cpu().device, "cpu-flex", a.batch, 20, a.steps)?;
    println!(
        "  CPU backend (flex):  {:>10.0} samples/s  ({} steps)",
        cpu.samples_per_s, cpu.steps
    );
    println!("    host round trips per step: {}", round_trips(&cpu));
    // the same with the project's CPU kernels off (Burn's own SiLU: libm's exp per value)
    crate::engine::kernels::cpu::set_enabled(false);
    let plain = distill_throughput(&device::cpu().device, "cpu-burn-ops", a.batch, 20, a.steps);
    crate::engine::kernels::cpu::set_enabled(true);
    let plain = plain?;
    println!(
        "  CPU backend, Burn's own ops (CPU kernels off):  {:>10.0} samples/s  (kernels on / off: {:.2})",
        plain.samples_per_s,
        cpu.samples_per_s / plain.samples_per_s
    );
    let (mut wgpu, mut adapter) = (None, None);
    if !a.cpu_only {
        match device::pick(Choice::Wgpu) {
            Ok(p) => {
                let steps = (a.steps / 4).max(10);
                let g = distill_throughput(&p.device, "wgpu", a.batch, 20, steps)
                    .context("wgpu benchmark")?;
                println!(
                    "  {}:  {:>10.0} samples/s  ({} steps)",
                    p.label, g.samples_per_s, g.steps
                );
                println!("    host round trips per step: {}", round_trips(&g));
                println!(
                    "  ratio wgpu / cpu: {:.3}",
                    g.samples_per_s / cpu.samples_per_s
                );
                wgpu = Some(g);
                adapter = Some(p.label);
            }
            Err(e) => println!("  wgpu: skipped ({e})"),
        }
    }
    write_json(
        &a,
        serde_json::json!({
            "bench": "distill",
            "batch": a.batch,
            "cpu": cpu,
            "cpu_burn_ops": plain,
            "wgpu_adapter": adapter,
            "wgpu": wgpu,
        }),
    )
}

/// `bench --allreduce`: data-parallel steps on the CPU over this job's ranks (one process
/// without mpirun), and the all-reduce alone at the UNets' gradient sizes; rank 0 prints.
fn bench_allreduce(a: &BenchArgs, ranks: super::Ranks) -> anyhow::Result<()> {
    use crate::engine::collective::{Collective, Single};
    use crate::engine::data::Data;
    use crate::engine::distill::{DistillConfig, Method};
    use crate::engine::model::{Net, NetConfig, Unet2dConfig, UnetConfig};
    use crate::jobs::bench::{allreduce_seconds, data_parallel_steps};
    let c: std::sync::Arc<dyn Collective> = ranks.unwrap_or_else(|| std::sync::Arc::new(Single));
    let say = c.rank() == 0;
    let dev = device::cpu().device;
    let threads = rayon::current_num_threads();
    if say {
        println!(
            "data-parallel steps on the CPU: {} rank(s), {threads} thread(s) each; medians over the measured steps (rank 0)",
            c.size()
        );
    }
    let mut rows = vec![];
    // the ring8 MLP: a TRACT phase after a one-step fit, as the distillation throughput
    let data = Data::parse("toy:ring8")?;
    let mut cfg = DistillConfig::new(&data, Param::Vp);
    let warmup = 16;
    cfg.batch = a.batch;
    cfg.fit_samples = a.batch as u64;
    cfg.schedule = "1024,32".into();
    cfg.train_samples = (warmup + a.steps) * a.batch as u64;
    cfg.ckpt_every = u64::MAX;
    rows.push(data_parallel_steps(
        &dev,
        c.clone(),
        "distill ring8 MLP",
        cfg,
        1,
        warmup,
    )?);
    // a tiny-UNet teacher on 64 generated 32x32 images (each rank writes its own copy)
    let img = std::env::temp_dir().join(format!("tract-bench-img-{}", std::process::id()));
    std::fs::create_dir_all(&img)?;
    let px: Vec<u8> = (0..64 * 32 * 32).map(|i| ((i * 37) % 251) as u8).collect();
    crate::engine::data::idx::write_idx(
        &img.join("train-images-idx3-ubyte"),
        &[64, 32, 32],
        &px,
        false,
    )?;
    let data = Data::parse(&format!("mnist:{}", img.display()))?;
    let mut cfg = DistillConfig::new(&data, Param::Vp);
    let (ub, uwarm, usteps) = (16usize, 2u64, a.steps.clamp(1, 10));
    cfg.method = Method::Teacher;
    cfg.teacher = "data".into();
    cfg.batch = ub;
    cfg.fit_samples = (uwarm + usteps) * ub as u64;
    cfg.train_samples = 0;
    cfg.ckpt_every = u64::MAX;
    cfg.net =
        NetConfig::Unet(UnetConfig::preset("tiny", 1, 32, 32, Param::Vp).expect("the tiny preset"));
    let r = data_parallel_steps(&dev, c.clone(), "teacher tiny UNet 32x32", cfg, 0, uwarm);
    let _ = std::fs::remove_dir_all(&img);
    rows.push(r?);
    if say {
        println!(
            "{:<26} {:>6} {:>10} {:>12} {:>9} {:>11} {:>13} {:>7}",
            "step",
            "batch",
            "params",
            "bytes/step",
            "step ms",
            "compute ms",
            "all-reduce ms",
            "share"
        );
        for r in &rows {
            println!(
                "{:<26} {:>6} {:>10} {:>12} {:>9.3} {:>11.3} {:>13.3} {:>6.1}%",
                r.what,
                r.batch,
                r.params,
                r.bytes,
                r.step_ms,
                r.compute_ms,
                r.allreduce_ms,
                100.0 * r.allreduce_ms / r.step_ms
            );
        }
    }
    // the all-reduce alone (host buffers: MPI only) at the UNets' gradient sizes
    let nets = [
        (
            "tiny UNet 1x32x32",
            NetConfig::Unet(UnetConfig::preset("tiny", 1, 32, 32, Param::Vp).expect("preset")),
        ),
        (
            "small UNet 1x32x32",
            NetConfig::Unet(UnetConfig::preset("small", 1, 32, 32, Param::Vp).expect("preset")),
        ),
        (
            "ddpm-cifar10 UNet2DModel",
            NetConfig::Diffusers(Unet2dConfig::ddpm_cifar10()),
        ),
    ];
    let mut reduce = vec![];
    for (name, net) in &nets {
        let n = Net::new(net).layout().total + 1;
        let s = allreduce_seconds(c.as_ref(), n, a.reps.max(3))?;
        reduce.push(serde_json::json!({"net": name, "params": n - 1, "bytes": 4 * n, "allreduce_ms": 1e3 * s}));
        if say {
            // a ring all-reduce moves 2 (N-1) / N of the buffer through each rank's link
            let ranks = c.size() as f64;
            let bus = 2.0 * (ranks - 1.0) / ranks * 4.0 * n as f64 / s / 1e9;
            println!(
                "all-reduce alone, {name}: {} params, {:.1} MB per step, {:.3} ms (bus {:.2} GB/s)",
                n - 1,
                4.0 * n as f64 / 1e6,
                1e3 * s,
                bus
            );
        }
    }
    if say && let Some(p) = &a.json {
        let j = serde_json::json!({"ranks": c.size(), "threads": threads, "steps": rows, "allreduce": reduce});
        std::fs::write(p, serde_json::to_string_pretty(&j)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
