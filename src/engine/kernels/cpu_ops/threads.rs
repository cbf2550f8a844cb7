//! Threads and scratch memory of the CPU kernels: per-thread scratch buffers, outputs written
//! in parallel chunks, per-thread accumulators and parallel elementwise loops (one after
//! another on wasm).

use std::cell::RefCell;

thread_local! {
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A per-thread scratch buffer, reused across calls (never shrinks).
pub(super) fn with_col<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COL.with(|c| {
        let mut v = c.borrow_mut();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    })
}

thread_local! {
    static PAD: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A second per-thread scratch buffer (the zero-padded image), reused across calls.
pub(super) fn with_pad<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    PAD.with(|c| {
        let mut v = c.borrow_mut();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    })
}

#[cfg(not(target_arch = "wasm32"))]
pub(super) fn threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(target_arch = "wasm32")]
pub(super) fn threads() -> usize {
    1
}

/// A new vector of `count` chunks of `len` floats, chunk i filled by `f(i, chunk_i)`: one
/// after another when `inner` (the threads then work inside each chunk's GEMMs) or on wasm,
/// else in parallel. Each chunk is zeroed by the thread that fills it, just before `f` (cache
/// hot, in parallel), instead of the whole output by one thread up front.
pub(super) fn new_chunks(
    count: usize,
    len: usize,
    inner: bool,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let total = count * len;
    if len == 0 {
        return vec![0f32; total];
    }
    let mut v: Vec<f32> = Vec::with_capacity(total);
    let one = |i: usize, c: &mut [std::mem::MaybeUninit<f32>]| {
        // SAFETY: the chunk is written with zeros (a valid f32) before it is viewed as &mut [f32]
        let c = unsafe {
            std::ptr::write_bytes(c.as_mut_ptr(), 0, c.len());
            std::slice::from_raw_parts_mut(c.as_mut_ptr().cast::<f32>(), c.len())
        };
        f(i, c)
    };
    let spare = &mut v.spare_capacity_mut()[..total];
    #[cfg(not(target_arch = "wasm32"))]
    if !inner {
        use rayon::prelude::*;
        spare
            .par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| one(i, c));
    }
    if inner || cfg!(target_arch = "wasm32") {
        spare
            .chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| one(i, c));
    }
    // SAFETY: every one of the `total` floats was initialised above (the chunks cover them)
    unsafe { v.set_len(total) };
    v
}

/// Sums `f(i)` (vectors of length `len`) over i in 0..n, one accumulator per thread.
pub(super) fn sum_over(
    n: usize,
    len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        (0..n)
            .into_par_iter()
            .fold(
                || vec![0f32; len],
                |mut acc, i| {
                    f(i, &mut acc);
                    acc
                },
            )
            .reduce(
                || vec![0f32; len],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            )
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut acc = vec![0f32; len];
        (0..n).for_each(|i| f(i, &mut acc));
        acc
    }
}

/// Elementwise work of at least this many values is split across the threads.
#[cfg(not(target_arch = "wasm32"))]
const PAR_ELEMENTS: usize = 1 << 15;

/// A new vector of `len` floats, written by `f(start, chunk)` over chunks of it (in parallel
/// for long vectors, off wasm).
pub(super) fn elementwise(len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
    let mut out = vec![0f32; len];
    #[cfg(not(target_arch = "wasm32"))]
    if len >= 2 * PAR_ELEMENTS && threads() > 1 {
        use rayon::prelude::*;
        out.par_chunks_mut(PAR_ELEMENTS)
            .enumerate()
            .for_each(|(i, c)| f(i * PAR_ELEMENTS, c));
        return out;
    }
    f(0, &mut out);
    out
}

/// Three new vectors of `len` floats, written together by `f(start, chunk, chunk, chunk)` over
/// the same chunks of each (`elementwise` for a pass with three outputs).
pub(super) fn elementwise3(
    len: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32], &mut [f32]) + Sync + Send,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut a, mut b, mut c) = (vec![0f32; len], vec![0f32; len], vec![0f32; len]);
    in_place3(&mut a, &mut b, &mut c, f);
    (a, b, c)
}

/// `f(start, chunk, chunk, chunk)` over the same chunks of three vectors of one length (in
/// parallel for long vectors, off wasm).
pub(super) fn in_place3(
    a: &mut [f32],
    b: &mut [f32],
    c: &mut [f32],
    f: impl Fn(usize, &mut [f32], &mut [f32], &mut [f32]) + Sync + Send,
) {
    assert!(
        a.len() == b.len() && a.len() == c.len(),
        "in_place3: lengths differ"
    );
    #[cfg(not(target_arch = "wasm32"))]
    if a.len() >= 2 * PAR_ELEMENTS && threads() > 1 {
        use rayon::prelude::*;
        a.par_chunks_mut(PAR_ELEMENTS)
            .zip(b.par_chunks_mut(PAR_ELEMENTS))
            .zip(c.par_chunks_mut(PAR_ELEMENTS))
            .enumerate()
            .for_each(|(i, ((x, y), z))| f(i * PAR_ELEMENTS, x, y, z));
        return;
    }
    f(0, a, b, c);
}
