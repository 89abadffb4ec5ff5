//! The flags of `relu-iht sweep` and the names they take (figures, tasks, methods).

pub use crate::cli::args::{BackendChoice, TeacherChoice};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Figure {
    /// Planted recovery, L = 1 and 2 (PSNR).
    #[value(name = "1")]
    F1,
    /// Planted vector output k = 10, L = 1 and 2 (PSNR).
    #[value(name = "2")]
    F2,
    /// Binary MNIST (test accuracy).
    #[value(name = "3a")]
    F3a,
    /// 10-class MNIST (test accuracy).
    #[value(name = "3b")]
    F3b,
    /// INR of the MNIST test digit 1000 (PSNR).
    #[value(name = "4")]
    F4,
    /// INR of a CIFAR-10 test image (PSNR).
    #[value(name = "5")]
    F5,
    /// Peak memory of IHT and IMP on binary MNIST as m grows (not a figure of the paper).
    Memory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Planted scalar network (`planted`).
    Planted,
    /// Planted vector network, k = 10 (`planted --k 10`).
    PlantedK,
    /// Binary MNIST (`mnist --classes binary`).
    MnistBinary,
    /// 10-class MNIST (`mnist --classes all`).
    Mnist,
    /// INR of the MNIST test digit 1000 (`inr --mnist-digit 1000`).
    InrDigit,
    /// INR of the first CIFAR-10 test image (`inr --image DATA/images/cifar10/cifar10_00_3.png`).
    InrCifar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Vary {
    /// Training points, for the exact-recovery phase transition.
    N,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Iht,
    Imp,
}

#[derive(Debug, Args, Clone)]
pub struct SweepArgs {
    /// A figure of the paper: its task, grid, steps and layers (SPEC §4).
    #[arg(long, value_enum, conflicts_with = "task")]
    pub figure: Option<Figure>,
    /// The task, for a grid of your own (--m, --s, --seeds).
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// Methods to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "iht")]
    pub method: Vec<Method>,
    /// Widths (rows of the heatmap).
    #[arg(long, value_delimiter = ',')]
    pub m: Option<Vec<usize>>,
    /// Budgets (columns of the heatmap).
    #[arg(long, value_delimiter = ',')]
    pub s: Option<Vec<usize>>,
    /// Seeds, averaged in each cell.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Depths (one heatmap each).
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// A reduced grid (and data) that finishes in minutes on a laptop.
    #[arg(long)]
    pub quick: bool,
    /// Vary the training points instead (planted only): the fraction of seeds with exact recovery
    /// (weight error < 1e-4) as n grows, for fixed d, m and s.
    #[arg(long, value_enum)]
    pub vary: Option<Vary>,
    /// Training points for --vary n.
    #[arg(long, value_delimiter = ',')]
    pub n: Option<Vec<usize>>,
    /// Teachers for --vary n (default: both).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub teacher: Option<Vec<TeacherChoice>>,
    /// Output directory: NAME.csv, NAME-*.png.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Data directory (MNIST, images; see scripts/fetch-data.sh).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Compute engine of every run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    pub backend: BackendChoice,
    /// IMP: also retrain once at the final mask and report that model.
    #[arg(long)]
    pub imp_retrain: bool,
    /// Redraw the figures from the CSV without running anything.
    #[arg(long)]
    pub plot_only: bool,
    /// Extra arguments passed to every run (after --).
    #[arg(last = true)]
    pub extra: Vec<String>,
}
