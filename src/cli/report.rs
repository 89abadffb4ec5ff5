//! Shared reporting: progress bars on stderr, the fits they follow, the JSON record on stdout.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use relu_iht::problem::data::RowSource;
use relu_iht::solver::depth::{self, Deep, VectorDeep};
use relu_iht::solver::vector::VectorConfig;
use relu_iht::{Backend, Data, IhtConfig, StepRecord};
use serde::Serialize;
use std::sync::Arc;

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
pub fn layer_step(bar: &ProgressBar) -> impl FnMut(usize, &StepRecord) + '_ {
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

/// A greedy scalar fit of `layers` layers (one is the plain solve) with a progress bar on stderr:
/// the fit and the engine back.
pub fn fit_layers<B: Backend>(
    backend: B,
    rows: Arc<dyn RowSource>,
    m: usize,
    config: &IhtConfig,
    layers: usize,
    quiet: bool,
) -> Result<(Deep, B)> {
    let bar = progress(layers * config.total_steps(rows.n()), quiet);
    let fit = depth::fit_layers(backend, rows, m, config, layers, layer_step(&bar))?;
    bar.finish_and_clear();
    Ok(fit)
}

/// A vector-output fit of `layers` layers with a progress bar on stderr: the model, the solve
/// seconds and the final batch loss.
#[allow(clippy::too_many_arguments)]
pub fn fit_vector<B: Backend>(
    backend: B,
    data: Arc<Data>,
    targets: Vec<f32>,
    k: usize,
    m: usize,
    vc: &VectorConfig,
    layers: usize,
    quiet: bool,
) -> Result<(VectorDeep<B>, f64, f64)> {
    let bar = progress(vc.total_steps(data.n()) * layers, quiet);
    let start = std::time::Instant::now();
    let mut last = f64::NAN;
    let model = depth::fit_vector_layers(
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

/// Writes `--trace`: one JSON object per step of every layer of a scalar fit, atomically.
pub fn write_trace(solver: &super::args::SolverArgs, deep: &Deep) -> Result<()> {
    let Some(path) = &solver.trace else {
        return Ok(());
    };
    let mut out = Vec::new();
    for (layer, rec) in deep.layers.iter().enumerate() {
        for st in &rec.history {
            let mut v = serde_json::to_value(st)?;
            if let Some(obj) = v.as_object_mut() {
                obj.insert("layer".into(), layer.into());
            }
            out.extend(serde_json::to_vec(&v)?);
            out.push(b'\n');
        }
    }
    relu_iht::atomic::write(path, &out)?;
    Ok(())
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
        deep: &Deep,
        mut extra: serde_json::Value,
    ) -> Self {
        // The returned network's training MSE, and what the options beyond the paper did to it.
        let polish = &deep.last().polish;
        if let Some(obj) = extra.as_object_mut() {
            obj.insert("training_mse".into(), polish.objective.into());
            if polish.refit.is_some()
                || polish.inflate.is_some()
                || polish.refine.is_some()
                || polish.concentrate.is_some()
            {
                obj.insert(
                    "options".into(),
                    serde_json::to_value(polish).unwrap_or_default(),
                );
            }
        }
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
