//! The CPU kernels on plain f32 slices (NCHW, contiguous): convolution forward and backward
//! through one GEMM per image (the `gemm` crate Burn's CPU backend uses, AVX-512 micro-kernels
//! chosen at run time), and GroupNorm with an optional SiLU as one fused pass each way, with a
//! vectorised exp, and multi-head self-attention with its projections as one op each way.
//! `cpu.rs` puts them behind a Burn backend extension; the tests compare them
//! with Burn's own ops.

// first: its `multiversion!` macro is used by the modules declared after it
#[macro_use]
mod groupnorm;

mod adam;
mod attention;
mod conv;
mod gemm;
#[cfg(test)]
mod tests;
mod threads;
mod upconv;
mod winograd;

pub use adam::{AdamCoefs, adam, adam_in_place};
pub use attention::{AttnGrads, AttnInputs, AttnShape, attention_backward, attention_forward};
pub use conv::{ConvShape, Epilogue};
pub use gemm::row_sums;
pub use groupnorm::{GN_EPS, exp_f32, group_norm, group_norm_backward, silu, silu_backward};
pub use upconv::{upconv_backward, upconv_forward};
// the convolutions as the kernels run them: Winograd where it pays, else the direct form
pub use winograd::{conv2d_backward, conv2d_forward, set_winograd};
