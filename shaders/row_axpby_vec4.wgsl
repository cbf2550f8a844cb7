// row_axpby.wgsl on four elements per invocation, for rows whose length d is divisible
// by 4 (so a vec4 never straddles two rows). n and d count vec4 elements.

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

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.n) {
        return;
    }
    let r = i / params.d;
    var yv = y[i];
    if (params.clip != 0u) {
        yv = clamp(yv, vec4<f32>(-1.0), vec4<f32>(1.0));
    }
    out[i] = a[r] * x[i] + b[r] * yv;
}
