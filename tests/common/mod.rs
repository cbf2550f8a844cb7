//! Helpers shared by the integration tests (each test binary includes this with `mod common;`).

/// `n` images of 8x8 pixels (u8, row-major): a 3x3 square of brightness `value(k)` at a
/// position set by the index k, on black.
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
