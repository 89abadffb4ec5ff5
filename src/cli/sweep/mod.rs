//! `relu-iht sweep`: the paper's figure grids (SPEC §4) and the exact-recovery phase transition.
//!
//! Every cell is one run of this same binary with `--json`, so a cell is exactly what a user gets
//! from the task's own command, and its `peak_host_bytes` is that run's own peak. Rows go to a
//! CSV as soon as they finish; a rerun skips the cells already there (resumable). IMP runs once
//! per (m, seed, layers) and reports every requested s from the same pruning schedule (once per
//! cell on the planted tasks, where each s is its own problem). Heatmaps (rows m, columns s, mean
//! over seeds, the paper's colour limits) and IHT-vs-IMP panels are drawn from the CSV, so they
//! can be redrawn without rerunning anything. Files: `args` (the flags), `plan` (the presets),
//! `store` (the CSV and the runs), `draw` (the figures), `run` (the loop).

pub mod args;
mod draw;
mod plan;
mod run;
mod store;

pub use args::SweepArgs;
pub use run::run;
