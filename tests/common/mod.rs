//! Helpers shared by the integration tests (each test binary includes this with `mod common;`).

/// `n` images of 8x8 pixels (u8, row-major): a 3x3 square of brightness `value(k)` at a
/// position set by the index k, on black.
#[allow(dead_code)]
pub fn squares(n: usize, value: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut px = vec![0u8; n * 64];
    for k in 0..n {
        let (y0, x0) = (k % 5, (k / 5) % 5);
        for y in y0..y0 + 3 {
            for x in x0..x0 + 3 {
                px[k * 64 + y * 8 + x] = value(k);
            }
        }
    }
    px
}

/// 24 of those images (brightness 250) as an MNIST-format training file in `dir`.
#[allow(dead_code)]
pub fn square_idx(dir: &std::path::Path) {
    let px = squares(24, |_| 250);
    tract_studio::data::idx::write_idx(
        &dir.join("train-images-idx3-ubyte"),
        &[24, 8, 8],
        &px,
        false,
    )
    .unwrap();
}

/// Asserts max |a - b| / (1 + |b|) <= tol, and that b is not all zero (the comparison is
/// not vacuous).
#[allow(dead_code)]
pub fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let m = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0f32, f32::max);
    assert!(m <= tol, "{what}: max rel diff {m}");
    assert!(b.iter().any(|v| *v != 0.0), "{what}: all zero");
}
