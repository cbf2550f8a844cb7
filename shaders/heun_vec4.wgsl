// heun.wgsl on four elements per invocation, for row length d divisible by 4.
// n and d count vec4 elements.

struct Params {
    n: u32,
    d: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> x0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> e: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> x0e: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c1: array<f32>;
@group(0) @binding(5) var<storage, read_write> c2: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> params: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.n) {
        return;
    }
    let r = i / params.d;
    let xi = x[i];
    out[i] = xi + c1[r] * (xi - x0[i]) + c2[r] * (e[i] - x0e[i]);
}
