// ema.wgsl on four weights per invocation (vec4 loads and stores), for n divisible by 4.
// n here counts vec4 elements.

struct Params {
    n: u32,
    ws: f32,
    wi: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> phi: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> es: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> ei: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out_s: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out_i: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> params: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.n) {
        return;
    }
    let p = phi[i];
    let s = es[i];
    let e = ei[i];
    out_s[i] = s + params.ws * (p - s);
    out_i[i] = e + params.wi * (p - e);
}
