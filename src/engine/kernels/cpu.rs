//! The UNet's hot ops with the project's own CPU code on Burn's CPU backend (Flex), forward
//! and backward, through a backend extension (Flex + Autodiff, hand-written backward passes).
//! Every other device (wgpu) keeps Burn's own ops: the `reference` functions below, which the
//! tests compare the kernels with (values and gradients).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(feature = "train")]
use burn::backend::AutodiffBackend;
#[cfg(feature = "train")]
use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::FlexTensor;
use burn::backend::{
    Backend, Dispatch, Flex, TensorMetadata, backend_extension, tensor::FloatTensor,
};
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::cpu_ops::{self, ConvShape, Epilogue};

/// 0: not read yet, 1: on, 2: off. Starts from the environment: TRACT_CPU_KERNELS=0 runs Burn's
/// own ops on the CPU too (for comparisons from the command line).
static STATE: AtomicU8 = AtomicU8::new(0);

/// Keeps memory the process frees for reuse instead of handing it back to the kernel after
/// each large free (glibc's default for blocks above 128 KiB, or above the trim threshold at
/// the top of the heap). A training step allocates and frees the same activation sizes every
/// step; with the defaults each of them came back as fresh zeroed pages, and the page faults
/// were a fifth of a tiny-UNet training step (perf). Called once at start by the front ends;
/// `TRACT_KEEP_FREED=0` leaves glibc's defaults. No block is mapped on its own (M_MMAP_MAX 0):
/// glibc caps the mmap threshold at 32 MiB, and the blocks above it (a 35.7M-parameter
/// network's parameter-sized vectors: gradient, Adam's moments and temporaries, 143 MB each)
/// were mapped and unmapped every step, 1.25 million page faults over a `bench --unet --net
/// ddpm-cifar10` training child, 0.37 million without (glibc still maps what a thread's own
/// arena cannot hold).
pub fn keep_freed_memory() {
    if std::env::var("TRACT_KEEP_FREED").is_ok_and(|v| v == "0") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        const M_MMAP_MAX: i32 = -4;
        // SAFETY: mallopt only changes glibc's allocation thresholds; called before threads
        // allocate concurrently matters not (glibc locks), and a refused value keeps the old one
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
            mallopt(M_MMAP_MAX, 0);
        }
    }
}

/// Switch the CPU kernels on or off (benchmarks and tests compare both).
pub fn set_enabled(on: bool) {
    STATE.store(if on { 1 } else { 2 }, Ordering::SeqCst);
}

pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = std::env::var("TRACT_CPU_KERNELS").map_or(true, |v| v != "0");
            set_enabled(on);
            on
        }
    }
}

fn use_cpu_kernels(device: &Device) -> bool {
    enabled() && super::is_flex(device)
}

#[backend_extension(Flex, Autodiff: cfg(feature = "train"))]
pub trait CpuKernels: Backend {
    /// 2-D convolution of x `[N, Cin, H, W]` with w `[Cout, Cin, K, K]`, plus the bias b
    /// (`[Cout]`, or `[N Cout]`: one per image) and the residual r (the output's shape, or `[0]`:
    /// none); with `up`, of x upsampled 2x by nearest neighbour (3x3, stride 1, padding 1 only).
    fn cpu_conv2d(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        r: FloatTensor<Self>,
        stride: usize,
        pad: usize,
        up: bool,
    ) -> FloatTensor<Self>;

    /// (gx, gw, gb) of `cpu_conv2d` for the output gradient gy (gx is `[0]` unless `need_x`; gb
    /// is `[N Cout]` when `image_bias`, else `[Cout]`). The residual's gradient is gy itself.
    #[allow(clippy::too_many_arguments)]
    fn cpu_conv2d_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        gy: FloatTensor<Self>,
        stride: usize,
        pad: usize,
        up: bool,
        need_x: bool,
        image_bias: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// GroupNorm of x `[N, C, H, W]` with epsilon eps and affine gamma, beta `[C]`, then SiLU
    /// when `act`.
    fn cpu_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        act: bool,
    ) -> FloatTensor<Self>;

    /// (gx, ggamma, gbeta) of `cpu_group_norm` for the output gradient gy.
    #[allow(clippy::too_many_arguments)]
    fn cpu_group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        gy: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        act: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Multi-head self-attention over the pixels of x `[N, C, H, W]` (already normalised):
    /// r + Wo (softmax(q k^T / sqrt(d)) v per head) + bo, with [q; k; v] = Wqkv x + bqkv
    /// (wqkv `[3C, C]`, bqkv `[3C]`, wo `[C, C]`, bo `[C]`; r the output's shape, or `[0]`:
    /// none).
    fn cpu_attention(
        x: FloatTensor<Self>,
        wqkv: FloatTensor<Self>,
        bqkv: FloatTensor<Self>,
        wo: FloatTensor<Self>,
        bo: FloatTensor<Self>,
        r: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self>;

    /// `cpu_attention` and what its backward reads (`[N, saved_len]`, see `AttnShape`).
    fn cpu_attention_saving(
        x: FloatTensor<Self>,
        wqkv: FloatTensor<Self>,
        bqkv: FloatTensor<Self>,
        wo: FloatTensor<Self>,
        bo: FloatTensor<Self>,
        r: FloatTensor<Self>,
        heads: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// (gx, gwqkv, gbqkv, gwo, gbo) of `cpu_attention` for the output gradient gy; the
    /// residual's gradient is gy itself.
    #[allow(clippy::type_complexity)]
    fn cpu_attention_backward(
        x: FloatTensor<Self>,
        wqkv: FloatTensor<Self>,
        wo: FloatTensor<Self>,
        saved: FloatTensor<Self>,
        gy: FloatTensor<Self>,
        heads: usize,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );

    /// Adam's update of the flat parameters p with gradient g (times scale's one value when
    /// scale is `[1]`; `[0]`: none) and moments m, v: (p', m', v'), see `cpu_ops::adam`.
    #[allow(clippy::type_complexity)]
    fn cpu_adam(
        p: FloatTensor<Self>,
        g: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        k: cpu_ops::AdamCoefs,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// SiLU, x sigmoid(x), elementwise.
    fn cpu_silu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// gy silu'(x), elementwise.
    fn cpu_silu_backward(x: FloatTensor<Self>, gy: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The tensor's f32 values in row-major order (borrowed when already contiguous).
fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous f32 after to_contiguous")
                .to_vec(),
        ),
    }
}

/// The tensor's f32 values to write in place: Some when it is the sole owner of its memory
/// and its values are exactly that memory, in order (not a view of part of it).
fn whole_mut(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let n = t.shape().num_elements();
    if t.dtype() != DType::F32 || t.as_slice::<f32>()?.len() != n || t.storage::<f32>().len() != n {
        return None;
    }
    t.try_storage_mut::<f32>()
}

thread_local! {
    /// How many Adam updates this thread ran in place (`cpu_adam`); the tests read it.
    static ADAM_IN_PLACE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many Adam updates the calling thread has run in place (each test runs on its own
/// thread, so others running beside it do not count).
pub fn adam_in_place_count() -> usize {
    ADAM_IN_PLACE.with(|c| c.get())
}

fn flex(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    t.shape().dims::<4>()
}

fn conv_shape(x: &FlexTensor, w: &FlexTensor, stride: usize, pad: usize) -> ConvShape {
    let [n, cin, h, wd] = dims4(x);
    let [cout, _, k, _] = dims4(w);
    ConvShape::new(n, cin, h, wd, cout, k, stride, pad).expect("checked by the wrapper")
}

fn attn_shape(x: &FlexTensor, heads: usize) -> cpu_ops::AttnShape {
    let [n, c, h, w] = dims4(x);
    cpu_ops::AttnShape::new(n, c, h * w, heads).expect("checked by the wrapper")
}

#[allow(clippy::too_many_arguments)]
fn attention_flex(
    x: FlexTensor,
    wqkv: FlexTensor,
    bqkv: FlexTensor,
    wo: FlexTensor,
    bo: FlexTensor,
    r: FlexTensor,
    heads: usize,
    save: bool,
) -> (FlexTensor, FlexTensor) {
    let s = attn_shape(&x, heads);
    let (xv, wqkv, bqkv, wo, bo, r) = (
        values(&x),
        values(&wqkv),
        values(&bqkv),
        values(&wo),
        values(&bo),
        values(&r),
    );
    let inputs = cpu_ops::AttnInputs {
        x: &xv,
        wqkv: &wqkv,
        bqkv: &bqkv,
        wo: &wo,
        bo: &bo,
        r: &r,
    };
    let (y, saved) = cpu_ops::attention_forward(&s, inputs, save);
    let saved_shape = if save { [s.n, s.saved_len()] } else { [0, 0] };
    (flex(y, &x.shape()), flex(saved, &saved_shape))
}

impl CpuKernels for Flex {
    fn cpu_conv2d(
        x: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
        r: FlexTensor,
        stride: usize,
        pad: usize,
        up: bool,
    ) -> FlexTensor {
        let s = conv_shape(&x, &w, stride, pad);
        let (x, w, b, r) = (values(&x), values(&w), values(&b), values(&r));
        let ep = Epilogue {
            bias: Some(&b),
            residual: (!r.is_empty()).then_some(&r[..]),
        };
        if up {
            let y = cpu_ops::upconv_forward(&s, &x, &w, ep);
            return flex(y, &[s.n, s.cout, 2 * s.h, 2 * s.w]);
        }
        let y = cpu_ops::conv2d_forward(&s, &x, &w, ep);
        flex(y, &[s.n, s.cout, s.ho, s.wo])
    }

    fn cpu_conv2d_backward(
        x: FlexTensor,
        w: FlexTensor,
        gy: FlexTensor,
        stride: usize,
        pad: usize,
        up: bool,
        need_x: bool,
        image_bias: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let s = conv_shape(&x, &w, stride, pad);
        let back = if up {
            cpu_ops::upconv_backward
        } else {
            cpu_ops::conv2d_backward
        };
        let gy = values(&gy);
        let (gx, gw, gb) = back(&s, &values(&x), &values(&w), &gy, need_x);
        let gx = match gx {
            Some(g) => flex(g, &[s.n, s.cin, s.h, s.w]),
            None => flex(vec![], &[0]),
        };
        let gb = if image_bias {
            flex(cpu_ops::row_sums(&gy, s.n * s.cout), &[s.n * s.cout])
        } else {
            flex(gb, &[s.cout])
        };
        (gx, flex(gw, &w.shape()), gb)
    }

    fn cpu_group_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        eps: f32,
        act: bool,
    ) -> FlexTensor {
        let [n, c, h, w] = dims4(&x);
        let y = cpu_ops::group_norm(
            &values(&x),
            (n, c, h * w),
            groups,
            eps,
            &values(&gamma),
            &values(&beta),
            act,
        );
        flex(y, &[n, c, h, w])
    }

    fn cpu_group_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        gy: FlexTensor,
        groups: usize,
        eps: f32,
        act: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let [n, c, h, w] = dims4(&x);
        let (gx, gg, gb) = cpu_ops::group_norm_backward(
            &values(&x),
            (n, c, h * w),
            groups,
            eps,
            &values(&gamma),
            &values(&beta),
            &values(&gy),
            act,
        );
        (flex(gx, &[n, c, h, w]), flex(gg, &[c]), flex(gb, &[c]))
    }

    fn cpu_attention(
        x: FlexTensor,
        wqkv: FlexTensor,
        bqkv: FlexTensor,
        wo: FlexTensor,
        bo: FlexTensor,
        r: FlexTensor,
        heads: usize,
    ) -> FlexTensor {
        attention_flex(x, wqkv, bqkv, wo, bo, r, heads, false).0
    }

    fn cpu_attention_saving(
        x: FlexTensor,
        wqkv: FlexTensor,
        bqkv: FlexTensor,
        wo: FlexTensor,
        bo: FlexTensor,
        r: FlexTensor,
        heads: usize,
    ) -> (FlexTensor, FlexTensor) {
        attention_flex(x, wqkv, bqkv, wo, bo, r, heads, true)
    }

    fn cpu_attention_backward(
        x: FlexTensor,
        wqkv: FlexTensor,
        wo: FlexTensor,
        saved: FlexTensor,
        gy: FlexTensor,
        heads: usize,
    ) -> (FlexTensor, FlexTensor, FlexTensor, FlexTensor, FlexTensor) {
        let s = attn_shape(&x, heads);
        let g = cpu_ops::attention_backward(
            &s,
            &values(&x),
            &values(&wqkv),
            &values(&wo),
            &values(&saved),
            &values(&gy),
        );
        let c = s.c;
        (
            flex(g.x, &x.shape()),
            flex(g.wqkv, &[3 * c, c]),
            flex(g.bqkv, &[3 * c]),
            flex(g.wo, &[c, c]),
            flex(g.bo, &[c]),
        )
    }

    fn cpu_adam(
        p: FlexTensor,
        g: FlexTensor,
        m: FlexTensor,
        v: FlexTensor,
        scale: FlexTensor,
        k: cpu_ops::AdamCoefs,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = p.shape().to_vec();
        let s = values(&scale).first().copied();
        let (mut g, mut m, mut v) = (g, m, v);
        // in place when g, m and v are each the sole owner of exactly their values (as a
        // training step leaves them): p' over g, m' over m, v' over v
        if g.shape() == p.shape()
            && let (Some(gs), Some(ms), Some(vs)) =
                (whole_mut(&mut g), whole_mut(&mut m), whole_mut(&mut v))
        {
            cpu_ops::adam_in_place(&values(&p), gs, ms, vs, s, k);
            ADAM_IN_PLACE.with(|c| c.set(c.get() + 1));
            return (g, m, v);
        }
        let (po, mo, vo) = cpu_ops::adam(&values(&p), &values(&g), &values(&m), &values(&v), s, k);
        (flex(po, &shape), flex(mo, &shape), flex(vo, &shape))
    }

    fn cpu_silu(x: FlexTensor) -> FlexTensor {
        let shape = x.shape().to_vec();
        flex(cpu_ops::silu(&values(&x)), &shape)
    }

    fn cpu_silu_backward(x: FlexTensor, gy: FlexTensor) -> FlexTensor {
        let shape = x.shape().to_vec();
        flex(cpu_ops::silu_backward(&values(&x), &values(&gy)), &shape)
    }
}

/// Hands each tracked parent its gradient.
#[cfg(feature = "train")]
fn register<B: Backend, const N: usize>(
    parents: [Option<burn::backend::autodiff::NodeId>; N],
    grads_out: [FloatTensor<B>; N],
    grads: &mut Gradients,
) {
    for (id, g) in parents.into_iter().zip(grads_out) {
        if let Some(id) = id {
            grads.register::<B>(id, g);
        }
    }
}

#[cfg(feature = "train")]
#[derive(Debug)]
struct ConvBackward;

#[cfg(feature = "train")]
impl<B: Backend + CpuKernels> Backward<B, 4> for ConvBackward {
    /// (x, w, stride, pad, up, image_bias)
    type State = (FloatTensor<B>, FloatTensor<B>, usize, usize, bool, bool);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b, node_r] = ops.parents;
        let gy = grads.consume::<B>(&ops.node);
        let (x, w, stride, pad, up, image_bias) = ops.state;
        let (gx, gw, gb) = B::cpu_conv2d_backward(
            x,
            w,
            gy.clone(),
            stride,
            pad,
            up,
            node_x.is_some(),
            image_bias,
        );
        register::<B, 4>(
            [node_x, node_w, node_b, node_r].map(|n| n.map(|n| n.id)),
            [gx, gw, gb, gy],
            grads,
        );
    }
}

#[cfg(feature = "train")]
#[derive(Debug)]
struct NormBackward;

#[cfg(feature = "train")]
impl<B: Backend + CpuKernels> Backward<B, 3> for NormBackward {
    /// (x, gamma, beta, groups, eps, act)
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        usize,
        f32,
        bool,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g, node_b] = ops.parents;
        let gy = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, groups, eps, act) = ops.state;
        let (gx, gg, gb) = B::cpu_group_norm_backward(x, gamma, beta, gy, groups, eps, act);
        register::<B, 3>(
            [node_x, node_g, node_b].map(|n| n.map(|n| n.id)),
            [gx, gg, gb],
            grads,
        );
    }
}

#[cfg(feature = "train")]
#[derive(Debug)]
struct AttnBackward;

#[cfg(feature = "train")]
impl<B: Backend + CpuKernels> Backward<B, 6> for AttnBackward {
    /// (x, wqkv, wo, saved, heads)
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        usize,
    );

    fn backward(self, ops: Ops<Self::State, 6>, grads: &mut Gradients, _: &mut Checkpointer) {
        let gy = grads.consume::<B>(&ops.node);
        let (x, wqkv, wo, saved, heads) = ops.state;
        let (gx, gw, gb, gwo, gbo) =
            B::cpu_attention_backward(x, wqkv, wo, saved, gy.clone(), heads);
        register::<B, 6>(
            ops.parents.map(|n| n.map(|n| n.id)),
            [gx, gw, gb, gwo, gbo, gy],
            grads,
        );
    }
}

#[cfg(feature = "train")]
#[derive(Debug)]
struct SiluBackward;

#[cfg(feature = "train")]
impl<B: Backend + CpuKernels> Backward<B, 1> for SiluBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let gy = grads.consume::<B>(&ops.node);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::cpu_silu_backward(ops.state, gy));
        }
    }
}

/// Autodiff: the forward runs on the inner backend and records the hand-written backward.
#[cfg(feature = "train")]
impl<B: Backend + CpuKernels, C: CheckpointStrategy> CpuKernels for Autodiff<B, C> {
    fn cpu_conv2d(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        r: FloatTensor<Self>,
        stride: usize,
        pad: usize,
        up: bool,
    ) -> FloatTensor<Self> {
        let prep = ConvBackward
            .prepare::<C>([x.node(), w.node(), b.node(), r.node()])
            .compute_bound()
            .stateful();
        let image_bias = b.shape().num_elements() != w.shape().dims::<4>()[0];
        let (x, w, b, r) = (
            x.into_primitive(),
            w.into_primitive(),
            b.into_primitive(),
            r.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let y = B::cpu_conv2d(x.clone(), w.clone(), b, r, stride, pad, up);
                prep.finish((x, w, stride, pad, up, image_bias), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_conv2d(x, w, b, r, stride, pad, up)),
        }
    }

    fn cpu_conv2d_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        gy: FloatTensor<Self>,
        stride: usize,
        pad: usize,
        up: bool,
        need_x: bool,
        image_bias: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // gradients of gradients are not needed: constants
        let (gx, gw, gb) = B::cpu_conv2d_backward(
            Self::inner(x),
            Self::inner(w),
            Self::inner(gy),
            stride,
            pad,
            up,
            need_x,
            image_bias,
        );
        (
            Self::from_inner(gx),
            Self::from_inner(gw),
            Self::from_inner(gb),
        )
    }

    fn cpu_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        act: bool,
    ) -> FloatTensor<Self> {
        let prep = NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let y = B::cpu_group_norm(x.clone(), gamma.clone(), beta.clone(), groups, eps, act);
                prep.finish((x, gamma, beta, groups, eps, act), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::cpu_group_norm(x, gamma, beta, groups, eps, act))
            }
        }
    }

    fn cpu_group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        gy: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        act: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (gx, gg, gb) = B::cpu_group_norm_backward(
            Self::inner(x),
            Self::inner(gamma),
            Self::inner(beta),
            Self::inner(gy),
            groups,
            eps,
            act,
        );
        (
            Self::from_inner(gx),
            Self::from_inner(gg),
            Self::from_inner(gb),
        )
    }

    fn cpu_attention(
        x: FloatTensor<Self>,
        wqkv: FloatTensor<Self>,
        bqkv: FloatTensor<Self>,
        wo: FloatTensor<Self>,
        bo: FloatTensor<Self>,
        r: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        let prep = AttnBackward
            .prepare::<C>([
                x.node(),
                wqkv.node(),
                bqkv.node(),
                wo.node(),
                bo.node(),
                r.node(),
            ])
            .compute_bound()
            .stateful();
        let (x, wqkv, bqkv, wo, bo, r) = (
            x.into_primitive(),
            wqkv.into_primitive(),
            bqkv.into_primitive(),
            wo.into_primitive(),
            bo.into_primitive(),
            r.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let (y, saved) = B::cpu_attention_saving(
                    x.clone(),
                    wqkv.clone(),
                    bqkv,
                    wo.clone(),
                    bo,
                    r,
                    heads,
                );
                prep.finish((x, wqkv, wo, saved, heads), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::cpu_attention(x, wqkv, bqkv, wo, bo, r, heads))
            }
        }
    }

    fn cpu_attention_saving(
        x: FloatTensor<Self>,
        wqkv: FloatTensor<Self>,
        bqkv: FloatTensor<Self>,
        wo: FloatTensor<Self>,
        bo: FloatTensor<Self>,
        r: FloatTensor<Self>,
        heads: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // only the backward reads what is saved: constants
        let (y, saved) = B::cpu_attention_saving(
            Self::inner(x),
            Self::inner(wqkv),
            Self::inner(bqkv),
            Self::inner(wo),
            Self::inner(bo),
            Self::inner(r),
            heads,
        );
        (Self::from_inner(y), Self::from_inner(saved))
    }

    fn cpu_attention_backward(
        x: FloatTensor<Self>,
        wqkv: FloatTensor<Self>,
        wo: FloatTensor<Self>,
        saved: FloatTensor<Self>,
        gy: FloatTensor<Self>,
        heads: usize,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let (gx, gw, gb, gwo, gbo) = B::cpu_attention_backward(
            Self::inner(x),
            Self::inner(wqkv),
            Self::inner(wo),
            Self::inner(saved),
            Self::inner(gy),
            heads,
        );
        (
            Self::from_inner(gx),
            Self::from_inner(gw),
            Self::from_inner(gb),
            Self::from_inner(gwo),
            Self::from_inner(gbo),
        )
    }

    fn cpu_silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = SiluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let x = x.into_primitive();
        match prep {
            OpsKind::Tracked(prep) => {
                let y = B::cpu_silu(x.clone());
                prep.finish(x, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_silu(x)),
        }
    }

    fn cpu_silu_backward(x: FloatTensor<Self>, gy: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::cpu_silu_backward(Self::inner(x), Self::inner(gy)))
    }

    fn cpu_adam(
        p: FloatTensor<Self>,
        g: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        k: cpu_ops::AdamCoefs,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // an optimizer step: nothing to differentiate
        let (po, mo, vo) = B::cpu_adam(
            Self::inner(p),
            Self::inner(g),
            Self::inner(m),
            Self::inner(v),
            Self::inner(scale),
            k,
        );
        (
            Self::from_inner(po),
            Self::from_inner(mo),
            Self::from_inner(vo),
        )
    }
}

fn all_f32(ts: &[DType]) -> bool {
    ts.iter().all(|d| *d == DType::F32)
}

/// conv2d with bias, square kernel, the same stride and padding on both axes: the CPU kernel
/// on the CPU backend, Burn's conv2d elsewhere.
pub fn conv2d(x: Tensor<4>, w: Tensor<4>, b: Tensor<1>, stride: usize, pad: usize) -> Tensor<4> {
    conv2d_fused(x, w, b, None, None, stride, pad)
}

/// conv2d(x, w, b) + e[n, cout] broadcast over the pixels (when given) + r (when given): on the
/// CPU backend the bias per image and the residual are added in the pass that writes the
/// output (no pass of their own, and in parallel), Burn's ops elsewhere.
pub fn conv2d_fused(
    x: Tensor<4>,
    w: Tensor<4>,
    b: Tensor<1>,
    e: Option<Tensor<2>>,
    r: Option<Tensor<4>>,
    stride: usize,
    pad: usize,
) -> Tensor<4> {
    let [n, cin, h, wd] = x.dims();
    let [cout, wcin, k, k2] = w.dims();
    let shape = ConvShape::new(n.max(1), cin, h, wd, cout, k, stride, pad);
    let mut dtypes = vec![x.dtype(), w.dtype(), b.dtype()];
    dtypes.extend(e.as_ref().map(|e| e.dtype()));
    dtypes.extend(r.as_ref().map(|r| r.dtype()));
    let ok = use_cpu_kernels(&x.device())
        && wcin == cin
        && k == k2
        && b.dims()[0] == cout
        && shape.is_some_and(|s| r.as_ref().is_none_or(|r| r.dims() == [n, cout, s.ho, s.wo]))
        && e.as_ref().is_none_or(|e| e.dims() == [n, cout])
        && all_f32(&dtypes);
    if !ok {
        let mut y = reference::conv2d(x, w, b, stride, pad);
        if let Some(e) = e {
            y = y + e.reshape([n, cout, 1, 1]);
        }
        if let Some(r) = r {
            y = y + r;
        }
        return y;
    }
    let dev = x.device();
    let bias = match e {
        Some(e) => (e + b.unsqueeze_dim::<2>(0)).reshape([n * cout]),
        None => b,
    };
    let r = r.unwrap_or_else(|| Tensor::<4>::zeros([0, 0, 0, 0], &dev));
    Tensor::from_dispatch(Dispatch::cpu_conv2d(
        x.into_dispatch(),
        w.into_dispatch(),
        bias.into_dispatch(),
        r.into_dispatch(),
        stride,
        pad,
        false,
    ))
}

/// A 3x3 convolution (stride 1, padding 1, with bias) of x upsampled 2x by nearest
/// neighbour: on the CPU backend one kernel that never builds the upsampled image (each
/// output phase is a 2x2 convolution with folded weights, 16/36 of the work), Burn's ops
/// (upsample, then conv2d) elsewhere.
pub fn upsample_conv2d(x: Tensor<4>, w: Tensor<4>, b: Tensor<1>) -> Tensor<4> {
    let [_, cin, h, wd] = x.dims();
    let [cout, wcin, k, k2] = w.dims();
    let ok = use_cpu_kernels(&x.device())
        && wcin == cin
        && (k, k2) == (3, 3)
        && b.dims()[0] == cout
        && h > 0
        && wd > 0
        && all_f32(&[x.dtype(), w.dtype(), b.dtype()]);
    if ok {
        let none = Tensor::<4>::zeros([0, 0, 0, 0], &x.device());
        Tensor::from_dispatch(Dispatch::cpu_conv2d(
            x.into_dispatch(),
            w.into_dispatch(),
            b.into_dispatch(),
            none.into_dispatch(),
            1,
            1,
            true,
        ))
    } else {
        reference::conv2d(reference::upsample2x(x), w, b, 1, k / 2)
    }
}

/// GroupNorm (eps 1e-5) with affine gamma, beta, then SiLU when `act`: one fused CPU kernel
/// each way on the CPU backend, Burn's composed ops elsewhere.
pub fn group_norm(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    groups: usize,
    act: bool,
) -> Tensor<4> {
    group_norm_eps(x, gamma, beta, groups, cpu_ops::GN_EPS, act)
}

/// `group_norm` with epsilon eps (diffusers' `norm_eps`).
pub fn group_norm_eps(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    groups: usize,
    eps: f32,
    act: bool,
) -> Tensor<4> {
    let c = x.dims()[1];
    let ok = use_cpu_kernels(&x.device())
        && groups > 0
        && c.is_multiple_of(groups)
        && gamma.dims()[0] == c
        && beta.dims()[0] == c
        && all_f32(&[x.dtype(), gamma.dtype(), beta.dtype()]);
    if ok {
        Tensor::from_dispatch(Dispatch::cpu_group_norm(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            groups,
            eps,
            act,
        ))
    } else {
        reference::group_norm_eps(x, gamma, beta, groups, eps, act)
    }
}

/// Whether Adam's update runs as one CPU pass (`adam`) for these flat parameters: f32 on the
/// CPU backend with the kernels on.
pub fn adam_applies(p: &Tensor<1>) -> bool {
    use_cpu_kernels(&p.device()) && p.dtype() == DType::F32
}

/// Adam's update in one pass on the CPU backend (call where `adam_applies`): (p', m', v') for
/// the gradient g times `scale` (a `[1]` tensor: the clip's factor) when given; the same bits
/// as `engine/optim.rs`'s Burn-ops form.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    p: Tensor<1>,
    g: Tensor<1>,
    m: Tensor<1>,
    v: Tensor<1>,
    scale: Option<Tensor<1>>,
    k: cpu_ops::AdamCoefs,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let scale = scale.unwrap_or_else(|| Tensor::empty([0], &p.device()));
    let (po, mo, vo) = Dispatch::cpu_adam(
        p.into_dispatch(),
        g.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        scale.into_dispatch(),
        k,
    );
    (
        Tensor::from_dispatch(po),
        Tensor::from_dispatch(mo),
        Tensor::from_dispatch(vo),
    )
}

/// SiLU, x sigmoid(x): one vectorised pass each way on the CPU backend (Burn's sigmoid calls
/// libm's exp per value, and its backward computes it again: half of a 2-D distillation
/// step), Burn's silu elsewhere.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if use_cpu_kernels(&x.device()) && x.dtype() == DType::F32 {
        Tensor::from_dispatch(Dispatch::cpu_silu(x.into_dispatch()))
    } else {
        burn::tensor::activation::silu(x)
    }
}

/// diffusers' attention block after its GroupNorm: r + to_out(softmax(q k^T / sqrt(d)) v) over
/// the pixels of xn `[N, C, H, W]`, with `heads` heads of d = C / heads channels; `w` and `b`
/// are to_q, to_k, to_v and to_out.0's weights (PyTorch Linear layout `[out, in]`, here
/// `[C, C]`) and biases. On the CPU backend one op each way (the projections, every head and
/// the residual, straight on NCHW: `cpu_ops::attention_forward`), Burn's ops elsewhere.
pub fn attention(
    xn: Tensor<4>,
    w: [Tensor<2>; 4],
    b: [Tensor<1>; 4],
    heads: usize,
    r: Tensor<4>,
) -> Tensor<4> {
    let [n, c, h, wd] = xn.dims();
    let mut dtypes = vec![xn.dtype(), r.dtype()];
    dtypes.extend(w.iter().map(|t| t.dtype()));
    dtypes.extend(b.iter().map(|t| t.dtype()));
    let ok = use_cpu_kernels(&xn.device())
        && cpu_ops::AttnShape::new(n, c, h * wd, heads).is_some()
        && w.iter().all(|t| t.dims() == [c, c])
        && b.iter().all(|t| t.dims() == [c])
        && r.dims() == [n, c, h, wd]
        && all_f32(&dtypes);
    if !ok {
        return reference::attention(xn, w, b, heads, r);
    }
    let [wq, wk, wv, wo] = w;
    let [bq, bk, bv, bo] = b;
    let wqkv = Tensor::cat(vec![wq, wk, wv], 0);
    let bqkv = Tensor::cat(vec![bq, bk, bv], 0);
    Tensor::from_dispatch(Dispatch::cpu_attention(
        xn.into_dispatch(),
        wqkv.into_dispatch(),
        bqkv.into_dispatch(),
        wo.into_dispatch(),
        bo.into_dispatch(),
        r.into_dispatch(),
        heads,
    ))
}

/// The plain Burn-ops versions (every non-CPU device, and the tests' reference).
pub mod reference {
    use burn::tensor::Tensor;
    use burn::tensor::activation::{silu, softmax};
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;

    pub fn conv2d(
        x: Tensor<4>,
        w: Tensor<4>,
        b: Tensor<1>,
        stride: usize,
        pad: usize,
    ) -> Tensor<4> {
        burn_conv2d(
            x,
            w,
            Some(b),
            ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1),
        )
    }

    /// Nearest-neighbour upsampling by 2 on both axes.
    pub fn upsample2x(x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let x: Tensor<6> = x.reshape([n, c, h, 1, w, 1]);
        x.repeat_dim(3, 2)
            .repeat_dim(5, 2)
            .reshape([n, c, 2 * h, 2 * w])
    }

    /// `super::attention` as Burn ops: Linear layers as matmuls, the heads split by
    /// reshape and swap_dims, Burn's softmax.
    pub fn attention(
        xn: Tensor<4>,
        w: [Tensor<2>; 4],
        b: [Tensor<1>; 4],
        heads: usize,
        r: Tensor<4>,
    ) -> Tensor<4> {
        let [n, c, h, wd] = xn.dims();
        let (t, d) = (h * wd, c / heads);
        let [wq, wk, wv, wo] = w;
        let [bq, bk, bv, bo] = b;
        let linear = |x: Tensor<2>, w: Tensor<2>, b: Tensor<1>| -> Tensor<2> {
            x.matmul(w.transpose()) + b.reshape([1, c])
        };
        let split = |x: Tensor<2>| -> Tensor<4> {
            x.reshape([n, t, heads, d]).swap_dims(1, 2) // [n, heads, t, d]
        };
        let flat = xn.reshape([n, c, t]).swap_dims(1, 2).reshape([n * t, c]);
        let q = split(linear(flat.clone(), wq, bq));
        let k = split(linear(flat.clone(), wk, bk));
        let v = split(linear(flat, wv, bv));
        let att = softmax(q.matmul(k.swap_dims(2, 3)).div_scalar((d as f64).sqrt()), 3);
        let o = att.matmul(v).swap_dims(1, 2).reshape([n * t, c]);
        let o = linear(o, wo, bo);
        r + o.reshape([n, t, c]).swap_dims(1, 2).reshape([n, c, h, wd])
    }

    pub fn group_norm(
        x: Tensor<4>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        groups: usize,
        act: bool,
    ) -> Tensor<4> {
        group_norm_eps(x, gamma, beta, groups, super::cpu_ops::GN_EPS, act)
    }

    pub fn group_norm_eps(
        x: Tensor<4>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        groups: usize,
        eps: f32,
        act: bool,
    ) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let xg = x.reshape([n, groups, (c / groups) * h * w]);
        let mean = xg.clone().mean_dim(2);
        let xc = xg - mean;
        let var = (xc.clone() * xc.clone()).mean_dim(2);
        let xn = (xc / var.add_scalar(eps as f64).sqrt()).reshape([n, c, h, w]);
        let y = xn * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1]);
        if act { silu(y) } else { y }
    }
}
