//! The GPU context, built once: instance (honouring `WGPU_BACKEND`), adapter, device, queue, the
//! adapter's limits, every compute pipeline, the parameter arena, the bind-group cache and the
//! counters of what reached the device. A missing adapter is an error value naming what
//! was found, never a panic.

use super::buffers::{Binder, MemoryCounter, Stats};
use super::pipeline::Kernels;
use crate::error::{Error, Result};
use std::sync::Arc;

/// One line of `relu-iht devices`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroups_per_dimension: u32,
    /// Optional features the engine can use: timestamp queries (`--profile`), f16 in shaders,
    /// subgroup operations.
    pub timestamps: bool,
    pub shader_f16: bool,
    pub subgroups: bool,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        Self {
            name: info.name,
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            timestamps: adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY),
            shader_f16: adapter.features().contains(wgpu::Features::SHADER_F16),
            subgroups: adapter.features().contains(wgpu::Features::SUBGROUP),
        }
    }

    /// Whether this is a hardware GPU (not a CPU rasterizer such as Lavapipe or llvmpipe).
    pub fn is_hardware(&self) -> bool {
        self.device_type != "Cpu"
    }
}

/// Optional ways of running the kernels, each used only where the adapter offers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuOptions {
    /// Store X in f16 on the device (half its memory and bandwidth; every product and sum stays
    /// in f32). Needs `SHADER_F16`; without it X stays in f32.
    pub x_f16: bool,
    /// Sum over workgroups with subgroup operations (one barrier instead of seven; the sums in
    /// another order than the CPU twin's). Needs `SUBGROUP`; without it the fixed tree stays.
    pub subgroups: bool,
}

/// Device, queue, limits and pipelines.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    pub(crate) memory: Arc<MemoryCounter>,
    pub(crate) stats: Stats,
    pub(crate) binder: Binder,
    pub kernels: Kernels,
    /// Whether X is stored in f16 (asked for with [`GpuOptions::x_f16`] and offered).
    pub x_f16: bool,
    /// Whether workgroup sums use subgroup operations ([`GpuOptions::subgroups`], offered).
    pub subgroups: bool,
    /// Whether the kernels' entries for CPU adapters may share loads across a subgroup: a CPU
    /// adapter offering subgroup operations of at least 8 lanes (Lavapipe), whatever the options
    /// (the results are those of the entries without: [`shaders::LANE_SUBGROUP_ENTRIES`]).
    ///
    /// [`shaders::LANE_SUBGROUP_ENTRIES`]: super::shaders::LANE_SUBGROUP_ENTRIES
    pub lane_subgroups: bool,
    /// The first error the device reported outside an error scope, or its loss.
    reported: Arc<std::sync::Mutex<Option<String>>>,
    /// Per-kernel GPU time from timestamp queries while profiling (`None`: off).
    pub(crate) profile: std::sync::Mutex<Option<KernelTimes>>,
}

pub use crate::backend::KernelTimes;

/// The instance: `WGPU_BACKEND` when set (e.g. `vulkan`, `gl`), else the primary backends
/// (Vulkan, Metal, DX12). GL is left out by default: its software rasterizer compiles these
/// shaders very slowly and lacks nothing the primary backends need.
fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::PRIMARY;
    }
    wgpu::Instance::new(desc)
}

/// Every adapter the instance can see.
pub fn adapters() -> Vec<AdapterSummary> {
    let instance = instance();
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(AdapterSummary::of)
        .collect()
}

impl GpuContext {
    /// Opens the preferred adapter; with `hardware_only`, a CPU rasterizer does not count.
    pub fn new(hardware_only: bool) -> Result<Self> {
        Self::with_options(hardware_only, GpuOptions::default())
    }

    /// [`new`](Self::new) with `options`, each taken where the adapter offers it (see
    /// [`GpuContext::x_f16`] for what was granted).
    pub fn with_options(hardware_only: bool, options: GpuOptions) -> Result<Self> {
        let instance = instance();
        let found = || {
            let all = adapters();
            if all.is_empty() {
                "no adapters at all".to_string()
            } else {
                all.iter()
                    .map(|a| format!("{} ({}, {})", a.name, a.backend, a.device_type))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        }))
        .map_err(|_| Error::NoAdapter(found()))?;
        let summary = AdapterSummary::of(&adapter);
        if hardware_only && !summary.is_hardware() {
            return Err(Error::NoAdapter(format!(
                "only a software adapter: {}",
                found()
            )));
        }
        let limits = adapter.limits();
        let x_f16 = options.x_f16 && summary.shader_f16;
        let mut features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        if x_f16 {
            features |= wgpu::Features::SHADER_F16;
        }
        let subgroups = options.subgroups && summary.subgroups;
        let lane_subgroups = !summary.is_hardware()
            && summary.subgroups
            && adapter.get_info().subgroup_min_size >= 8;
        if subgroups || lane_subgroups {
            features |= wgpu::Features::SUBGROUP;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("relu-iht"),
            // Timestamp queries where the adapter offers them (profiling; unused otherwise), and f16
            // in shaders and subgroup operations when asked for (and on a CPU adapter, for
            // `lane_subgroups`).
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::NoAdapter(format!("{}: device request failed: {e}", summary.name)))?;
        // Errors outside an error scope and a lost device are kept for the next recorder to
        // return, instead of the default handler's panic.
        let reported: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let slot = reported.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut first) = slot.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
        }));
        let slot = reported.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut first) = slot.lock() {
                first.get_or_insert_with(|| format!("device lost ({reason:?}): {message}"));
            }
        });
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let kernels = Kernels::new(&device, x_f16, subgroups, lane_subgroups);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu {
                what: "pipelines",
                message: e.to_string(),
            });
        }
        let kernels = kernels?;
        Ok(Self {
            device,
            queue,
            adapter: summary,
            limits,
            memory: Arc::new(MemoryCounter::default()),
            stats: Stats::default(),
            binder: Binder::default(),
            kernels,
            x_f16,
            subgroups,
            lane_subgroups,
            reported,
            profile: std::sync::Mutex::new(None),
        })
    }

    /// Whether the device records timestamps (the adapter offers `TIMESTAMP_QUERY`).
    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Starts timing every dispatch with timestamp queries (one extra readback per submission)
    /// and clears earlier times; false when the device has no timestamps.
    pub fn start_profile(&self) -> bool {
        if !self.has_timestamps() {
            return false;
        }
        *self.profile.lock().unwrap_or_else(|p| p.into_inner()) = Some(KernelTimes::new());
        true
    }

    /// Stops profiling and returns the times gathered since [`start_profile`](Self::start_profile).
    pub fn take_profile(&self) -> Option<KernelTimes> {
        self.profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub(crate) fn profiling(&self) -> bool {
        self.profile.lock().map(|p| p.is_some()).unwrap_or(false)
    }

    /// The first error the device reported outside an error scope (or its loss), taken.
    pub fn device_error(&self) -> Option<String> {
        self.reported.lock().ok()?.take()
    }

    /// Peak bytes of device buffers this context has held at once.
    pub fn peak_device_bytes(&self) -> u64 {
        self.memory.peak()
    }

    /// Restarts the peak count from the current allocation.
    pub fn reset_peak(&self) {
        self.memory.reset_peak()
    }
}
