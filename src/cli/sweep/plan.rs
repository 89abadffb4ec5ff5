//! The sweep's plan: the paper's grids, schedules and colour limits per figure (SPEC §4), the quick
//! ones, and the arguments of each run.

use super::args::{Figure, SweepArgs, Task, TeacherChoice, Vary};
use anyhow::{bail, Result};
use std::collections::BTreeSet;

/// The plan of a sweep: task, grid, per-run arguments, colour limits.
pub(super) struct Plan {
    pub(super) name: String,
    pub(super) title: String,
    pub(super) task: Task,
    pub(super) ms: Vec<usize>,
    pub(super) ss: Vec<usize>,
    pub(super) seeds: Vec<u64>,
    pub(super) layers: Vec<usize>,
    /// n per run (0: the task's own).
    pub(super) ns: Vec<usize>,
    pub(super) teachers: Vec<TeacherChoice>,
    pub(super) args: Vec<String>,
    pub(super) limits: (f64, f64),
}

/// A run's arguments from one line of whitespace-separated words.
pub(super) fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

pub(super) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(super) const PAPER_M: &[usize] = &[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
pub(super) const PAPER_S: &[usize] = &[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

pub(super) fn plan(a: &SweepArgs) -> Result<Plan> {
    let data = a.data_dir.display().to_string();
    let q = a.quick;
    let (task, name, title) = match (a.figure, a.task, a.vary) {
        (_, _, Some(Vary::N)) => (
            Task::Planted,
            if q { "phase-n-quick" } else { "phase-n" }.to_string(),
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
            words("mnist --classes binary --epochs 1 --batch-size 1000"),
        ),
        (_, Task::Planted) if a.vary.is_some() => (
            vec![if q { 5 } else { 10 }],
            vec![if q { 15 } else { 30 }],
            words(&format!("planted --d {} --steps 20", if q { 10 } else { 20 })),
        ),
        (_, Task::Planted) if q => (
            vec![1, 10, 100],
            vec![1, 10, 100, 1000],
            words("planted --n 10000 --steps 15"),
        ),
        (_, Task::Planted) => (
            PAPER_M.to_vec(),
            PAPER_S.to_vec(),
            words("planted --steps 15"),
        ),
        (_, Task::PlantedK) if q => (
            vec![10, 100],
            vec![10, 100, 1000],
            words("planted --k 10 --n 10000 --epochs 100 --batch-size 5000"),
        ),
        (_, Task::PlantedK) => (
            PAPER_M.to_vec(),
            PAPER_S.to_vec(),
            words("planted --k 10 --epochs 100 --batch-size 5000"),
        ),
        // The paper's schedule and data (IMP needs its 150 Adam steps per round to be the
        // strong baseline it is), a reduced grid.
        (_, Task::MnistBinary) if q => (
            vec![1, 10, 100],
            vec![1, 10, 100, 1000],
            words("mnist --classes binary --epochs 15 --batch-size 1000"),
        ),
        (_, Task::MnistBinary) => (
            PAPER_M.to_vec(),
            vec![1, 2, 5, 10, 20, 50, 100, 200],
            words("mnist --classes binary --epochs 15 --batch-size 1000"),
        ),
        (_, Task::Mnist) if q => (
            vec![10, 100],
            vec![100, 500, 2000],
            words("mnist --classes all --train-per-class 1000 --test-per-class 500 --epochs 50 --batch-size 1000"),
        ),
        (_, Task::Mnist) => (
            vec![10, 20, 50, 100, 200, 500, 1000],
            vec![100, 200, 500, 1000, 2000],
            words("mnist --classes all --epochs 50 --batch-size 5000"),
        ),
        (_, Task::InrDigit) if q => (
            vec![2, 20, 50],
            vec![2, 20, 200, 1000],
            words("inr --paper --mnist-digit 1000 --steps 100"),
        ),
        (_, Task::InrDigit) => (
            vec![2, 5, 10, 20, 50, 100, 200],
            vec![2, 5, 10, 20, 50, 100, 200, 500, 1000],
            words("inr --paper --mnist-digit 1000 --steps 100"),
        ),
        (_, Task::InrCifar) if q => (
            vec![5, 50],
            vec![50, 500, 2000],
            strings(&[
                "inr",
                "--paper",
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
                "--paper",
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
    // A fraction of seeds needs more seeds than a mean does.
    let seeds = a.seeds.clone().unwrap_or(match (a.vary.is_some(), q) {
        (true, true) => (0..10).collect(),
        (true, false) => (0..20).collect(),
        (false, true) => vec![0],
        // Memory does not vary with the seed.
        (false, false) if a.figure == Some(Figure::Memory) => vec![0],
        (false, false) => vec![0, 1, 2],
    });
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

pub(super) fn task_name(t: Task) -> &'static str {
    match t {
        Task::Planted => "planted",
        Task::PlantedK => "planted-k",
        Task::MnistBinary => "mnist-binary",
        Task::Mnist => "mnist",
        Task::InrDigit => "inr-digit",
        Task::InrCifar => "inr-cifar",
    }
}

pub(super) fn title_of(t: Task) -> &'static str {
    match t {
        Task::Planted => "planted, PSNR (dB)",
        Task::PlantedK => "planted k = 10, PSNR (dB)",
        Task::MnistBinary => "binary MNIST, test accuracy",
        Task::Mnist => "MNIST, test accuracy",
        Task::InrDigit => "INR of MNIST digit 1000, PSNR (dB)",
        Task::InrCifar => "INR of a CIFAR-10 image, PSNR (dB)",
    }
}

pub(super) fn metric_of(t: Task) -> &'static str {
    match t {
        Task::MnistBinary | Task::Mnist => "accuracy",
        _ => "psnr",
    }
}

pub(super) fn teacher_name(t: TeacherChoice) -> &'static str {
    match t {
        TeacherChoice::Relu => "relu",
        TeacherChoice::Convex => "convex",
    }
}

/// The preset's arguments minus every flag (and its value) that `extra` gives again: the user's
/// arguments after `--` win.
pub(super) fn without_overridden(preset: &[String], extra: &[String]) -> Vec<String> {
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
