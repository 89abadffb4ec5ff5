//! Shared reporting: backend choice, progress bars on stderr, the JSON record on stdout.

use super::args::BackendChoice;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use relu_iht::cpu::CpuBackend;
use serde::Serialize;

/// Resolves `--backend` to an engine, saying on stderr which one runs.
pub fn backend(choice: BackendChoice, quiet: bool) -> Result<CpuBackend> {
    match choice {
        BackendChoice::Cpu => Ok(CpuBackend::new()),
        BackendChoice::Auto => {
            if !quiet {
                eprintln!(
                    "backend: cpu ({} threads; this build has no GPU engine)",
                    rayon::current_num_threads()
                );
            }
            Ok(CpuBackend::new())
        }
        BackendChoice::Gpu => {
            bail!("invalid --backend = gpu: this build has no WebGPU engine yet; use --backend cpu")
        }
    }
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
    /// Prints as one line on stdout.
    pub fn print(&self) -> Result<()> {
        println!("{}", serde_json::to_string(self)?);
        Ok(())
    }
}
