//! The WebGPU engine: WGSL kernels (`shaders/`) driven by wgpu. One file per kernel family
//! (`relu_mask`, `masked_gradient`, `support_forward`, `support_adjoint`, `reduce`, `topk`,
//! `armijo`, `vector_model`: its `Params` mirror and a typed `encode` over named buffers), the
//! context and pipelines built once, the buffers and the [`buffers::Recorder`] through which every
//! command is counted, the workspace kept between phases, and [`GpuBackend`], which runs the
//! solver's phases as single submissions.

pub mod armijo;
pub mod buffers;
pub mod context;
pub mod engine;
pub mod masked_gradient;
pub mod pipeline;
pub mod primitives;
pub mod reduce;
pub mod relu_mask;
pub mod shaders;
pub mod support_adjoint;
pub mod support_forward;
pub mod topk;
pub mod vector_model;
pub mod workspace;

pub use context::{AdapterSummary, GpuContext};
pub use engine::GpuBackend;
pub use primitives::GpuVector;
