//! The CPU convolution kernel per shape, Winograd F(2x2, 3x3) against the direct form, in one
//! run (not a test): 3x3 same-size convolutions at the channel counts and sizes of
//! google/ddpm-cifar10-32's UNet and of smaller networks; forward, and forward + backward.
//!
//! cargo run --release --example conv_speed -- [BATCH, default 8]
use std::time::Instant;
use tract_studio::engine::kernels::cpu_ops::{
    ConvShape, Epilogue, conv2d_backward, conv2d_forward, set_winograd,
};

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(8, |a| a.parse().expect("BATCH: a number"));
    let mut rng = tract_studio::engine::rng::Rng::new(1);
    println!(
        "batch {n}, 3x3 convolutions, stride 1, padding 1; median ms, GFLOP/s of the direct form's multiply-adds"
    );
    println!(
        "{:>9} {:>7} | {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7}",
        "channels", "size", "fwd direct", "Winograd", "ratio", "f+b direct", "Winograd", "ratio"
    );
    for (c, hw) in [
        (32, 32),
        (64, 32),
        (64, 16),
        (128, 32),
        (128, 16),
        (128, 8),
        (256, 16),
        (256, 8),
        (256, 4),
    ] {
        let s = ConvShape::new(n, c, hw, hw, c, 3, 1, 1).expect("a valid shape");
        let x = rng.normals(n * c * hw * hw);
        let w: Vec<f32> = rng
            .normals(c * c * 9)
            .iter()
            .map(|v| v / (9.0 * c as f32).sqrt())
            .collect();
        let gy = rng.normals(n * c * hw * hw);
        let reps = (40_000 / (hw * hw * n)).clamp(5, 51);
        let mut t = [[0f64; 2]; 2];
        for (j, wino) in [false, true].into_iter().enumerate() {
            set_winograd(wino);
            t[0][j] = median_ms(reps, || {
                std::hint::black_box(conv2d_forward(&s, &x, &w, Epilogue::NONE));
            });
            t[1][j] = median_ms(reps, || {
                std::hint::black_box(conv2d_forward(&s, &x, &w, Epilogue::NONE));
                std::hint::black_box(conv2d_backward(&s, &x, &w, &gy, true));
            });
        }
        let gflop = 2.0 * (n * c * c * 9 * hw * hw) as f64 / 1e9;
        println!(
            "{c:>9} {:>7} | {:>9.3} {:>9.3} {:>6.2}x | {:>9.3} {:>9.3} {:>6.2}x   ({:.0} -> {:.0} GFLOP/s forward)",
            format!("{hw}x{hw}"),
            t[0][0],
            t[0][1],
            t[0][0] / t[0][1],
            t[1][0],
            t[1][1],
            t[1][0] / t[1][1],
            gflop / t[0][0] * 1e3,
            gflop / t[0][1] * 1e3,
        );
    }
}
