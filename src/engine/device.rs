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
    WGPU.get_or_init(|| {
        let r = std::panic::catch_unwind(|| Device::wgpu_options().init_with_setup());
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
    })
    .clone()
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
