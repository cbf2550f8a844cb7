// tract_loss.wgsl on four elements per invocation, for row length d divisible by 4.
// n and d count vec4 elements.

struct Params {
    n: u32,
    d: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> g: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> xs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> xt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> a: array<f32>;
@group(0) @binding(4) var<storage, read_write> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> w: array<f32>;
@group(0) @binding(6) var<storage, read_write> err: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> grad: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> params: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.n) {
        return;
    }
    let r = i / params.d;
    let res = g[i] - (a[r] * xs[i] + b[r] * xt[i]);
    let wr = w[r] * params.scale;
    err[i] = wr * res * res;
    grad[i] = 2.0 * wr * res;
}
