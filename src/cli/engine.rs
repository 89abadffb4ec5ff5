//! The engine a run computes on: `--backend auto|gpu|cpu` resolved once (SPEC §7), and the
//! dispatch from the resolved engine to code generic over [`Backend`]. Every subcommand opens its
//! engine here, after its arguments are validated and before any work.

use super::args::{BackendChoice, PrecisionChoice, SolverArgs};
use anyhow::{Context, Result};
use relu_iht::engine::Choice;
use relu_iht::gpu::context::GpuOptions;
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
pub fn open(
    choice: BackendChoice,
    precision: PrecisionChoice,
    gpu: GpuOptions,
    quiet: bool,
    device_memory: Option<u64>,
) -> Result<Engine> {
    let flag = if gpu.x_f16 {
        Some("--gpu-f16")
    } else if gpu.subgroups {
        Some("--gpu-subgroups")
    } else {
        None
    };
    if let Some(flag) = flag {
        if choice == BackendChoice::Cpu || precision == PrecisionChoice::F64 {
            anyhow::bail!(
                "invalid {flag} with {}: it applies to the GPU engine only",
                if choice == BackendChoice::Cpu {
                    "--backend cpu"
                } else {
                    "--precision f64"
                }
            );
        }
    }
    // The budget bounds the data's footprint and the tiles; below the floor it could only be
    // exceeded.
    if let Some(b) = device_memory.filter(|&b| b < relu_iht::engine::MIN_DEVICE_MEMORY) {
        anyhow::bail!(
            "invalid --device-memory = {b}: below the GPU engine's smallest working set ({} bytes)",
            relu_iht::engine::MIN_DEVICE_MEMORY
        );
    }
    if precision == PrecisionChoice::F64 && choice == BackendChoice::Gpu {
        anyhow::bail!(
            "invalid --precision = f64 with --backend gpu: the WebGPU engine computes in f32 \
             (f64 runs on the CPU engine: --backend cpu)"
        );
    }
    let lib = match choice {
        BackendChoice::Auto => Choice::Auto,
        BackendChoice::Gpu => Choice::Gpu,
        BackendChoice::Cpu => Choice::Cpu,
    };
    let opened = relu_iht::engine::open_at(lib, precision.lib(), device_memory, gpu);
    let (engine, what) = if choice == BackendChoice::Gpu {
        opened.context("invalid --backend = gpu")?
    } else {
        opened?
    };
    if !quiet {
        eprintln!("backend: {what}");
    }
    if let (Some(flag), false, Engine::Cpu(_)) = (flag, quiet, &engine) {
        eprintln!("note: {flag} has no effect on the CPU engine");
    }
    Ok(engine)
}

/// The engine of a task run: `--backend` and `--device-memory`, quiet on stderr with `--quiet`
/// or `--json`; with `--profile` its kernels are timed from here on (see [`print_profile`]).
pub fn for_run(sa: &SolverArgs) -> Result<Engine> {
    let engine = open(
        sa.backend,
        sa.precision,
        sa.gpu_options(),
        sa.quiet || sa.json,
        sa.device_memory,
    )?;
    if sa.profile {
        match &engine {
            Engine::Gpu(g) => {
                let ctx = g.context().clone();
                if ctx.start_profile() {
                    *PROFILED.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctx);
                } else {
                    eprintln!("profile: this adapter offers no timestamp queries; no kernel times");
                }
            }
            Engine::Cpu(_) | Engine::Wide(_) => eprintln!(
                "profile: the CPU engine runs no device kernels to time (`--backend gpu` profiles \
                 the GPU engine's)"
            ),
        }
    }
    Ok(engine)
}

/// The device a `--profile` run times.
static PROFILED: std::sync::Mutex<Option<std::sync::Arc<relu_iht::GpuContext>>> =
    std::sync::Mutex::new(None);

/// Prints the kernel times of a `--profile` run on stderr, slowest first: device milliseconds,
/// dispatches and share of the device time per kernel entry point. Nothing without a profile.
pub fn print_profile() {
    let Some(ctx) = PROFILED.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let Some(times) = ctx.take_profile() else {
        return;
    };
    let total: f64 = times.values().map(|(ms, _)| ms).sum();
    let mut rows: Vec<(&String, &(f64, u64))> = times.iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    eprintln!("profile: device time by kernel (timestamps), {total:.1} ms in all");
    eprintln!(
        "  {:<28} {:>12} {:>11} {:>7}",
        "kernel", "ms", "dispatches", "share"
    );
    for (name, (ms, n)) in rows {
        eprintln!(
            "  {name:<28} {ms:>12.2} {n:>11} {:>6.1}%",
            100.0 * ms / total.max(f64::MIN_POSITIVE)
        );
    }
    let c = ctx.counters();
    eprintln!(
        "  submissions {}, readbacks {} ({:.1} ms of host wait, {:.3} ms each), dispatches {}",
        c.submits,
        c.readbacks,
        c.readback_wait_us as f64 / 1e3,
        c.readback_wait_us as f64 / 1e3 / c.readbacks.max(1) as f64,
        c.dispatches
    );
}

/// The engines `relu-iht bench` compares, the CPU first (the ratios' baseline): `cpu` the CPU
/// alone; `gpu` the CPU and the GPU engine on any adapter, a software one included; `auto` the
/// CPU and a hardware GPU when there is one — with only software adapters it times the CPU and
/// says on stderr (unless `quiet`) how to include them.
pub fn for_bench(
    choice: BackendChoice,
    precision: PrecisionChoice,
    gpu: GpuOptions,
    quiet: bool,
    device_memory: Option<u64>,
) -> Result<Vec<Engine>> {
    let mut v = vec![Engine::Cpu(CpuBackend::new())];
    if precision == PrecisionChoice::F64 {
        v.push(Engine::Wide(relu_iht::cpu::WideBackend::new()));
    }
    match choice {
        BackendChoice::Cpu => {}
        BackendChoice::Gpu => v.push(open(
            BackendChoice::Gpu,
            PrecisionChoice::F32,
            gpu,
            quiet,
            device_memory,
        )?),
        BackendChoice::Auto => match relu_iht::engine::open_with(Choice::Auto, device_memory, gpu)?
        {
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
