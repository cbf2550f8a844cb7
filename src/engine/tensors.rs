//! Small helpers between host vectors and Burn tensors.

use burn::tensor::{Device, Tensor, TensorData};

pub fn from_vec2(v: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(v, shape), device)
}

pub fn from_vec1(v: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = v.len();
    Tensor::<1>::from_data(TensorData::new(v, [n]), device)
}

/// A per-sample column [N, 1] from f64 host values.
pub fn column(v: &[f64], device: &Device) -> Tensor<2> {
    from_vec2(v.iter().map(|&x| x as f32).collect(), [v.len(), 1], device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

pub fn scalar(t: Tensor<1>) -> f32 {
    to_vec(t)[0]
}
