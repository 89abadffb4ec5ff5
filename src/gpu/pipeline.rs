//! Every compute pipeline, built once per context from the registry in [`super::shaders`], with
//! its bind-group layout read off the shader by naga: binding 0 is the kernel's `Params` uniform,
//! bound with a dynamic offset into the context's parameter arena, and every other binding an
//! entry point statically uses is a storage buffer, read-only or read-write as the WGSL declares.
//! So the layout can never drift from the shader, and one bind group per (entry, buffers) serves
//! every dispatch of a run.

use super::shaders;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// Bytes of one parameter slot: every `Params` struct fits, and offsets stay aligned to the
/// adapter's `min_uniform_buffer_offset_alignment` (256 at most in WebGPU).
pub const PARAM_SLOT: u64 = 256;

/// One entry point: its pipeline, its layout and the bindings (other than 0) it expects.
#[derive(Debug)]
pub struct Kernel {
    /// `relu-iht.<kernel>.<entry>`.
    pub label: String,
    /// Position in the registry (part of the bind-group cache key).
    pub id: usize,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// Storage bindings in ascending order, and whether each is read-write.
    pub storage: Vec<(u32, bool)>,
}

/// Every entry point of every kernel family, by `"<kernel>.<entry>"`.
#[derive(Debug)]
pub struct Kernels {
    by_name: HashMap<String, Kernel>,
}

/// The storage bindings an entry point uses (binding, read-write), read off the shader.
pub fn reflect(source: &str, entry: &str) -> Result<Vec<(u32, bool)>> {
    let bad = |why: String| Error::Gpu {
        what: "shader reflection",
        message: why,
    };
    let module = naga::front::wgsl::parse_str(source).map_err(|e| bad(e.to_string()))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| bad(e.to_string()))?;
    let index = module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry)
        .ok_or_else(|| bad(format!("no entry point {entry}")))?;
    let uses = info.get_entry_point(index);
    let mut out = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        let (Some(binding), false) = (&var.binding, uses[handle].is_empty()) else {
            continue;
        };
        match var.space {
            naga::AddressSpace::Storage { access } => {
                out.push((binding.binding, access.contains(naga::StorageAccess::STORE)))
            }
            naga::AddressSpace::Uniform if binding.binding == 0 => {}
            _ => {
                return Err(bad(format!(
                    "{entry}: unexpected binding {}",
                    binding.binding
                )))
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The entry points of a WGSL source, in declaration order.
pub fn entry_points(source: &str) -> Result<Vec<String>> {
    naga::front::wgsl::parse_str(source)
        .map(|m| m.entry_points.iter().map(|e| e.name.clone()).collect())
        .map_err(|e| Error::Gpu {
            what: "shader",
            message: e.emit_to_string(source),
        })
}

impl Kernels {
    /// Compiles every entry point of every registered shader; with `x_f16`, the kernels that read
    /// X in their f16-storage variant ([`shaders::x_f16_source`]), with `subgroups` the kernels
    /// that sum over a workgroup in their subgroup variant ([`shaders::subgroup_source`]), with
    /// `lane_subgroups` the CPU adapters' subgroup entries too ([`shaders::lane_subgroup_source`]).
    pub fn new(
        device: &wgpu::Device,
        x_f16: bool,
        subgroups: bool,
        lane_subgroups: bool,
    ) -> Result<Self> {
        let mut by_name = HashMap::new();
        // With X in f16, the gradient kernels also in f32, for the f32 values the vector model
        // binds in X's place (`masked_gradient_f32`).
        let plain = x_f16.then(|| {
            (
                "masked_gradient_f32",
                shaders::source("masked_gradient"),
                false,
            )
        });
        let all = shaders::SHADERS
            .iter()
            .map(|&(name, source)| (name, source, x_f16))
            .chain(plain);
        for (name, source, x_f16) in all {
            let source = shaders::variant(source, x_f16, subgroups);
            let source = match lane_subgroups {
                true => shaders::lane_subgroup_source(name, &source).unwrap_or(source),
                false => source,
            };
            let source: &str = &source;
            // Parsed and validated by naga first: a broken shader is an error value, not a
            // panic of the device's error handler.
            let entries = entry_points(source)?;
            let reflected = entries
                .iter()
                .map(|e| reflect(source, e))
                .collect::<Result<Vec<_>>>()?;
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(&format!("relu-iht.{name}")),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            };
            // Bounds checks stay; the loop counters wgpu adds by default to every loop (against
            // shaders that never finish) do not: every loop of these kernels runs a counter up to
            // a bound from the parameters or a constant. On a CPU adapter those counters took
            // about half of the gradient kernel's time.
            let checks = wgpu::ShaderRuntimeChecks {
                force_loop_bounding: false,
                ..wgpu::ShaderRuntimeChecks::checked()
            };
            // SAFETY: the shaders are this crate's own, validated by naga above, and every loop
            // in them terminates (see above).
            let module = unsafe { device.create_shader_module_trusted(desc, checks) };
            for (entry, storage) in entries.into_iter().zip(reflected) {
                let label = format!("relu-iht.{name}.{entry}");
                let mut entries = vec![wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: None,
                    },
                    count: None,
                }];
                entries.extend(storage.iter().map(|&(b, rw)| wgpu::BindGroupLayoutEntry {
                    binding: b,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: !rw },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                }));
                let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&label),
                    entries: &entries,
                });
                let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(&label),
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                });
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(&entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
                let id = by_name.len();
                by_name.insert(
                    format!("{name}.{entry}"),
                    Kernel {
                        label,
                        id,
                        pipeline,
                        layout,
                        storage,
                    },
                );
            }
        }
        Ok(Self { by_name })
    }

    /// The entry point `"<kernel>.<entry>"` (a registry name; absence is a programming error
    /// caught by the tests that open every family).
    pub fn get(&self, name: &str) -> &Kernel {
        self.by_name
            .get(name)
            .unwrap_or_else(|| panic!("no kernel entry {name}"))
    }

    /// Number of entry points.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
