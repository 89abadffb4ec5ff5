//! The compiled pipelines, one per WGSL entry point, built once per context from the registry in
//! [`super::shaders`], labelled `relu-iht.<kernel>[.<entry>]`.

use super::shaders;

/// Every pipeline the engine dispatches.
pub struct Kernels {
    pub relu_mask: wgpu::ComputePipeline,
    pub masked_gradient: wgpu::ComputePipeline,
    pub support_forward: wgpu::ComputePipeline,
    pub support_adjoint: wgpu::ComputePipeline,
    pub reduce_partials: wgpu::ComputePipeline,
    pub reduce_axpy: wgpu::ComputePipeline,
    pub topk_histogram: wgpu::ComputePipeline,
    pub topk_threshold: wgpu::ComputePipeline,
    pub topk_compact: wgpu::ComputePipeline,
    pub vector_hidden: wgpu::ComputePipeline,
    pub vector_output: wgpu::ComputePipeline,
    pub vector_residual: wgpu::ComputePipeline,
    pub vector_backprop: wgpu::ComputePipeline,
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Self {
        let module = |name: &str| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&format!("relu-iht.{name}")),
                source: wgpu::ShaderSource::Wgsl(shaders::source(name).into()),
            })
        };
        let pipeline = |m: &wgpu::ShaderModule, label: &str, entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: m,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let relu = module("relu_mask");
        let grad = module("masked_gradient");
        let fwd = module("support_forward");
        let adj = module("support_adjoint");
        let red = module("reduce");
        let top = module("topk");
        let vm = module("vector_model");
        Self {
            relu_mask: pipeline(&relu, "relu-iht.relu_mask", "main"),
            masked_gradient: pipeline(&grad, "relu-iht.masked_gradient", "main"),
            support_forward: pipeline(&fwd, "relu-iht.support_forward", "main"),
            support_adjoint: pipeline(&adj, "relu-iht.support_adjoint", "main"),
            reduce_partials: pipeline(&red, "relu-iht.reduce.partials", "partials"),
            reduce_axpy: pipeline(&red, "relu-iht.reduce.axpy", "axpy"),
            topk_histogram: pipeline(&top, "relu-iht.topk.histogram", "histogram"),
            topk_threshold: pipeline(&top, "relu-iht.topk.threshold", "threshold"),
            topk_compact: pipeline(&top, "relu-iht.topk.compact", "compact"),
            vector_hidden: pipeline(&vm, "relu-iht.vector_model.hidden", "hidden"),
            vector_output: pipeline(&vm, "relu-iht.vector_model.output", "output"),
            vector_residual: pipeline(&vm, "relu-iht.vector_model.residual", "residual"),
            vector_backprop: pipeline(&vm, "relu-iht.vector_model.backprop", "backprop"),
        }
    }
}

/// Mirrors `Params` of `shaders/relu_mask.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReluMaskParams {
    pub rows: u32,
    pub d: u32,
    pub tile: u32,
    pub words: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub out_stride: u32,
    pub out_word0: u32,
}

/// Mirrors `Params` of `shaders/masked_gradient.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MaskedGradientParams {
    pub rows: u32,
    pub d: u32,
    pub tile: u32,
    pub words: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub r_row0: u32,
    pub accumulate: u32,
    pub finish: u32,
    pub mu: f32,
    /// 0: one residual under the masks; else the per-neuron residual's stride.
    pub res_stride: u32,
    pub _pad: u32,
}

/// Mirrors `Params` of `shaders/support_forward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SupportForwardParams {
    pub rows: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub words: u32,
    pub runs: u32,
    pub out_row0: u32,
    pub m_row0: u32,
    pub _pad: u32,
}

/// Mirrors `Params` of `shaders/support_adjoint.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SupportAdjointParams {
    pub rows: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub words: u32,
    pub len: u32,
    pub r_row0: u32,
    pub m_row0: u32,
    pub accumulate: u32,
}

/// Mirrors `Params` of `shaders/reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceParams {
    pub len: u32,
    pub mode: u32,
    pub per_group: u32,
    pub mu: f32,
}

/// Mirrors `Params` of `shaders/topk.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TopkParams {
    pub len: u32,
    pub keep: u32,
    pub floor: u32,
    pub d: u32,
}

/// Mirrors `Params` of `shaders/vector_model.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct VectorModelParams {
    pub rows: u32,
    pub d: u32,
    pub tile: u32,
    pub k: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub row0: u32,
    pub n: u32,
    pub words: u32,
    pub accumulate: u32,
    /// 1: MSE, 2: softmax cross-entropy.
    pub loss: u32,
    pub _pad: u32,
}

/// Workgroups of 64 needed for `len` invocations.
pub fn groups64(len: usize) -> u32 {
    len.div_ceil(64) as u32
}
