// out[i] = a[r] * x[i] + b[r] * clip(y[i]),  r = i / d  (per-sample coefficients).
// One kernel for noisify (a = alpha, b = sigma), the DDIM step (a = sigma_s/sigma_t,
// b = alpha_s - alpha_t sigma_s/sigma_t, y = x0_hat, optional clip to [-1, 1]) and the
// TRACT target (a x_s + b x_t).
// Every storage binding is read_write (Burn sub-allocates tensors from shared buffers);
// bounds checks are off in cubecl's WGSL path, so the index is guarded with n.
// NaN: WGSL lets an implementation assume no NaN, and clamp(NaN) is undefined (lavapipe gave
// -1; `x != x` was folded to false there). The clip keeps NaN as NaN, as the CPU path's
// f32::clamp does, by testing the bits (an integer test no float optimisation may drop);
// infinities clip to the bounds. Tested in tests/kernels.rs, nan_and_infinity_behave_on_wgpu_as_on_the_cpu.

struct Params {
    n: u32,
    d: u32,
    clip: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> params: Params;

// clamp to [-1, 1]; NaN stays NaN (its exponent bits all set and a non-zero mantissa)
fn clip1(v: f32) -> f32 {
    let nan = (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
    return select(clamp(v, -1.0, 1.0), v, nan);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.n) {
        return;
    }
    let r = i / params.d;
    var yv = y[i];
    if (params.clip != 0u) {
        yv = clip1(yv);
    }
    out[i] = a[r] * x[i] + b[r] * yv;
}
