//! The GEMM behind the convolutions (the `gemm` crate Burn's CPU backend uses, AVX-512
//! micro-kernels chosen at run time) and the small dense helpers around it: a blocked
//! transpose, row sums and an 8-lane sum.

pub(super) fn parallelism(inner: bool) -> gemm::Parallelism {
    #[cfg(not(target_arch = "wasm32"))]
    if inner {
        return gemm::Parallelism::Rayon(0);
    }
    let _ = inner;
    gemm::Parallelism::None
}

/// dst[m x n] = (accumulate ? dst : 0) + lhs[m x k] rhs[k x n], every operand given by its
/// row and column strides.
///
/// How gemm 0.19 treats the layouts (gemm.rs, gemm-common gemm.rs): a row-major dst (column
/// stride 1) makes it solve the transposed problem, dst^T = rhs^T lhs^T. Its micro-kernel then
/// reads the (new) left operand without packing only where that operand is column-major
/// (m contiguous); otherwise it packs it with a strided scalar gather for every call. So a
/// GEMM whose operands are both contiguous along k (the weight gradients: K = pixels) wants a
/// column-major dst and a left operand laid out [k, m].
#[allow(clippy::too_many_arguments)]
pub(super) fn mm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    // the last element each operand touches must be inside its slice
    assert!(
        (m - 1) * dst_rs + (n - 1) * dst_cs < dst.len(),
        "gemm: dst too small"
    );
    if k > 0 {
        assert!(
            (m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(),
            "gemm: lhs too small"
        );
        assert!(
            (k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(),
            "gemm: rhs too small"
        );
    }
    // SAFETY: the bounds of all three operands were checked above; dst does not alias lhs/rhs
    // (it is a distinct &mut slice).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// dst[c, r] = src[r, c] for a `rows` x `cols` row-major matrix, in 16 x 16 blocks.
pub(super) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 16;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            if r0 + B <= rows && c0 + B <= cols {
                // a whole block through a local copy: fixed-length slices, no bounds checks
                let mut blk = [[0f32; B]; B];
                for (i, b) in blk.iter_mut().enumerate() {
                    b.copy_from_slice(&src[(r0 + i) * cols + c0..][..B]);
                }
                for j in 0..B {
                    let d = &mut dst[(c0 + j) * rows + r0..][..B];
                    for (i, v) in d.iter_mut().enumerate() {
                        *v = blk[i][j];
                    }
                }
                continue;
            }
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// The sums of the `rows` equal rows of v (the bias gradient per image and channel).
pub fn row_sums(v: &[f32], rows: usize) -> Vec<f32> {
    let mut sums = vec![0f32; rows];
    add_row_sums(&mut sums, v);
    sums
}

/// acc[r] += the sum of row r of v, v being acc.len() equal rows (a bias gradient's share of
/// one image: its channels' planes).
pub(super) fn add_row_sums(acc: &mut [f32], v: &[f32]) {
    let len = v.len() / acc.len().max(1);
    if len == 0 {
        return;
    }
    for (a, row) in acc.iter_mut().zip(v.chunks(len)) {
        *a += sum8(row);
    }
}

/// A sum in 8 independent lanes (vectorises; the order differs from a sequential sum).
#[inline(always)]
pub(super) fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for j in 0..8 {
            acc[j] += c[j];
        }
    }
    let tail: f32 = it.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}
