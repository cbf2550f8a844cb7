// row_axpby.wgsl on four elements per invocation, for rows whose length d is divisible
// by 4 (so a vec4 never straddles two rows). n and d count vec4 elements.
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

@group(0) @binding(0) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> params: Params;

// clamp to [-1, 1]; NaN stays NaN (its exponent bits all set and a non-zero mantissa)
fn clip4(v: vec4<f32>) -> vec4<f32> {
    let nan = (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    return select(clamp(v, vec4<f32>(-1.0), vec4<f32>(1.0)), v, nan);
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
        yv = clip4(yv);
    }
    out[i] = a[r] * x[i] + b[r] * yv;
}
