//! The CPU engine: one twin per WGSL kernel (same names) and the [`CpuBackend`] that drives them;
//! and [`WideBackend`], the same solver in f64 (`--precision f64`).

pub mod armijo;
pub mod engine;
pub mod lanes;
pub mod masked_gradient;
pub mod reduce;
pub mod relu_mask;
pub mod simd;
pub mod support_adjoint;
pub mod support_forward;
pub mod support_pass;
pub mod topk;
pub mod vector_model;
pub mod wide;

pub use engine::CpuBackend;
pub use wide::WideBackend;
