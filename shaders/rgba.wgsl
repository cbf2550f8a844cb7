// Images [N, C, H, W] (C = 1 or 3) to one RGBA8 grid of `cols` columns, one packed u32 per
// pixel (r | g << 8 | b << 16 | a << 24); values map [lo, hi] -> [0, 255]; cells past N
// are dark grey.
// NaN maps to 0, as the CPU reference's `as u32` of NaN does (WGSL's clamp and u32() of NaN are
// undefined; the test is on the bits, which no float optimisation may drop); +inf and values
// above hi map to 255, -inf and values below lo to 0. Tested in tests/kernels.rs,
// nan_and_infinity_behave_on_wgpu_as_on_the_cpu.

struct Params {
    total: u32,
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    cols: u32,
    lo: f32,
    hi: f32,
}

@group(0) @binding(0) var<storage, read_write> img: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read_write> params: Params;

fn byte(v: f32) -> u32 {
    let t = (v - params.lo) / (params.hi - params.lo);
    if ((bitcast<u32>(t) & 0x7fffffffu) > 0x7f800000u) {
        return 0u;
    }
    return u32(clamp(t, 0.0, 1.0) * 255.0 + 0.5);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = gid.x + gid.y * nwg.x * 64u;
    if (p >= params.total) {
        return;
    }
    let gw = params.cols * params.w;
    let gy = p / gw;
    let gx = p % gw;
    let k = (gy / params.h) * params.cols + gx / params.w;
    if (k >= params.n) {
        out[p] = 0xff202020u;
        return;
    }
    let y = gy % params.h;
    let x = gx % params.w;
    let plane = params.h * params.w;
    let base = k * params.c * plane + y * params.w + x;
    let r = byte(img[base]);
    var g = r;
    var b = r;
    if (params.c >= 3u) {
        g = byte(img[base + plane]);
        b = byte(img[base + 2u * plane]);
    }
    out[p] = r | (g << 8u) | (b << 16u) | (255u << 24u);
}
