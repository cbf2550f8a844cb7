// TRACT target and weighted loss in one pass, r = i / d:
//   target = a[r] xs[i] + b[r] xt[i]           (eq 8 / eq 14 as coefficients)
//   err[i]  = w[r] (g[i] - target)^2 * scale     (scale = 1 / (N D): the mean)
//   grad[i] = 2 w[r] (g[i] - target) * scale     (d loss / d g, used by the backward pass)

struct Params {
    n: u32,
    d: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> xs: array<f32>;
@group(0) @binding(2) var<storage, read_write> xt: array<f32>;
@group(0) @binding(3) var<storage, read_write> a: array<f32>;
@group(0) @binding(4) var<storage, read_write> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> w: array<f32>;
@group(0) @binding(6) var<storage, read_write> err: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad: array<f32>;
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
