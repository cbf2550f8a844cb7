//! The WGSL kernels of shaders/ on Burn's wgpu tensors, through a backend extension
//! (Cube + Fusion + Autodiff). Launch code only; `super` picks kernel or reference.

// training only (the `train` feature; the browser build samples)
#[cfg(feature = "train")]
use burn::backend::AutodiffBackend;
#[cfg(feature = "train")]
use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::backend::{
    Backend, backend_extension,
    tensor::{FloatTensor, IntTensor},
};
use burn::cubecl::server::{KernelArguments, MetadataBindingInfo};
use burn::cubecl::{CubeCount, CubeDim, prelude::KernelId};
use burn::tensor::{DType, Shape};

#[backend_extension(Cube, Fusion, Autodiff: cfg(feature = "train"))]
pub trait TractKernels: Backend {
    /// `out = a[r] x + b[r] clip(y)`, r = row of a `[N, D]` tensor; a, b are `[N]`.
    #[fusion(dtype = x, shape = x)]
    fn row_axpby(
        x: FloatTensor<Self>,
        y: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        clip: bool,
    ) -> FloatTensor<Self>;

    /// `out = x + c1[r] (x - x0) + c2[r] (e - x0e)`.
    #[fusion(dtype = x, shape = x)]
    fn heun_combine(
        x: FloatTensor<Self>,
        x0: FloatTensor<Self>,
        e: FloatTensor<Self>,
        x0e: FloatTensor<Self>,
        c1: FloatTensor<Self>,
        c2: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// (err, grad): the weighted squared error to the TRACT target per element, and its
    /// gradient with respect to g.
    #[fusion(meta = |g, _xs, _xt, _a, _b, _w, _scale| (g.clone(), g.clone()))]
    fn tract_loss(
        g: FloatTensor<Self>,
        xs: FloatTensor<Self>,
        xt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w: FloatTensor<Self>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Both EMAs: (es + ws (phi - es), ei + wi (phi - ei)).
    #[fusion(meta = |phi, _es, _ei, _ws, _wi| (phi.clone(), phi.clone()))]
    fn ema2(
        phi: FloatTensor<Self>,
        es: FloatTensor<Self>,
        ei: FloatTensor<Self>,
        ws: f32,
        wi: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Images [N, C, H, W] to a packed RGBA8 grid [rows H, cols W] (u32).
    #[fusion(meta = |img, cols, _lo, _hi| grid_spec(&img.shape, *cols))]
    fn rgba_grid(img: FloatTensor<Self>, cols: u32, lo: f32, hi: f32) -> IntTensor<Self>;
}

pub fn grid_shape(shape: &Shape, cols: u32) -> Shape {
    let d = shape.dims::<4>();
    let cols = (cols as usize).max(1);
    let rows = d[0].div_ceil(cols).max(1);
    Shape::new([rows * d[2], cols * d[3]])
}

fn grid_spec(shape: &Shape, cols: u32) -> TensorSpec {
    TensorSpec::new(grid_shape(shape, cols), DType::U32)
}

macro_rules! wgsl_kernel {
    ($name:ident, $file:literal) => {
        struct $name;
        impl KernelSource for $name {
            fn source(&self) -> SourceTemplate {
                SourceTemplate::new(include_str!($file))
            }
            fn id(&self) -> KernelId {
                // the pipeline cache is keyed by the id only: include the text's hash
                KernelId::new::<Self>().info(fnv(include_str!($file)))
            }
            fn lang(&self) -> &'static str {
                "wgsl"
            }
        }
    };
}

const fn fnv(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut h: u64 = 0xcbf29ce484222325;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(0x100000001b3);
        i += 1;
    }
    h
}

wgsl_kernel!(RowAxpby, "../../../shaders/row_axpby.wgsl");
wgsl_kernel!(Heun, "../../../shaders/heun.wgsl");
wgsl_kernel!(TractLoss, "../../../shaders/tract_loss.wgsl");
wgsl_kernel!(Ema2, "../../../shaders/ema.wgsl");
wgsl_kernel!(Rgba, "../../../shaders/rgba.wgsl");
wgsl_kernel!(RowAxpby4, "../../../shaders/row_axpby_vec4.wgsl");
wgsl_kernel!(Ema2x4, "../../../shaders/ema_vec4.wgsl");
wgsl_kernel!(Heun4, "../../../shaders/heun_vec4.wgsl");
wgsl_kernel!(TractLoss4, "../../../shaders/tract_loss_vec4.wgsl");

const WG: u32 = 64;

/// 2-D grid: at most 65535 workgroups per dimension; the shader linearises it.
fn cube_count(n: usize) -> CubeCount {
    let groups = (n as u32).div_ceil(WG).max(1);
    let gx = groups.min(65535);
    CubeCount::Static(gx, groups.div_ceil(gx), 1)
}

/// Pack u32 words two per u64 (little-endian), as cubecl's info binding expects.
fn words(w: &[u32]) -> Vec<u64> {
    w.chunks(2)
        .map(|c| c[0] as u64 | ((*c.get(1).unwrap_or(&0) as u64) << 32))
        .collect()
}

fn empty_like(t: &CubeTensor, shape: Shape, dtype: DType) -> CubeTensor {
    let n = shape.num_elements();
    let client = t.client.clone();
    CubeTensor::new_contiguous(
        client.clone(),
        t.device.clone(),
        shape,
        client.empty(n.max(1) * 4),
        dtype,
    )
}

fn launch<K: KernelSource + 'static>(
    k: K,
    inputs: &[&CubeTensor],
    outputs: &[&CubeTensor],
    n: usize,
    info: &[u32],
) {
    let client = inputs[0].client.clone();
    let mut bufs: Vec<_> = inputs.iter().map(|t| t.handle.clone().binding()).collect();
    bufs.extend(outputs.iter().map(|t| t.handle.clone().binding()));
    let args = KernelArguments::new()
        .with_buffers(bufs)
        .with_info(MetadataBindingInfo::custom(words(info)));
    client.launch(
        Box::new(SourceKernel::new(k, CubeDim::new_1d(WG))),
        cube_count(n),
        args,
    );
}

fn f32_only(ts: &[&CubeTensor]) {
    for t in ts {
        assert_eq!(t.dtype, DType::F32, "tract-studio kernels are f32 only");
    }
}

impl TractKernels for CubeBackend {
    fn row_axpby(
        x: FloatTensor<Self>,
        y: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        clip: bool,
    ) -> FloatTensor<Self> {
        let (x, y, a, b) = (
            into_contiguous(x),
            into_contiguous(y),
            into_contiguous(a),
            into_contiguous(b),
        );
        f32_only(&[&x, &y, &a, &b]);
        let shape = x.meta.shape().clone();
        let n = shape.num_elements();
        let d = (n / a.meta.shape().num_elements().max(1)).max(1);
        let out = empty_like(&x, shape, DType::F32);
        if d % 4 == 0 {
            launch(
                RowAxpby4,
                &[&x, &y, &a, &b],
                &[&out],
                n / 4,
                &[(n / 4) as u32, (d / 4) as u32, clip as u32, 0],
            );
        } else {
            launch(
                RowAxpby,
                &[&x, &y, &a, &b],
                &[&out],
                n,
                &[n as u32, d as u32, clip as u32, 0],
            );
        }
        out
    }

    fn heun_combine(
        x: FloatTensor<Self>,
        x0: FloatTensor<Self>,
        e: FloatTensor<Self>,
        x0e: FloatTensor<Self>,
        c1: FloatTensor<Self>,
        c2: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [x, x0, e, x0e, c1, c2] = [x, x0, e, x0e, c1, c2].map(into_contiguous);
        f32_only(&[&x, &x0, &e, &x0e, &c1, &c2]);
        let shape = x.meta.shape().clone();
        let n = shape.num_elements();
        let d = (n / c1.meta.shape().num_elements().max(1)).max(1);
        let out = empty_like(&x, shape, DType::F32);
        if d % 4 == 0 {
            launch(
                Heun4,
                &[&x, &x0, &e, &x0e, &c1, &c2],
                &[&out],
                n / 4,
                &[(n / 4) as u32, (d / 4) as u32, 0, 0],
            );
        } else {
            launch(
                Heun,
                &[&x, &x0, &e, &x0e, &c1, &c2],
                &[&out],
                n,
                &[n as u32, d as u32, 0, 0],
            );
        }
        out
    }

    fn tract_loss(
        g: FloatTensor<Self>,
        xs: FloatTensor<Self>,
        xt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w: FloatTensor<Self>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [g, xs, xt, a, b, w] = [g, xs, xt, a, b, w].map(into_contiguous);
        f32_only(&[&g, &xs, &xt, &a, &b, &w]);
        let shape = g.meta.shape().clone();
        let n = shape.num_elements();
        let d = (n / a.meta.shape().num_elements().max(1)).max(1);
        let err = empty_like(&g, shape.clone(), DType::F32);
        let grad = empty_like(&g, shape, DType::F32);
        if d % 4 == 0 {
            launch(
                TractLoss4,
                &[&g, &xs, &xt, &a, &b, &w],
                &[&err, &grad],
                n / 4,
                &[(n / 4) as u32, (d / 4) as u32, scale.to_bits(), 0],
            );
        } else {
            launch(
                TractLoss,
                &[&g, &xs, &xt, &a, &b, &w],
                &[&err, &grad],
                n,
                &[n as u32, d as u32, scale.to_bits(), 0],
            );
        }
        (err, grad)
    }

    fn ema2(
        phi: FloatTensor<Self>,
        es: FloatTensor<Self>,
        ei: FloatTensor<Self>,
        ws: f32,
        wi: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [phi, es, ei] = [phi, es, ei].map(into_contiguous);
        f32_only(&[&phi, &es, &ei]);
        let shape = phi.meta.shape().clone();
        let n = shape.num_elements();
        let os = empty_like(&phi, shape.clone(), DType::F32);
        let oi = empty_like(&phi, shape, DType::F32);
        if n % 4 == 0 {
            launch(
                Ema2x4,
                &[&phi, &es, &ei],
                &[&os, &oi],
                n / 4,
                &[(n / 4) as u32, ws.to_bits(), wi.to_bits(), 0],
            );
        } else {
            launch(
                Ema2,
                &[&phi, &es, &ei],
                &[&os, &oi],
                n,
                &[n as u32, ws.to_bits(), wi.to_bits(), 0],
            );
        }
        (os, oi)
    }

    fn rgba_grid(img: FloatTensor<Self>, cols: u32, lo: f32, hi: f32) -> IntTensor<Self> {
        let img = into_contiguous(img);
        f32_only(&[&img]);
        let d = img.meta.shape().dims::<4>();
        let cols = cols.max(1);
        let gs = grid_shape(img.meta.shape(), cols);
        let total = gs.num_elements();
        let out = empty_like(&img, gs, DType::U32);
        launch(
            Rgba,
            &[&img],
            &[&out],
            total,
            &[
                total as u32,
                d[0] as u32,
                d[1] as u32,
                d[2] as u32,
                d[3] as u32,
                cols,
                lo.to_bits(),
                hi.to_bits(),
            ],
        );
        out
    }
}

/// Autodiff: the loss kernel has a backward (d err / d g from the kernel's grad output);
/// the other kernels act on values that training never differentiates (targets, noise,
/// EMA weights, pictures), so they run on the inner backend as constants.
#[cfg(feature = "train")]
impl<B: Backend + TractKernels, C: CheckpointStrategy> TractKernels for Autodiff<B, C> {
    fn row_axpby(
        x: FloatTensor<Self>,
        y: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        clip: bool,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::row_axpby(
            Self::inner(x),
            Self::inner(y),
            Self::inner(a),
            Self::inner(b),
            clip,
        ))
    }

    fn heun_combine(
        x: FloatTensor<Self>,
        x0: FloatTensor<Self>,
        e: FloatTensor<Self>,
        x0e: FloatTensor<Self>,
        c1: FloatTensor<Self>,
        c2: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::heun_combine(
            Self::inner(x),
            Self::inner(x0),
            Self::inner(e),
            Self::inner(x0e),
            Self::inner(c1),
            Self::inner(c2),
        ))
    }

    fn tract_loss(
        g: FloatTensor<Self>,
        xs: FloatTensor<Self>,
        xt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w: FloatTensor<Self>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let inner = |g| {
            B::tract_loss(
                g,
                Self::inner(xs.clone()),
                Self::inner(xt.clone()),
                Self::inner(a.clone()),
                Self::inner(b.clone()),
                Self::inner(w.clone()),
                scale,
            )
        };
        match TractLossBackward
            .prepare::<C>([g.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (err, grad) = inner(g.into_primitive());
                (prep.finish(grad.clone(), err), Self::from_inner(grad))
            }
            OpsKind::UnTracked(prep) => {
                let (err, grad) = inner(g.into_primitive());
                (prep.finish(err), Self::from_inner(grad))
            }
        }
    }

    fn ema2(
        phi: FloatTensor<Self>,
        es: FloatTensor<Self>,
        ei: FloatTensor<Self>,
        ws: f32,
        wi: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (s, i) = B::ema2(Self::inner(phi), Self::inner(es), Self::inner(ei), ws, wi);
        (Self::from_inner(s), Self::from_inner(i))
    }

    fn rgba_grid(img: FloatTensor<Self>, cols: u32, lo: f32, hi: f32) -> IntTensor<Self> {
        Self::int_from_inner(B::rgba_grid(Self::inner(img), cols, lo, hi))
    }
}

#[cfg(feature = "train")]
#[derive(Debug)]
struct TractLossBackward;

#[cfg(feature = "train")]
impl<B: Backend> Backward<B, 1> for TractLossBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_g] = ops.parents;
        let upstream = grads.consume::<B>(&ops.node);
        if let Some(node) = node_g {
            grads.register::<B>(node.id, B::float_mul(upstream, ops.state));
        }
    }
}
