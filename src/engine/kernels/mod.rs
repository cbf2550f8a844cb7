//! Fused per-step elementwise work. On Burn's wgpu backend the WGSL kernels of
//! `shaders/` run (see `wgsl`); on the CPU backend, and whenever kernels are switched
//! off, the plain Burn-ops references below run. Tests compare both.

pub mod cpu;
pub mod cpu_ops;
#[cfg(feature = "wgpu")]
pub mod wgsl;

use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(feature = "wgpu")]
use burn::backend::Dispatch;
use burn::backend::DispatchDevice;
use burn::tensor::{Device, Tensor};

use crate::engine::tensors::{from_vec1, to_vec};
#[cfg(feature = "wgpu")]
use wgsl::TractKernels;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switch the WGSL kernels on or off (benchmarks compare both).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::SeqCst);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// The backend under a device, seen through autodiff.
fn base_device(device: &Device) -> DispatchDevice {
    device.as_dispatch().clone().inner()
}

/// Does this device run CubeCL (wgpu) kernels?
#[cfg(feature = "wgpu")]
pub fn is_cube(device: &Device) -> bool {
    matches!(base_device(device), DispatchDevice::Cube(_))
}

/// A build without the `wgpu` feature has only the CPU backend.
#[cfg(not(feature = "wgpu"))]
pub fn is_cube(_device: &Device) -> bool {
    false
}

/// Is this Burn's CPU backend (Flex), where the CPU kernels of `cpu` run?
pub fn is_flex(device: &Device) -> bool {
    matches!(base_device(device), DispatchDevice::Flex(_))
}

#[cfg(feature = "wgpu")]
fn use_kernel(device: &Device) -> bool {
    enabled() && is_cube(device)
}

/// Per-row coefficient vectors (each as long as the batch) uploaded in one transfer and
/// split on the device: one host round trip per kernel call instead of one per vector.
fn coef_rows<const K: usize>(vs: [&[f64]; K], device: &Device) -> [Tensor<1>; K] {
    let n = vs[0].len();
    assert!(
        vs.iter().all(|v| v.len() == n),
        "coefficient vectors of one length"
    );
    let all: Vec<f32> = vs
        .iter()
        .flat_map(|v| v.iter().map(|&x| x as f32))
        .collect();
    let t = from_vec1(all, device);
    std::array::from_fn(|i| t.clone().slice(i * n..(i + 1) * n))
}

fn col(t: Tensor<1>) -> Tensor<2> {
    let n = t.dims()[0];
    t.reshape([n, 1])
}

/// `out = a[r] x + b[r] clip(y)` for `[N, D]` tensors and per-row a, b.
pub fn row_axpby(x: Tensor<2>, y: Tensor<2>, a: &[f64], b: &[f64], clip: bool) -> Tensor<2> {
    let dev = x.device();
    let [a, b] = coef_rows([a, b], &dev);
    #[cfg(feature = "wgpu")]
    if use_kernel(&dev) {
        return Tensor::from_dispatch(Dispatch::row_axpby(
            x.into_dispatch(),
            y.into_dispatch(),
            a.into_dispatch(),
            b.into_dispatch(),
            clip,
        ));
    }
    reference::row_axpby(x, y, a, b, clip)
}

/// `out = x + c1[r] (x - x0) + c2[r] (e - x0e)`.
pub fn heun_combine(
    x: Tensor<2>,
    x0: Tensor<2>,
    e: Tensor<2>,
    x0e: Tensor<2>,
    c1: &[f64],
    c2: &[f64],
) -> Tensor<2> {
    let dev = x.device();
    let [c1, c2] = coef_rows([c1, c2], &dev);
    #[cfg(feature = "wgpu")]
    if use_kernel(&dev) {
        return Tensor::from_dispatch(Dispatch::heun_combine(
            x.into_dispatch(),
            x0.into_dispatch(),
            e.into_dispatch(),
            x0e.into_dispatch(),
            c1.into_dispatch(),
            c2.into_dispatch(),
        ));
    }
    reference::heun_combine(x, x0, e, x0e, c1, c2)
}

/// The TRACT loss: mean over the batch of `w[r] * mean_d (g - (a[r] xs + b[r] xt))^2`,
/// differentiable with respect to g; the target is a constant.
pub fn tract_loss(
    g: Tensor<2>,
    xs: Tensor<2>,
    xt: Tensor<2>,
    a: &[f64],
    b: &[f64],
    w: &[f64],
) -> Tensor<1> {
    let inner_dev = xs.device();
    let [a, b, w] = coef_rows([a, b, w], &inner_dev);
    #[cfg(feature = "wgpu")]
    if use_kernel(&inner_dev) {
        let [n, d] = g.dims();
        let auto = g.is_autodiff();
        let lift = |t: Tensor<1>| if auto { t.autodiff() } else { t };
        let lift2 = |t: Tensor<2>| {
            if auto {
                t.detach().autodiff()
            } else {
                t.detach()
            }
        };
        let (err, _grad) = Dispatch::tract_loss(
            g.into_dispatch(),
            lift2(xs).into_dispatch(),
            lift2(xt).into_dispatch(),
            lift(a).into_dispatch(),
            lift(b).into_dispatch(),
            lift(w).into_dispatch(),
            1.0 / (n * d) as f32,
        );
        return Tensor::<2>::from_dispatch(err).sum();
    }
    reference::tract_loss(g, xs, xt, a, b, w)
}

/// Both bias-corrected EMA updates: (self-teacher, inference). Burn's own fusion matches
/// the WGSL kernel here (`bench --kernels`), so the engine uses Burn ops; the kernel is
/// `ema2_kernel`.
pub fn ema2(
    phi: &Tensor<1>,
    es: Tensor<1>,
    ei: Tensor<1>,
    ws: f64,
    wi: f64,
) -> (Tensor<1>, Tensor<1>) {
    reference::ema2(phi, es, ei, ws, wi)
}

/// The EMA pair as one WGSL kernel pass (falls back to the reference off wgpu).
pub fn ema2_kernel(
    phi: &Tensor<1>,
    es: Tensor<1>,
    ei: Tensor<1>,
    ws: f64,
    wi: f64,
) -> (Tensor<1>, Tensor<1>) {
    #[cfg(feature = "wgpu")]
    if use_kernel(&phi.device()) {
        let (s, i) = Dispatch::ema2(
            phi.clone().into_dispatch(),
            es.into_dispatch(),
            ei.into_dispatch(),
            ws as f32,
            wi as f32,
        );
        return (Tensor::from_dispatch(s), Tensor::from_dispatch(i));
    }
    reference::ema2(phi, es, ei, ws, wi)
}

/// Images [N, C, H, W] to packed RGBA8 pixels of a grid with `cols` columns:
/// (width, height, pixels as u32 r | g << 8 | b << 16 | a << 24).
pub fn rgba_grid(img: Tensor<4>, cols: usize, lo: f32, hi: f32) -> (usize, usize, Vec<u32>) {
    let dims = img.dims();
    let cols = cols.max(1);
    let (w, h) = (cols * dims[3], dims[0].div_ceil(cols).max(1) * dims[2]);
    #[cfg(feature = "wgpu")]
    if use_kernel(&img.device()) {
        let t: Tensor<2, burn::tensor::Int> = Tensor::from_dispatch(Dispatch::rgba_grid(
            img.into_dispatch(),
            cols as u32,
            lo,
            hi,
        ));
        crate::engine::tensors::note_read();
        let px = t
            .into_data()
            .convert::<u32>()
            .try_into_vec::<u32>()
            .expect("u32 pixels");
        return (w, h, px);
    }
    (w, h, reference::rgba_grid(&to_vec(img), dims, cols, lo, hi))
}

/// The plain Burn-ops versions (the CPU path and the tests' reference).
pub mod reference {
    use super::col;
    use burn::tensor::Tensor;

    pub fn row_axpby(
        x: Tensor<2>,
        y: Tensor<2>,
        a: Tensor<1>,
        b: Tensor<1>,
        clip: bool,
    ) -> Tensor<2> {
        let y = if clip { y.clamp(-1.0, 1.0) } else { y };
        x * col(a) + y * col(b)
    }

    pub fn heun_combine(
        x: Tensor<2>,
        x0: Tensor<2>,
        e: Tensor<2>,
        x0e: Tensor<2>,
        c1: Tensor<1>,
        c2: Tensor<1>,
    ) -> Tensor<2> {
        x.clone() + (x - x0) * col(c1) + (e - x0e) * col(c2)
    }

    pub fn tract_loss(
        g: Tensor<2>,
        xs: Tensor<2>,
        xt: Tensor<2>,
        a: Tensor<1>,
        b: Tensor<1>,
        w: Tensor<1>,
    ) -> Tensor<1> {
        let target = (xs * col(a) + xt * col(b)).detach();
        let diff = g - target;
        ((diff.clone() * diff).mean_dim(1) * col(w)).mean()
    }

    pub fn ema2(
        phi: &Tensor<1>,
        es: Tensor<1>,
        ei: Tensor<1>,
        ws: f64,
        wi: f64,
    ) -> (Tensor<1>, Tensor<1>) {
        // ema + w (phi - ema), the form of `optim::ema_mix` (the optimizer sits above the
        // kernels: it calls the one-pass Adam)
        let mix = |e: Tensor<1>, w: f64| e.clone() + (phi.clone() - e).mul_scalar(w);
        (mix(es, ws), mix(ei, wi))
    }

    /// Host reference of the RGBA grid (integer packing has no Burn op).
    pub fn rgba_grid(v: &[f32], dims: [usize; 4], cols: usize, lo: f32, hi: f32) -> Vec<u32> {
        let [n, c, h, w] = dims;
        let rows = n.div_ceil(cols).max(1);
        let byte = |x: f32| (((x - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0 + 0.5) as u32;
        let mut out = vec![0u32; rows * h * cols * w];
        for gy in 0..rows * h {
            for gx in 0..cols * w {
                let k = (gy / h) * cols + gx / w;
                let p = gy * cols * w + gx;
                if k >= n {
                    out[p] = 0xff20_2020;
                    continue;
                }
                let (y, x) = (gy % h, gx % w);
                let base = k * c * h * w + y * w + x;
                let r = byte(v[base]);
                let (g, b) = if c >= 3 {
                    (byte(v[base + h * w]), byte(v[base + 2 * h * w]))
                } else {
                    (r, r)
                };
                out[p] = r | (g << 8) | (b << 16) | (255 << 24);
            }
        }
        out
    }
}
