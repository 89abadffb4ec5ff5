//! `relu-iht sweep`: the paper's figure grids (SPEC §4) and the exact-recovery phase transition.
//!
//! Every cell is one run of this same binary with `--json`, so a cell is exactly what a user gets
//! from the task's own command, and its `peak_host_bytes` is that run's own peak. Rows go to a
//! CSV as soon as they finish; a rerun skips the cells already there (resumable). IMP runs once
//! per (m, seed, layers) and reports every requested s from the same pruning schedule. Heatmaps
//! (rows m, columns s, mean over seeds, the paper's colour limits) and IHT-vs-IMP panels are
//! drawn from the CSV, so they can be redrawn without rerunning anything.

use super::args::{BackendChoice, TeacherChoice};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use relu_iht::plot::{curves_png, heatmap_png, Curves, Heatmap};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// One finished run, as a CSV row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub task: Task,
    pub method: Method,
    pub teacher: String,
    pub layers: usize,
    pub n: usize,
    pub m: usize,
    pub s: usize,
    pub seed: u64,
    /// "psnr" or "accuracy".
    pub metric: String,
    pub value: f64,
    /// Planted only: the matched weight error (empty otherwise).
    pub weight_error: Option<f64>,
    pub nnz: usize,
    pub steps: usize,
    pub seconds: f64,
    pub peak_host_bytes: u64,
    pub peak_device_bytes: u64,
    pub backend: String,
}

type Key = (Task, Method, String, usize, usize, usize, usize, u64);

impl Row {
    fn key(&self) -> Key {
        (
            self.task,
            self.method,
            self.teacher.clone(),
            self.layers,
            self.n,
            self.m,
            self.s,
            self.seed,
        )
    }
}

/// The plan of a sweep: task, grid, per-run arguments, colour limits.
struct Plan {
    name: String,
    title: String,
    task: Task,
    ms: Vec<usize>,
    ss: Vec<usize>,
    seeds: Vec<u64>,
    layers: Vec<usize>,
    /// n per run (0: the task's own).
    ns: Vec<usize>,
    teachers: Vec<TeacherChoice>,
    args: Vec<String>,
    limits: (f64, f64),
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const PAPER_M: &[usize] = &[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
const PAPER_S: &[usize] = &[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

fn plan(a: &SweepArgs) -> Result<Plan> {
    let data = a.data_dir.display().to_string();
    let q = a.quick;
    let (task, name, title) = match (a.figure, a.task, a.vary) {
        (_, _, Some(Vary::N)) => (
            Task::Planted,
            "phase-n".to_string(),
            "exact recovery".to_string(),
        ),
        (Some(f), _, None) => {
            let (task, name) = match f {
                Figure::F1 => (Task::Planted, "figure-1"),
                Figure::F2 => (Task::PlantedK, "figure-2"),
                Figure::F3a => (Task::MnistBinary, "figure-3a"),
                Figure::F3b => (Task::Mnist, "figure-3b"),
                Figure::F4 => (Task::InrDigit, "figure-4"),
                Figure::F5 => (Task::InrCifar, "figure-5"),
                Figure::Memory => (Task::MnistBinary, "memory"),
            };
            let name = if q {
                format!("{name}-quick")
            } else {
                name.to_string()
            };
            (task, name, title_of(task).to_string())
        }
        (None, Some(t), None) => (
            t,
            format!("{}{}", task_name(t), if q { "-quick" } else { "" }),
            title_of(t).to_string(),
        ),
        (None, None, None) => bail!("invalid sweep: give --figure, --task or --vary n"),
    };
    // The paper's grids and schedules, and the quick ones (a reduced grid, one seed, less data).
    let (ms, ss, args): (Vec<usize>, Vec<usize>, Vec<String>) = match (a.figure, task) {
        (Some(Figure::Memory), _) => (
            vec![100, 1_000, 10_000, 100_000],
            vec![200],
            strings(&[
                "mnist",
                "--classes",
                "binary",
                "--epochs",
                "1",
                "--batch-size",
                "1000",
            ]),
        ),
        (_, Task::Planted) if a.vary.is_some() => (
            vec![if q { 5 } else { 10 }],
            vec![if q { 15 } else { 30 }],
            strings(&[
                "planted",
                "--d",
                if q { "10" } else { "20" },
                "--steps",
                "20",
            ]),
        ),
        (_, Task::Planted) if q => (
            vec![1, 10, 100],
            vec![1, 10, 100, 1000],
            strings(&["planted", "--n", "10000", "--steps", "15"]),
        ),
        (_, Task::Planted) => (
            PAPER_M.to_vec(),
            PAPER_S.to_vec(),
            strings(&["planted", "--steps", "15"]),
        ),
        (_, Task::PlantedK) if q => (
            vec![10, 100],
            vec![10, 100, 1000],
            strings(&[
                "planted",
                "--k",
                "10",
                "--n",
                "10000",
                "--epochs",
                "20",
                "--batch-size",
                "5000",
            ]),
        ),
        (_, Task::PlantedK) => (
            PAPER_M.to_vec(),
            PAPER_S.to_vec(),
            strings(&[
                "planted",
                "--k",
                "10",
                "--epochs",
                "100",
                "--batch-size",
                "5000",
            ]),
        ),
        (_, Task::MnistBinary) if q => (
            vec![1, 10, 100],
            vec![1, 10, 100],
            strings(&[
                "mnist",
                "--classes",
                "binary",
                "--train-per-class",
                "1000",
                "--test-per-class",
                "500",
                "--epochs",
                "5",
                "--batch-size",
                "1000",
            ]),
        ),
        (_, Task::MnistBinary) => (
            PAPER_M.to_vec(),
            vec![1, 2, 5, 10, 20, 50, 100, 200],
            strings(&[
                "mnist",
                "--classes",
                "binary",
                "--epochs",
                "15",
                "--batch-size",
                "1000",
            ]),
        ),
        (_, Task::Mnist) if q => (
            vec![10, 100],
            vec![100, 500, 2000],
            strings(&[
                "mnist",
                "--classes",
                "all",
                "--train-per-class",
                "500",
                "--test-per-class",
                "200",
                "--epochs",
                "20",
                "--batch-size",
                "1000",
            ]),
        ),
        (_, Task::Mnist) => (
            vec![10, 20, 50, 100, 200, 500, 1000],
            vec![100, 200, 500, 1000, 2000],
            strings(&[
                "mnist",
                "--classes",
                "all",
                "--epochs",
                "50",
                "--batch-size",
                "5000",
            ]),
        ),
        (_, Task::InrDigit) if q => (
            vec![2, 20, 50],
            vec![2, 20, 200, 1000],
            strings(&["inr", "--mnist-digit", "1000", "--steps", "100"]),
        ),
        (_, Task::InrDigit) => (
            vec![2, 5, 10, 20, 50, 100, 200],
            vec![2, 5, 10, 20, 50, 100, 200, 500, 1000],
            strings(&["inr", "--mnist-digit", "1000", "--steps", "100"]),
        ),
        (_, Task::InrCifar) if q => (
            vec![5, 50],
            vec![50, 500, 2000],
            strings(&[
                "inr",
                "--image",
                &format!("{data}/images/cifar10/cifar10_00_3.png"),
                "--steps",
                "100",
            ]),
        ),
        (_, Task::InrCifar) => (
            vec![1, 2, 5, 10, 20, 50, 100, 200],
            vec![5, 10, 20, 50, 100, 200, 500, 1000, 2000],
            strings(&[
                "inr",
                "--image",
                &format!("{data}/images/cifar10/cifar10_00_3.png"),
                "--steps",
                "100",
            ]),
        ),
    };
    let mut args = args;
    if matches!(task, Task::MnistBinary | Task::Mnist | Task::InrDigit) {
        args.extend(["--data-dir".to_string(), data.clone()]);
    }
    let layers = match (a.figure, &a.layers) {
        (_, Some(l)) => l.clone(),
        (Some(Figure::F1 | Figure::F2), None) => vec![1, 2],
        _ => vec![1],
    };
    let seeds = a
        .seeds
        .clone()
        .unwrap_or(if q { vec![0] } else { vec![0, 1, 2] });
    let ns = match (a.vary, &a.n) {
        (Some(_), Some(n)) => n.clone(),
        (Some(_), None) if q => vec![50, 100, 200, 400, 800],
        (Some(_), None) => vec![100, 200, 400, 800, 1600, 3200],
        (None, _) => vec![0],
    };
    let teachers = match (a.vary, &a.teacher) {
        (Some(_), Some(t)) => t.clone(),
        (Some(_), None) => vec![TeacherChoice::Convex, TeacherChoice::Relu],
        (None, _) => vec![TeacherChoice::Relu],
    };
    let limits = match task {
        Task::Planted | Task::PlantedK => (-20.0, 50.0),
        Task::InrDigit | Task::InrCifar => (0.0, 50.0),
        Task::MnistBinary => (0.5, 1.0),
        Task::Mnist => (0.1, 1.0),
    };
    for (what, v) in [("m", a.m.as_deref()), ("s", a.s.as_deref())] {
        if v.is_some_and(|v| v.is_empty() || v.contains(&0)) {
            bail!("invalid --{what}: every value must be at least 1");
        }
    }
    Ok(Plan {
        name,
        title,
        task,
        ms: a.m.clone().unwrap_or(ms),
        ss: a.s.clone().unwrap_or(ss),
        seeds,
        layers,
        ns,
        teachers,
        args,
        limits,
    })
}

fn task_name(t: Task) -> &'static str {
    match t {
        Task::Planted => "planted",
        Task::PlantedK => "planted-k",
        Task::MnistBinary => "mnist-binary",
        Task::Mnist => "mnist",
        Task::InrDigit => "inr-digit",
        Task::InrCifar => "inr-cifar",
    }
}

fn title_of(t: Task) -> &'static str {
    match t {
        Task::Planted => "planted, PSNR (dB)",
        Task::PlantedK => "planted k = 10, PSNR (dB)",
        Task::MnistBinary => "binary MNIST, test accuracy",
        Task::Mnist => "MNIST, test accuracy",
        Task::InrDigit => "INR of MNIST digit 1000, PSNR (dB)",
        Task::InrCifar => "INR of a CIFAR-10 image, PSNR (dB)",
    }
}

fn metric_of(t: Task) -> &'static str {
    match t {
        Task::MnistBinary | Task::Mnist => "accuracy",
        _ => "psnr",
    }
}

/// Reads the rows already in `path` (none when it does not exist).
fn read_rows(path: &Path) -> Result<Vec<Row>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut rd =
        csv::Reader::from_path(path).with_context(|| format!("invalid CSV {}", path.display()))?;
    rd.deserialize()
        .map(|r| r.with_context(|| format!("invalid CSV {}: a row does not parse", path.display())))
        .collect()
}

/// Appends rows to the CSV (header when new), flushed per call: a killed sweep keeps every
/// finished run.
fn append_rows(path: &Path, rows: &[Row]) -> Result<()> {
    let new = !path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = csv::WriterBuilder::new().has_headers(new).from_writer(file);
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// One subprocess: this binary with `args`, returning its JSON lines.
fn run_cell(args: &[String]) -> Result<Vec<serde_json::Value>> {
    let exe = std::env::current_exe().context("cannot locate the relu-iht binary")?;
    let out = Command::new(exe)
        .args(args)
        .output()
        .context("cannot start a run")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "run `relu-iht {}` failed: {}",
            args.join(" "),
            err.lines().last().unwrap_or("no message")
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).context("a run printed invalid JSON"))
        .collect()
}

fn row_from(
    task: Task,
    method: Method,
    teacher: &str,
    retrained: bool,
    v: &serde_json::Value,
) -> Result<Row> {
    let u = |k: &str| {
        v[k].as_u64()
            .with_context(|| format!("run record lacks {k}: {v}"))
    };
    let metric = metric_of(task);
    // IMP with --imp-retrain: the retrained model's score.
    let scored = if retrained && method == Method::Imp {
        &v["retrained"]
    } else {
        v
    };
    Ok(Row {
        task,
        method,
        teacher: teacher.to_string(),
        layers: u("layers")? as usize,
        n: u("n")? as usize,
        m: u("m")? as usize,
        s: u("s")? as usize,
        seed: u("seed")?,
        metric: metric.to_string(),
        value: match scored[metric].as_f64() {
            Some(x) => x,
            // JSON has no infinity: an exact fit (zero error) prints its PSNR as null.
            None if metric == "psnr" && scored["rel_error"].as_f64() == Some(0.0) => f64::INFINITY,
            None => bail!("run record lacks {metric}: {v}"),
        },
        weight_error: v["weight_error"].as_f64(),
        nnz: u("nnz")? as usize,
        steps: u("steps")? as usize,
        seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        peak_host_bytes: u("peak_host_bytes")?,
        peak_device_bytes: u("peak_device_bytes")?,
        backend: v["backend"].as_str().unwrap_or("").to_string(),
    })
}

fn teacher_name(t: TeacherChoice) -> &'static str {
    match t {
        TeacherChoice::Relu => "relu",
        TeacherChoice::Convex => "convex",
    }
}

pub fn run(a: &SweepArgs) -> Result<()> {
    let p = plan(a)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create --out {}", a.out.display()))?;
    let csv_path = a.out.join(format!("{}.csv", p.name));
    let done: BTreeSet<Key> = read_rows(&csv_path)?.iter().map(Row::key).collect();
    let backend = match a.backend {
        BackendChoice::Auto => "auto",
        BackendChoice::Gpu => "gpu",
        BackendChoice::Cpu => "cpu",
    };
    // The runs still to do: IHT per cell, IMP per (layers, n, m, seed) with its missing budgets.
    let mut jobs: Vec<(Method, String, Vec<String>, usize)> = Vec::new();
    for &teacher in &p.teachers {
        let tn = teacher_name(teacher);
        for &layers in &p.layers {
            for &n in &p.ns {
                for &m in &p.ms {
                    for &seed in &p.seeds {
                        let mut base = without_overridden(&p.args, &a.extra);
                        for (flag, v) in [
                            ("--m", m.to_string()),
                            ("--seed", seed.to_string()),
                            ("--layers", layers.to_string()),
                            ("--backend", backend.to_string()),
                        ] {
                            base.extend([flag.to_string(), v]);
                        }
                        if n > 0 {
                            base.extend(["--n".to_string(), n.to_string()]);
                        }
                        if a.vary.is_some() {
                            base.extend(["--teacher".to_string(), tn.to_string()]);
                            if teacher == TeacherChoice::Convex {
                                // The theory's setting: the solver's own fixed random masks.
                                base.extend(["--mode".to_string(), "convex".to_string()]);
                            }
                        }
                        base.extend(["--json".to_string(), "--quiet".to_string()]);
                        base.extend(a.extra.iter().cloned());
                        for &method in &a.method {
                            let missing: Vec<usize> =
                                p.ss.iter()
                                    .copied()
                                    .filter(|&s| {
                                        !done.iter().any(|k| {
                                            k.0 == p.task
                                                && k.1 == method
                                                && k.2 == tn
                                                && k.3 == layers
                                                && (n == 0 || k.4 == n)
                                                && k.5 == m
                                                && k.6 == s
                                                && k.7 == seed
                                        })
                                    })
                                    .collect();
                            match method {
                                Method::Iht => {
                                    for s in missing {
                                        let mut args = base.clone();
                                        args.extend(["--s".to_string(), s.to_string()]);
                                        jobs.push((method, tn.to_string(), args, 1));
                                    }
                                }
                                // A planted cell is its own problem (s planted weights): one
                                // IMP run per cell, its budget the cell's s.
                                Method::Imp if matches!(p.task, Task::Planted | Task::PlantedK) => {
                                    for s in missing {
                                        let mut args = base.clone();
                                        args.extend([
                                            "--s".to_string(),
                                            s.to_string(),
                                            "--method".to_string(),
                                            "imp".to_string(),
                                        ]);
                                        if a.imp_retrain {
                                            args.push("--imp-retrain".to_string());
                                        }
                                        jobs.push((method, tn.to_string(), args, 1));
                                    }
                                }
                                Method::Imp if !missing.is_empty() => {
                                    let mut args = base.clone();
                                    let list: Vec<String> =
                                        missing.iter().map(|s| s.to_string()).collect();
                                    args.extend([
                                        "--method".to_string(),
                                        "imp".to_string(),
                                        "--imp-budgets".to_string(),
                                        list.join(","),
                                    ]);
                                    if a.imp_retrain {
                                        args.push("--imp-retrain".to_string());
                                    }
                                    jobs.push((method, tn.to_string(), args, missing.len()));
                                }
                                Method::Imp => {}
                            }
                        }
                    }
                }
            }
        }
    }
    if !a.plot_only && !jobs.is_empty() {
        let cells: usize = jobs.iter().map(|j| j.3).sum();
        eprintln!(
            "sweep {}: {} runs ({cells} cells) to do, {} already in {}",
            p.name,
            jobs.len(),
            done.len(),
            csv_path.display()
        );
        let bar = super::report::progress(jobs.len(), false);
        let mut failed = 0usize;
        for (method, teacher, args, _) in &jobs {
            bar.set_message(args[..args.len().min(12)].join(" "));
            // A cell the model cannot hold (s above its weights) stays empty: grey in the map.
            let records = match run_cell(args) {
                Ok(r) => r,
                Err(e) => {
                    bar.suspend(|| eprintln!("skipped: {e:#}"));
                    failed += 1;
                    bar.inc(1);
                    continue;
                }
            };
            let rows = records
                .iter()
                .map(|v| row_from(p.task, *method, teacher, a.imp_retrain, v))
                .collect::<Result<Vec<_>>>()?;
            append_rows(&csv_path, &rows)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        if failed > 0 {
            eprintln!(
                "sweep {}: {failed} of {} runs failed (their cells stay empty)",
                p.name,
                jobs.len()
            );
        }
    }
    let rows = read_rows(&csv_path)?;
    if rows.is_empty() {
        bail!("sweep {}: no runs in {}", p.name, csv_path.display());
    }
    let written = if a.vary.is_some() {
        draw_phase(&p, &rows, &a.out)?
    } else if a.figure == Some(Figure::Memory) {
        memory_table(&rows, &a.out.join(format!("{}.md", p.name)))?
    } else {
        draw_heatmaps(&p, &rows, &a.out)?
    };
    println!("{}", csv_path.display());
    for w in written {
        println!("{}", w.display());
    }
    Ok(())
}

/// Mean over seeds per (method, layers, m, s) of each value clamped to the colour limits.
fn means(
    rows: &[Row],
    task: Task,
    (lo, hi): (f64, f64),
) -> BTreeMap<(Method, usize, usize, usize), f64> {
    let mut acc: BTreeMap<(Method, usize, usize, usize), (f64, usize)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.task == task) {
        let e = acc.entry((r.method, r.layers, r.m, r.s)).or_default();
        // An exact fit (+inf dB) counts as the top of the scale, a diverged run (NaN) the bottom.
        e.0 += if r.value.is_nan() {
            lo
        } else {
            r.value.clamp(lo, hi)
        };
        e.1 += 1;
    }
    acc.into_iter()
        .map(|(k, (s, c))| (k, s / c as f64))
        .collect()
}

fn draw_heatmaps(p: &Plan, rows: &[Row], out: &Path) -> Result<Vec<PathBuf>> {
    let mean = means(rows, p.task, p.limits);
    let methods: BTreeSet<Method> = mean.keys().map(|k| k.0).collect();
    let mut written = Vec::new();
    for &layers in &p.layers {
        let mut maps = Vec::new();
        for &method in &methods {
            let values: Vec<Option<f64>> =
                p.ms.iter()
                    .flat_map(|&m| p.ss.iter().map(move |&s| (m, s)))
                    .map(|(m, s)| mean.get(&(method, layers, m, s)).copied())
                    .collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            let name = match method {
                Method::Iht => "IHT",
                Method::Imp => "IMP",
            };
            maps.push(Heatmap {
                title: format!("{name}, L = {layers}: {}", p.title),
                row_label: "m (hidden neurons)".into(),
                col_label: "s (nonzero weights)".into(),
                rows: p.ms.iter().map(|&m| m as f64).collect(),
                cols: p.ss.iter().map(|&s| s as f64).collect(),
                values,
                vmin: p.limits.0,
                vmax: p.limits.1,
                colorbar_label: metric_of(p.task).into(),
                annotate: true,
            });
        }
        for map in &maps {
            let tag = if map.title.starts_with("IHT") {
                "iht"
            } else {
                "imp"
            };
            let path = out.join(format!("{}-{tag}-L{layers}.png", p.name));
            heatmap_png(&path, std::slice::from_ref(map))?;
            written.push(path);
        }
        if maps.len() == 2 {
            let path = out.join(format!("{}-iht-vs-imp-L{layers}.png", p.name));
            heatmap_png(&path, &maps)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The phase transition: fraction of seeds with weight error < 1e-4 against n, per teacher.
fn draw_phase(p: &Plan, rows: &[Row], out: &Path) -> Result<Vec<PathBuf>> {
    let mut series = Vec::new();
    for &t in &p.teachers {
        let tn = teacher_name(t);
        let ys =
            p.ns.iter()
                .map(|&n| {
                    let runs: Vec<&Row> = rows
                        .iter()
                        .filter(|r| r.teacher == tn && r.n == n && r.method == Method::Iht)
                        .collect();
                    (!runs.is_empty()).then(|| {
                        runs.iter()
                            .filter(|r| r.weight_error.is_some_and(|e| e < 1e-4))
                            .count() as f64
                            / runs.len() as f64
                    })
                })
                .collect();
        series.push((format!("{tn} teacher"), ys));
    }
    let (m, s) = (p.ms[0], p.ss[0]);
    let path = out.join(format!("{}.png", p.name));
    curves_png(
        &path,
        &Curves {
            title: format!(
                "Exact recovery (weight error < 1e-4), m = {m}, s = {s}, {} seeds",
                p.seeds.len()
            ),
            x_label: "n (training points)".into(),
            y_label: "fraction of seeds recovered".into(),
            x: p.ns.iter().map(|&n| n as f64).collect(),
            series,
            log_x: true,
            y_range: (0.0, 1.0),
        },
    )?;
    Ok(vec![path])
}

/// The memory comparison as a Markdown table: peak host bytes and accuracy of IHT and IMP per m.
fn memory_table(rows: &[Row], path: &Path) -> Result<Vec<PathBuf>> {
    let mut by_m: BTreeMap<usize, BTreeMap<Method, &Row>> = BTreeMap::new();
    for r in rows {
        by_m.entry(r.m).or_default().insert(r.method, r);
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut text = String::from(
        "| m | IHT peak host | IHT accuracy | IMP peak host | IMP accuracy | IMP / IHT |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (m, r) in &by_m {
        let cell = |meth: Method| {
            r.get(&meth)
                .map_or(("–".to_string(), "–".to_string()), |row| {
                    (
                        format!("{:.1} MiB", mib(row.peak_host_bytes)),
                        format!("{:.2}%", 100.0 * row.value),
                    )
                })
        };
        let (ih, ia) = cell(Method::Iht);
        let (ph, pa) = cell(Method::Imp);
        let ratio = match (r.get(&Method::Iht), r.get(&Method::Imp)) {
            (Some(i), Some(p)) => format!(
                "{:.1}×",
                p.peak_host_bytes as f64 / i.peak_host_bytes as f64
            ),
            _ => "–".into(),
        };
        text.push_str(&format!("| {m} | {ih} | {ia} | {ph} | {pa} | {ratio} |\n"));
    }
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(vec![path.to_path_buf()])
}

/// The preset's arguments minus every flag (and its value) that `extra` gives again: the user's
/// arguments after `--` win.
fn without_overridden(preset: &[String], extra: &[String]) -> Vec<String> {
    let given: BTreeSet<&str> = extra
        .iter()
        .filter(|x| x.starts_with("--"))
        .map(|x| x.split('=').next().unwrap_or(x))
        .collect();
    let mut out = Vec::with_capacity(preset.len());
    let mut it = preset.iter().peekable();
    while let Some(x) = it.next() {
        if x.starts_with("--") && given.contains(x.as_str()) {
            if it.peek().is_some_and(|v| !v.starts_with("--")) {
                it.next();
            }
            continue;
        }
        out.push(x.clone());
    }
    out
}
