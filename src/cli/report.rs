//! Shared reporting: backend choice, progress bars on stderr, the JSON record on stdout.

use super::args::BackendChoice;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use relu_iht::cpu::CpuBackend;
use relu_iht::gpu::{GpuBackend, GpuContext};
use relu_iht::Backend;
use serde::Serialize;
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
            $crate::cli::report::Engine::Cpu($b) => $body,
            $crate::cli::report::Engine::Gpu($b) => $body,
        }
    };
}

/// Resolves `--backend`: `gpu` opens any adapter (a software one included) or fails listing what
/// was found; `auto` takes a hardware GPU if there is one, else the CPU, and says which on stderr.
pub fn backend(choice: BackendChoice, quiet: bool, device_memory: Option<u64>) -> Result<Engine> {
    let gpu = |hardware_only: bool| -> relu_iht::Result<Engine> {
        let ctx = Arc::new(GpuContext::new(hardware_only)?);
        Ok(Engine::Gpu(GpuBackend::new(ctx, device_memory)))
    };
    let engine = match choice {
        BackendChoice::Cpu => Engine::Cpu(CpuBackend::new()),
        BackendChoice::Gpu => gpu(false).context("invalid --backend = gpu")?,
        // Probe the adapters before opening a device: a software-only machine then pays for
        // an instance, not for a device and its compiled pipelines.
        BackendChoice::Auto
            if !relu_iht::gpu::context::adapters()
                .iter()
                .any(|a| a.is_hardware()) =>
        {
            if !quiet {
                eprintln!(
                    "backend: cpu, {} threads (no hardware GPU adapter; --backend gpu uses a software one)",
                    rayon::current_num_threads()
                );
            }
            return Ok(Engine::Cpu(CpuBackend::new()));
        }
        BackendChoice::Auto => match gpu(true) {
            Ok(engine) => engine,
            Err(why) => {
                if !quiet {
                    eprintln!(
                        "backend: cpu, {} threads ({why})",
                        rayon::current_num_threads()
                    );
                }
                return Ok(Engine::Cpu(CpuBackend::new()));
            }
        },
    };
    if !quiet {
        match &engine {
            Engine::Cpu(_) => eprintln!("backend: cpu, {} threads", rayon::current_num_threads()),
            Engine::Gpu(b) => eprintln!("backend: {}", b.name()),
        }
    }
    Ok(engine)
}

/// A progress bar over `total` steps on stderr (hidden when quiet or not a terminal).
pub fn progress(total: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} step {pos}/{len} [{elapsed_precise}] {msg}")
            .expect("static template"),
    );
    bar
}

/// The step callback of a (layer-wise) fit: advances `bar`, showing layer, residual and weights.
pub fn layer_step(
    bar: &ProgressBar,
) -> impl FnMut(usize, &relu_iht::solver::scalar::StepRecord) + '_ {
    move |layer, st| {
        bar.set_message(format!(
            "layer {}, rel. residual {:.3e}, nnz {}",
            layer + 1,
            st.rel_residual,
            st.nnz
        ));
        bar.inc(1);
    }
}

/// A vector-output fit of `layers` layers with a progress bar on stderr: the model, the solve
/// seconds and the final batch loss.
#[allow(clippy::too_many_arguments)]
pub fn fit_vector<B: Backend>(
    backend: B,
    data: Arc<relu_iht::problem::data::Data>,
    targets: Vec<f32>,
    k: usize,
    m: usize,
    vc: &relu_iht::solver::vector::VectorConfig,
    layers: usize,
    quiet: bool,
) -> Result<(relu_iht::solver::depth::VectorDeep<B>, f64, f64)> {
    let steps = vc.epochs * vc.batch_size.map_or(1, |b| data.n().div_ceil(b));
    let bar = progress(steps * layers, quiet);
    let start = std::time::Instant::now();
    let mut last = f64::NAN;
    let model = relu_iht::solver::depth::fit_vector_layers(
        backend,
        data,
        targets,
        k,
        m,
        vc,
        layers,
        |layer, _, loss| {
            last = loss;
            bar.set_message(format!("layer {}, loss {loss:.4e}", layer + 1));
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();
    Ok((model, start.elapsed().as_secs_f64(), last))
}

/// One run, as printed with `--json` (SPEC §7).
#[derive(Debug, Serialize)]
pub struct RunRecord {
    pub task: &'static str,
    pub method: &'static str,
    pub backend: String,
    pub n: usize,
    pub d: usize,
    pub m: usize,
    pub s: usize,
    pub k: usize,
    pub layers: usize,
    pub steps: usize,
    pub seed: u64,
    pub nnz: usize,
    pub seconds: f64,
    pub peak_host_bytes: u64,
    pub peak_device_bytes: u64,
    #[serde(flatten)]
    pub extra: serde_json::Value,
}

impl RunRecord {
    /// The record of a (layer-wise) scalar IHT fit: steps, nonzeros, time and device peak come
    /// from the fit; `(n, d, m, s)` and `seed` from the task.
    pub fn scalar_iht(
        task: &'static str,
        backend: String,
        (n, d, m, s): (usize, usize, usize, usize),
        seed: u64,
        deep: &relu_iht::solver::depth::Deep,
        extra: serde_json::Value,
    ) -> Self {
        Self {
            task,
            method: "iht",
            backend,
            n,
            d,
            m,
            s,
            k: 1,
            layers: deep.layers.len(),
            steps: deep.steps(),
            seed,
            nnz: deep.nnz(),
            seconds: deep.seconds(),
            peak_host_bytes: relu_iht::mem::peak_host_bytes(),
            peak_device_bytes: deep
                .layers
                .iter()
                .map(|r| r.peak_device_bytes)
                .max()
                .unwrap_or(0),
            extra,
        }
    }

    /// Prints as one line on stdout.
    pub fn print(&self) -> Result<()> {
        println!("{}", serde_json::to_string(self)?);
        Ok(())
    }
}
