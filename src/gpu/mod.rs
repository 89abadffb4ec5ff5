//! The WebGPU engine: WGSL kernels (`shaders/`) driven by wgpu, one struct per kernel family,
//! and [`GpuBackend`], the [`crate::Backend`] the solver runs on unchanged.

pub mod buffers;
pub mod context;
pub mod engine;
pub mod kernels;
pub mod shaders;
pub mod vector_model;

pub use context::{AdapterSummary, GpuContext};
pub use engine::GpuBackend;
