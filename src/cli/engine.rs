//! The engine a run computes on: `--backend auto|gpu|cpu` resolved once (SPEC §7), and the
//! dispatch from the resolved engine to code generic over [`Backend`]. Every subcommand opens its
//! engine here, after its arguments are validated and before any work.

use super::args::{BackendChoice, SolverArgs};
use anyhow::{Context, Result};
use relu_iht::engine::Choice;
use relu_iht::CpuBackend;

pub use relu_iht::engine::Engine;

/// Calls a generic function with whichever backend the engine holds.
#[macro_export]
macro_rules! with_engine {
    ($engine:expr, $b:ident => $body:expr) => {
        relu_iht::with_engine!($engine, $b => $body)
    };
}

/// Resolves `--backend` ([`relu_iht::engine::open`]) and says which engine on stderr unless
/// `quiet`.
pub fn open(choice: BackendChoice, quiet: bool, device_memory: Option<u64>) -> Result<Engine> {
    // The budget bounds the data's footprint and the tiles; below the floor it could only be
    // exceeded.
    if let Some(b) = device_memory.filter(|&b| b < relu_iht::engine::MIN_DEVICE_MEMORY) {
        anyhow::bail!(
            "invalid --device-memory = {b}: below the GPU engine's smallest working set ({} bytes)",
            relu_iht::engine::MIN_DEVICE_MEMORY
        );
    }
    let lib = match choice {
        BackendChoice::Auto => Choice::Auto,
        BackendChoice::Gpu => Choice::Gpu,
        BackendChoice::Cpu => Choice::Cpu,
    };
    let opened = relu_iht::engine::open(lib, device_memory);
    let (engine, what) = if choice == BackendChoice::Gpu {
        opened.context("invalid --backend = gpu")?
    } else {
        opened?
    };
    if !quiet {
        eprintln!("backend: {what}");
    }
    Ok(engine)
}

/// The engine of a task run: `--backend` and `--device-memory`, quiet on stderr with `--quiet`
/// or `--json`.
pub fn for_run(sa: &SolverArgs) -> Result<Engine> {
    open(sa.backend, sa.quiet || sa.json, sa.device_memory)
}

/// The engines `relu-iht bench` compares, the CPU first (the ratios' baseline): `cpu` the CPU
/// alone; `gpu` the CPU and the GPU engine on any adapter, a software one included; `auto` the
/// CPU and a hardware GPU when there is one — with only software adapters it times the CPU and
/// says on stderr (unless `quiet`) how to include them.
pub fn for_bench(
    choice: BackendChoice,
    quiet: bool,
    device_memory: Option<u64>,
) -> Result<Vec<Engine>> {
    let mut v = vec![Engine::Cpu(CpuBackend::new())];
    match choice {
        BackendChoice::Cpu => {}
        BackendChoice::Gpu => v.push(open(BackendChoice::Gpu, quiet, device_memory)?),
        BackendChoice::Auto => match relu_iht::engine::open(Choice::Auto, device_memory)? {
            (gpu @ Engine::Gpu(_), _) => v.push(gpu),
            (_, what) if !quiet => eprintln!(
                "bench: CPU rows only, {what}; `--backend gpu` adds the GPU engine on any \
                 adapter, a software one included (slow: Lavapipe runs WGSL on the CPU)"
            ),
            _ => {}
        },
    }
    Ok(v)
}
