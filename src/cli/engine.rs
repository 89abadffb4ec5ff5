//! The engine a run computes on: `--backend auto|gpu|cpu` resolved once (SPEC §7), and the
//! dispatch from the resolved engine to code generic over [`Backend`]. Every subcommand opens its
//! engine here, after its arguments are validated and before any work.

use super::args::{BackendChoice, SolverArgs};
use anyhow::{Context, Result};
use relu_iht::{Backend, CpuBackend, GpuBackend, GpuContext};
use std::sync::Arc;

/// The engine a run uses.
#[allow(
    clippy::large_enum_variant,
    reason = "one engine per run, moved once into the solver; boxing would hide the Backend impl"
)]
pub enum Engine {
    Cpu(CpuBackend),
    Gpu(GpuBackend),
}

/// Calls a generic function with whichever backend the engine holds.
#[macro_export]
macro_rules! with_engine {
    ($engine:expr, $b:ident => $body:expr) => {
        match $engine {
            $crate::cli::engine::Engine::Cpu($b) => $body,
            $crate::cli::engine::Engine::Gpu($b) => $body,
        }
    };
}

/// The smallest `--device-memory` accepted (64 KiB: one 64-row block and a one-neuron tile of
/// the bundled tasks fit; the n-vectors and the support come on top, as the README says).
const MIN_DEVICE_MEMORY: u64 = 64 << 10;

/// Resolves `--backend`: `gpu` opens any adapter (a software one included) or fails listing what
/// was found; `auto` takes a hardware GPU if there is one, else the CPU. Says which on stderr
/// unless `quiet`.
pub fn open(choice: BackendChoice, quiet: bool, device_memory: Option<u64>) -> Result<Engine> {
    // The budget bounds the data's footprint and the tiles; below the floor it could only be
    // exceeded.
    if let Some(b) = device_memory.filter(|&b| b < MIN_DEVICE_MEMORY) {
        anyhow::bail!(
            "invalid --device-memory = {b}: below the GPU engine's smallest working set ({MIN_DEVICE_MEMORY} bytes)"
        );
    }
    let say = |what: String| {
        if !quiet {
            eprintln!("backend: {what}");
        }
    };
    let cpu = |why: String| {
        say(format!(
            "cpu, {} threads{why}",
            rayon::current_num_threads()
        ));
        Engine::Cpu(CpuBackend::new())
    };
    let gpu = |backend: GpuBackend| {
        say(backend.name());
        Engine::Gpu(backend)
    };
    let open_gpu = |hardware_only: bool| -> relu_iht::Result<GpuBackend> {
        let ctx = Arc::new(GpuContext::new(hardware_only)?);
        Ok(GpuBackend::new(ctx, device_memory))
    };
    Ok(match choice {
        BackendChoice::Cpu => cpu(String::new()),
        BackendChoice::Gpu => gpu(open_gpu(false).context("invalid --backend = gpu")?),
        // Probe the adapters before opening a device: a software-only machine then pays for
        // an instance, not for a device and its compiled pipelines.
        BackendChoice::Auto
            if !relu_iht::gpu::context::adapters()
                .iter()
                .any(|a| a.is_hardware()) =>
        {
            cpu(" (no hardware GPU adapter; --backend gpu uses a software one)".into())
        }
        BackendChoice::Auto => match open_gpu(true) {
            Ok(backend) => gpu(backend),
            Err(why) => cpu(format!(" ({why})")),
        },
    })
}

/// The engine of a task run: `--backend` and `--device-memory`, quiet on stderr with `--quiet`
/// or `--json`.
pub fn for_run(sa: &SolverArgs) -> Result<Engine> {
    open(sa.backend, sa.quiet || sa.json, sa.device_memory)
}

/// The engines `relu-iht bench` compares: the CPU, the GPU, or (auto) the CPU and any GPU
/// adapter, a software one included; without one, auto says so on stderr unless `quiet`.
pub fn for_bench(
    choice: BackendChoice,
    quiet: bool,
    device_memory: Option<u64>,
) -> Result<Vec<Engine>> {
    Ok(match choice {
        BackendChoice::Cpu => vec![Engine::Cpu(CpuBackend::new())],
        BackendChoice::Gpu => vec![open(BackendChoice::Gpu, quiet, device_memory)?],
        BackendChoice::Auto => {
            let mut v = vec![Engine::Cpu(CpuBackend::new())];
            match open(BackendChoice::Gpu, true, device_memory) {
                Ok(gpu) => v.push(gpu),
                Err(e) if !quiet => eprintln!("bench: CPU only ({e:#})"),
                Err(_) => {}
            }
            v
        }
    })
}
