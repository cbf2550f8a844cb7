//! Small helpers between host vectors and Burn tensors. Every host <-> device transfer of
//! the engine goes through them (or calls `note_read` / `note_upload`), so they count host
//! round trips: on a GPU each read is a pipeline stall, each upload a queued copy.

use std::cell::Cell;

use burn::tensor::{Device, Tensor, TensorData};

thread_local! {
    static READS: Cell<u64> = const { Cell::new(0) };
    static UPLOADS: Cell<u64> = const { Cell::new(0) };
}

/// Host <-> device transfers made so far on this thread (a run drives its device from one
/// thread, so concurrent runs and tests do not count each other's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Transfers {
    /// tensors read back to the host
    pub reads: u64,
    /// host data uploaded as tensors
    pub uploads: u64,
}

impl std::ops::Sub for Transfers {
    type Output = Transfers;
    fn sub(self, o: Transfers) -> Transfers {
        Transfers {
            reads: self.reads - o.reads,
            uploads: self.uploads - o.uploads,
        }
    }
}

pub fn transfers() -> Transfers {
    Transfers {
        reads: READS.with(Cell::get),
        uploads: UPLOADS.with(Cell::get),
    }
}

/// Count one read of a tensor back to the host (for reads outside these helpers).
pub fn note_read() {
    READS.with(|c| c.set(c.get() + 1));
}

/// Count one upload of host data (for uploads outside these helpers).
pub fn note_upload() {
    UPLOADS.with(|c| c.set(c.get() + 1));
}

pub fn from_vec2(v: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    note_upload();
    Tensor::<2>::from_data(TensorData::new(v, shape), device)
}

pub fn from_vec1(v: Vec<f32>, device: &Device) -> Tensor<1> {
    note_upload();
    let n = v.len();
    Tensor::<1>::from_data(TensorData::new(v, [n]), device)
}

/// A per-sample column [N, 1] from f64 host values.
pub fn column(v: &[f64], device: &Device) -> Tensor<2> {
    from_vec2(v.iter().map(|&x| x as f32).collect(), [v.len(), 1], device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    note_read();
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

pub fn scalar(t: Tensor<1>) -> f32 {
    to_vec(t)[0]
}
