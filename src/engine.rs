//! The engine a fit computes on, resolved once from a choice (`auto`, `gpu`, `cpu`), and the
//! dispatch from the resolved engine to code generic over [`Backend`](crate::Backend) (the
//! [`with_engine!`](crate::with_engine) macro). The command line and the Python package open their
//! engines here.
//!
//! `gpu` opens any adapter (a software one such as Lavapipe included) or fails listing what was
//! found; `auto` takes a hardware GPU when there is one, else the CPU, probing the adapters before
//! opening a device (a software-only machine pays for an instance, not for a device and its
//! pipelines).

use crate::cpu::{CpuBackend, WideBackend};
use crate::error::{Error, Result};
use crate::gpu::context::GpuOptions;
use crate::gpu::{GpuBackend, GpuContext};
use std::sync::Arc;

/// Which engine to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// A hardware GPU when there is one, else the CPU.
    Auto,
    /// The WebGPU engine on any adapter.
    Gpu,
    /// The CPU engine.
    Cpu,
}

impl std::str::FromStr for Choice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Choice::Auto),
            "gpu" => Ok(Choice::Gpu),
            "cpu" => Ok(Choice::Cpu),
            _ => Err(Error::invalid("backend", s, "must be auto, gpu or cpu")),
        }
    }
}

/// The arithmetic of the CPU engine: f32 (the default; SIMD and `gemm`) or f64 throughout
/// ([`WideBackend`]: products, residuals, weights; machine-independent bits, several times slower).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    F64,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "f64" => Ok(Precision::F64),
            _ => Err(Error::invalid("precision", s, "must be f32 or f64")),
        }
    }
}

/// An opened engine.
#[allow(
    clippy::large_enum_variant,
    reason = "one engine per run, moved once into the solver; boxing would hide the Backend impl"
)]
pub enum Engine {
    Cpu(CpuBackend),
    Gpu(GpuBackend),
    /// The CPU engine in f64 (`--precision f64`).
    Wide(WideBackend),
}

/// Calls a generic expression with whichever backend the engine holds.
#[macro_export]
macro_rules! with_engine {
    ($engine:expr, $b:ident => $body:expr) => {
        match $engine {
            $crate::engine::Engine::Cpu($b) => $body,
            $crate::engine::Engine::Gpu($b) => $body,
            $crate::engine::Engine::Wide($b) => $body,
        }
    };
}

/// The smallest device memory budget accepted (64 KiB: one 64-row block and a one-neuron tile of
/// the bundled tasks fit; the n-vectors and the support come on top).
pub const MIN_DEVICE_MEMORY: u64 = 64 << 10;

/// Opens the engine at `precision`: f64 runs on the CPU only (`auto` resolves to it; `gpu` is
/// refused, as the WebGPU engine computes in f32).
pub fn open_at(
    choice: Choice,
    precision: Precision,
    device_memory: Option<u64>,
    gpu: GpuOptions,
) -> Result<(Engine, String)> {
    match (precision, choice) {
        (Precision::F32, _) => open_with(choice, device_memory, gpu),
        (Precision::F64, Choice::Gpu) => Err(Error::invalid(
            "precision",
            "f64",
            "runs on the CPU engine only (the WebGPU engine computes in f32); use --backend cpu",
        )),
        (Precision::F64, _) => Ok((
            Engine::Wide(WideBackend::new()),
            format!(
                "cpu-f64, {} threads (f64 products and weights)",
                rayon::current_num_threads()
            ),
        )),
    }
}

/// Opens the engine; returns it with one line saying which it is (and why, for `auto`).
pub fn open(choice: Choice, device_memory: Option<u64>) -> Result<(Engine, String)> {
    open_with(choice, device_memory, GpuOptions::default())
}

/// [`open`] with the GPU engine's options (each used where the adapter offers it; the line
/// says so).
pub fn open_with(
    choice: Choice,
    device_memory: Option<u64>,
    gpu: GpuOptions,
) -> Result<(Engine, String)> {
    if let Some(b) = device_memory.filter(|&b| b < MIN_DEVICE_MEMORY) {
        return Err(Error::invalid(
            "device_memory",
            b,
            format!("below the GPU engine's smallest working set ({MIN_DEVICE_MEMORY} bytes)"),
        ));
    }
    let cpu = |why: &str| {
        (
            Engine::Cpu(CpuBackend::new()),
            format!("cpu, {} threads{why}", rayon::current_num_threads()),
        )
    };
    let open_gpu = |hardware_only: bool| -> Result<(Engine, String)> {
        let ctx = GpuContext::with_options(hardware_only, gpu)?;
        let mut name = String::new();
        if gpu.x_f16 {
            name += if ctx.x_f16 {
                ", X stored in f16"
            } else {
                ", X in f32 (the adapter has no f16 in shaders)"
            };
        }
        if gpu.subgroups {
            name += if ctx.subgroups {
                ", subgroup sums"
            } else {
                ", tree sums (the adapter has no subgroup operations)"
            };
        }
        let backend = GpuBackend::new(Arc::new(ctx), device_memory);
        let name = crate::Backend::name(&backend) + &name;
        Ok((Engine::Gpu(backend), name))
    };
    Ok(match choice {
        Choice::Cpu => cpu(""),
        Choice::Gpu => open_gpu(false)?,
        Choice::Auto
            if !crate::gpu::context::adapters()
                .iter()
                .any(|a| a.is_hardware()) =>
        {
            cpu(" (no hardware GPU adapter; --backend gpu uses a software one)")
        }
        Choice::Auto => match open_gpu(true) {
            Ok(opened) => opened,
            Err(why) => cpu(&format!(" ({why})")),
        },
    })
}
