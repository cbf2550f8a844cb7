//! Compute device selection: Burn's wgpu backend when a real GPU adapter exists, Burn's
//! pure-Rust CPU backend (flex) otherwise, chosen at run time with one log line.

#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
use std::sync::OnceLock;

use burn::tensor::Device;

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// A hardware GPU through wgpu if there is one, else the CPU backend.
    Auto,
    Cpu,
    /// wgpu, whatever the adapter (a software one such as lavapipe included).
    Wgpu,
}

impl std::str::FromStr for Choice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Choice::Auto),
            "cpu" => Ok(Choice::Cpu),
            "wgpu" | "gpu" => Ok(Choice::Wgpu),
            o => Err(Error::input(format!(
                "unknown device '{o}': expected auto, cpu or wgpu"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Picked {
    pub device: Device,
    /// One line for the log: which backend and adapter, and why.
    pub label: String,
    pub is_wgpu: bool,
}

// built by the native wgpu probe only (the browser initializes WebGPU itself)
#[cfg_attr(any(target_arch = "wasm32", not(feature = "wgpu")), allow(dead_code))]
#[derive(Clone, Debug)]
struct WgpuProbe {
    device: Device,
    name: String,
    backend: String,
    software: bool,
}

#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
static WGPU: OnceLock<std::result::Result<WgpuProbe, String>> = OnceLock::new();

/// In the browser the runtime is initialized asynchronously (`front::web`).
#[cfg(target_arch = "wasm32")]
fn wgpu_probe() -> std::result::Result<WgpuProbe, String> {
    Err("in the browser, wgpu is initialized asynchronously by the page".into())
}

/// A build without the `wgpu` feature has only the CPU backend.
#[cfg(all(not(target_arch = "wasm32"), not(feature = "wgpu")))]
fn wgpu_probe() -> std::result::Result<WgpuProbe, String> {
    Err("this build has no wgpu backend (built without the `wgpu` feature)".into())
}

/// Initialize Burn's wgpu runtime once (it cannot be initialized twice).
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
fn wgpu_probe() -> std::result::Result<WgpuProbe, String> {
    WGPU.get_or_init(|| open_wgpu(None)).clone()
}

/// Open Burn's wgpu runtime on an adapter of `kind` (None: wgpu's default choice), with what
/// the adapter is; a panic inside wgpu becomes an error.
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
fn open_wgpu(kind: Option<burn::tensor::DeviceKind>) -> std::result::Result<WgpuProbe, String> {
    let r = std::panic::catch_unwind(|| {
        let o = Device::wgpu_options();
        match kind {
            Some(k) => o.device_kind(k),
            None => o,
        }
        .init_with_setup()
    });
    match r {
        Ok(Ok((device, setup))) => {
            let info = setup.adapter.get_info();
            Ok(WgpuProbe {
                device,
                name: info.name.clone(),
                backend: format!("{:?}", info.backend),
                software: info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu,
            })
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the wgpu runtime panicked while looking for an adapter".into()),
    }
}

pub fn cpu() -> Picked {
    Picked {
        device: Device::flex(),
        label: "CPU backend (Burn flex)".into(),
        is_wgpu: false,
    }
}

pub fn pick(choice: Choice) -> Result<Picked> {
    match choice {
        Choice::Cpu => Ok(cpu()),
        Choice::Wgpu => match wgpu_probe() {
            Ok(p) => Ok(Picked {
                label: format!(
                    "wgpu backend on '{}' ({}){}",
                    p.name,
                    p.backend,
                    if p.software {
                        ", a software adapter"
                    } else {
                        ""
                    }
                ),
                device: p.device,
                is_wgpu: true,
            }),
            Err(e) => Err(Error::Device(format!(
                "no usable wgpu adapter ({e}); install a Vulkan/Metal/DX12 driver (for example mesa-vulkan-drivers) or use --device cpu"
            ))),
        },
        Choice::Auto => match wgpu_probe() {
            Ok(p) if !p.software => Ok(Picked {
                label: format!("wgpu backend on '{}' ({})", p.name, p.backend),
                device: p.device,
                is_wgpu: true,
            }),
            Ok(p) => {
                let mut c = cpu();
                c.label = format!(
                    "CPU backend (Burn flex): the only wgpu adapter is '{}', a software rasterizer that is slower than the CPU backend (use --device wgpu to force it)",
                    p.name
                );
                Ok(c)
            }
            Err(e) => {
                let mut c = cpu();
                c.label = format!("CPU backend (Burn flex): no wgpu adapter ({e})");
                Ok(c)
            }
        },
    }
}

/// The kind of a wgpu adapter, as far as a rank's choice of device needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterKind {
    Discrete,
    Integrated,
    Virtual,
    /// A software rasterizer (lavapipe, llvmpipe, WARP).
    Software,
    Other,
}

/// The device one rank of a data-parallel job takes on its machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankDevice {
    /// The nth adapter of its kind (wgpu counts each kind from zero), and how many of that
    /// kind the machine has.
    Gpu {
        kind: AdapterKind,
        index: usize,
        of: usize,
    },
    /// The CPU backend.
    Cpu,
}

/// Which device the rank `local_rank` of the `local_size` ranks on one machine takes, given
/// the machine's wgpu adapters (`adapters`, in wgpu's order). The ranks go round-robin over
/// the best kind the machine has: discrete GPUs, else integrated, else virtual ones (mixing
/// kinds would leave every step waiting for the slowest card). `Auto` takes the CPU backend
/// where only a software adapter exists (as [`pick`] does); `Wgpu` takes that adapter; `Cpu`
/// the CPU backend. `None`: `Wgpu` on a machine with no adapter at all.
pub fn rank_device(
    choice: Choice,
    adapters: &[AdapterKind],
    local_rank: usize,
) -> Option<RankDevice> {
    if choice == Choice::Cpu {
        return Some(RankDevice::Cpu);
    }
    let count = |k: AdapterKind| adapters.iter().filter(|&&a| a == k).count();
    let order = [
        AdapterKind::Discrete,
        AdapterKind::Integrated,
        AdapterKind::Virtual,
        AdapterKind::Other,
    ];
    let take = |kind: AdapterKind| {
        let of = count(kind);
        (of > 0).then(|| RankDevice::Gpu {
            kind,
            index: local_rank % of,
            of,
        })
    };
    if let Some(d) = order.into_iter().find_map(take) {
        return Some(d);
    }
    match choice {
        Choice::Wgpu => take(AdapterKind::Software),
        _ => Some(RankDevice::Cpu),
    }
}

/// How many of the `local_size` ranks on a machine share the device of `local_rank` (1 when
/// it has its own).
pub fn ranks_sharing(d: RankDevice, local_rank: usize, local_size: usize) -> usize {
    match d {
        RankDevice::Cpu => local_size,
        RankDevice::Gpu { of, .. } => (0..local_size)
            .filter(|r| r % of == local_rank % of)
            .count(),
    }
}

/// The adapters this machine has on the graphics API Burn's wgpu runtime settles on (the
/// first of Vulkan, DX12, GL with a GPU, else the first with any adapter; Metal on macOS),
/// in wgpu's order, with their names.
#[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
pub fn adapters() -> Vec<(AdapterKind, String)> {
    use burn::tensor::wgpu::wgpu;
    let chain: &[wgpu::Backend] = if cfg!(target_os = "macos") {
        &[wgpu::Backend::Metal]
    } else {
        &[
            wgpu::Backend::Vulkan,
            wgpu::Backend::Dx12,
            wgpu::Backend::Gl,
        ]
    };
    let list = |api: wgpu::Backend| -> Vec<(AdapterKind, String)> {
        let r = std::panic::catch_unwind(|| {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends: api.into(),
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            pollster::block_on(instance.enumerate_adapters(api.into()))
                .iter()
                .map(|a| {
                    let info = a.get_info();
                    let kind = match info.device_type {
                        wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
                        wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
                        wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
                        wgpu::DeviceType::Cpu => AdapterKind::Software,
                        wgpu::DeviceType::Other => AdapterKind::Other,
                    };
                    (kind, info.name)
                })
                .collect()
        });
        r.unwrap_or_default()
    };
    let mut first_any = None;
    for &api in chain {
        let a = list(api);
        if a.iter().any(|(k, _)| *k != AdapterKind::Software) {
            return a;
        }
        if first_any.is_none() && !a.is_empty() {
            first_any = Some(a);
        }
    }
    first_any.unwrap_or_default()
}

/// The device of one rank of a data-parallel job: rank `local_rank` of the `local_size`
/// ranks on this machine (MPI's shared-memory split), chosen by [`rank_device`]; the label
/// says which and whether other ranks share it.
pub fn pick_for_rank(choice: Choice, local_rank: usize, local_size: usize) -> Result<Picked> {
    #[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
    let found = if choice == Choice::Cpu {
        Vec::new()
    } else {
        adapters()
    };
    #[cfg(not(all(not(target_arch = "wasm32"), feature = "wgpu")))]
    let found: Vec<(AdapterKind, String)> = Vec::new();
    let kinds: Vec<AdapterKind> = found.iter().map(|(k, _)| *k).collect();
    let Some(d) = rank_device(choice, &kinds, local_rank) else {
        return pick(Choice::Wgpu);
    };
    let shared = ranks_sharing(d, local_rank, local_size);
    let local = format!("local rank {local_rank} of {local_size}");
    match d {
        RankDevice::Cpu => {
            let mut c = pick(Choice::Cpu)?;
            let why = match choice {
                Choice::Cpu => "--device cpu",
                _ if kinds.is_empty() => "no wgpu adapter",
                _ => "no hardware wgpu adapter",
            };
            c.label = format!(
                "CPU backend (Burn flex), {local}: {why}{}",
                if shared > 1 {
                    format!("; {shared} ranks share this machine's cores")
                } else {
                    String::new()
                }
            );
            Ok(c)
        }
        RankDevice::Gpu { kind, index, of } => {
            #[cfg(all(not(target_arch = "wasm32"), feature = "wgpu"))]
            {
                use burn::tensor::DeviceKind;
                let dk = match kind {
                    AdapterKind::Discrete => DeviceKind::DiscreteGpu(index),
                    AdapterKind::Integrated => DeviceKind::IntegratedGpu(index),
                    AdapterKind::Virtual => DeviceKind::VirtualGpu(index),
                    AdapterKind::Software => DeviceKind::Cpu,
                    AdapterKind::Other => DeviceKind::DefaultDevice,
                };
                let name = found
                    .iter()
                    .filter(|(k, _)| *k == kind)
                    .nth(index)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default();
                let p = open_wgpu(Some(dk)).map_err(|e| {
                    Error::Device(format!(
                        "{local}: wgpu could not open {kind:?} adapter {index} ('{name}'): {e}; use --device cpu"
                    ))
                })?;
                Ok(Picked {
                    device: p.device,
                    label: format!(
                        "wgpu backend on '{}' ({kind:?} adapter {} of {of}), {local}{}",
                        p.name,
                        index + 1,
                        if shared > 1 {
                            format!(", shared by {shared} ranks (more ranks than adapters)")
                        } else {
                            String::new()
                        }
                    ),
                    is_wgpu: true,
                })
            }
            #[cfg(not(all(not(target_arch = "wasm32"), feature = "wgpu")))]
            {
                let _ = (kind, index, of);
                pick(Choice::Cpu)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AdapterKind::*;

    fn gpu(kind: AdapterKind, index: usize, of: usize) -> Option<RankDevice> {
        Some(RankDevice::Gpu { kind, index, of })
    }

    #[test]
    fn each_rank_of_a_machine_takes_its_own_gpu_round_robin() {
        // 8 discrete GPUs, 8 ranks: one each, in order
        let eight = [Discrete; 8];
        for r in 0..8 {
            assert_eq!(rank_device(Choice::Auto, &eight, r), gpu(Discrete, r, 8));
            assert_eq!(ranks_sharing(gpu(Discrete, r, 8).unwrap(), r, 8), 1);
        }
        // 2 GPUs, 4 ranks: 0,2 on GPU 0 and 1,3 on GPU 1, two ranks each
        let two = [Discrete, Discrete];
        let got: Vec<_> = (0..4).map(|r| rank_device(Choice::Auto, &two, r)).collect();
        assert_eq!(
            got,
            vec![
                gpu(Discrete, 0, 2),
                gpu(Discrete, 1, 2),
                gpu(Discrete, 0, 2),
                gpu(Discrete, 1, 2)
            ]
        );
        assert_eq!(ranks_sharing(got[1].unwrap(), 1, 4), 2);
        assert_eq!(ranks_sharing(got[1].unwrap(), 1, 3), 1);
    }

    #[test]
    fn discrete_gpus_come_before_integrated_and_software_ones() {
        // wgpu counts each kind from zero: the second discrete GPU is Discrete 1 wherever it
        // stands in the list
        let mixed = [Integrated, Software, Discrete, Discrete];
        assert_eq!(rank_device(Choice::Auto, &mixed, 1), gpu(Discrete, 1, 2));
        assert_eq!(rank_device(Choice::Wgpu, &mixed, 2), gpu(Discrete, 0, 2));
        let laptop = [Software, Integrated];
        assert_eq!(rank_device(Choice::Auto, &laptop, 3), gpu(Integrated, 0, 1));
    }

    #[test]
    fn a_software_adapter_is_taken_only_when_asked_for() {
        let soft = [Software];
        assert_eq!(rank_device(Choice::Auto, &soft, 0), Some(RankDevice::Cpu));
        assert_eq!(rank_device(Choice::Wgpu, &soft, 1), gpu(Software, 0, 1));
        assert_eq!(rank_device(Choice::Wgpu, &[], 0), None);
        assert_eq!(rank_device(Choice::Auto, &[], 0), Some(RankDevice::Cpu));
        assert_eq!(
            rank_device(Choice::Cpu, &[Discrete; 4], 0),
            Some(RankDevice::Cpu)
        );
        assert_eq!(ranks_sharing(RankDevice::Cpu, 0, 2), 2);
    }
}
