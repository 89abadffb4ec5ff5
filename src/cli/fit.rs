//! `relu-iht fit`: the user's own data. X and y from `.npy` arrays or a CSV table, the scalar
//! model for one target column, the vector-output model (MSE) for several, and with `--classes`
//! a classifier (one output per distinct integer label, cross-entropy, argmax). Reports the
//! training metrics (and the test metrics with `--x-test`) and saves the network with `--save`.
//!
//! Every input is read and checked (shapes, rows, finiteness, labels, sizes) before the engine
//! opens; the model file is written last, atomically, so a failed run leaves none behind.

use super::args::{FitArgs, MethodChoice};
use super::engine;
use super::report::{self, RunRecord};
use super::save;
use anyhow::{bail, Result};
use relu_iht::io::model_file::Kind;
use relu_iht::io::{self, Inputs, Targets};
use relu_iht::problem::data::{Data, InMemory, RowSource};
use relu_iht::problem::model::argmax_rows;
use relu_iht::solver::vector::VectorConfig;
use relu_iht::{Backend, IhtConfig};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// A data set with its targets in the form the chosen model needs.
struct Set {
    data: Arc<Data>,
    /// Targets row-major, `k` per row (one-hot for a classifier).
    targets: Vec<f32>,
    /// Class labels of each row (classifier), else empty.
    labels: Vec<i64>,
}

/// What is fitted.
enum Problem {
    Scalar,
    Vector { k: usize },
    Classes { classes: Vec<i64> },
}

impl Problem {
    fn k(&self) -> usize {
        match self {
            Problem::Scalar => 1,
            Problem::Vector { k } => *k,
            Problem::Classes { classes } => classes.len(),
        }
    }
}

pub fn run(a: &FitArgs) -> Result<()> {
    let config = a.solver.to_config(15, 200)?;
    a.solver.refuse_checkpoint("fit")?;
    if a.solver.method == MethodChoice::Imp {
        bail!("invalid --method imp for fit: fit runs IHT (the IMP baseline covers the built-in tasks)");
    }
    super::args::check_step_size(a.step_size)?;
    a.solver.check_save()?;
    let (inputs, targets) = read_set(&a.x, a.y.as_deref(), a.target.as_deref(), None, "--y")?;
    let columns = inputs.columns.clone();
    let problem = if a.classes {
        let mut classes = integer_labels(&a.x, a.y.as_deref(), &targets)?;
        classes.sort_unstable();
        classes.dedup();
        if classes.len() < 2 {
            bail!(
                "invalid targets for --classes: every row has the label {}; a classifier needs at least two classes",
                classes.first().copied().unwrap_or(0)
            );
        }
        if classes.len() > 65_536 {
            bail!(
                "invalid targets for --classes: {} distinct labels (at most 65536); are these class labels?",
                classes.len()
            );
        }
        Problem::Classes { classes }
    } else if targets.k > 1 {
        Problem::Vector { k: targets.k }
    } else {
        Problem::Scalar
    };
    let train = to_set(inputs, &targets, &problem, &a.x)?;
    let test = match &a.x_test {
        None => None,
        Some(x) => {
            let (inputs, targets) = read_set(
                x,
                a.y_test.as_deref(),
                a.target.as_deref(),
                columns.as_deref(),
                "--y-test",
            )?;
            if inputs.d != train.data.d() {
                bail!(
                    "{}: {} features where the training inputs ({}) have {}",
                    x.display(),
                    inputs.d,
                    a.x.display(),
                    train.data.d()
                );
            }
            if !matches!(problem, Problem::Classes { .. }) && targets.k != problem.k() {
                bail!(
                    "{}: test targets have {} columns where the training targets have {}",
                    a.y_test.as_deref().unwrap_or(x).display(),
                    targets.k,
                    problem.k()
                );
            }
            if a.classes {
                integer_labels(x, a.y_test.as_deref(), &targets)?;
            }
            Some(to_set(inputs, &targets, &problem, x)?)
        }
    };
    let m = a.solver.m_or(100);
    let (n, d) = (train.data.n(), train.data.d());
    let weights = m as u128
        * (d + if matches!(problem, Problem::Scalar) {
            0
        } else {
            problem.k()
        }) as u128;
    if weights >= u32::MAX as u128 {
        return Err(relu_iht::Error::TooLarge(weights).into());
    }
    config.validate(n, weights as u64)?;
    let engine = engine::for_run(&a.solver)?;
    crate::with_engine!(engine, b => fit(a, &config, &problem, (train, test), columns, b))
}

/// Inputs and targets from `x` and either `y` (its own file) or the CSV column `target`.
fn read_set(
    x: &Path,
    y: Option<&Path>,
    target: Option<&str>,
    select: Option<&[String]>,
    flag: &str,
) -> Result<(Inputs, Targets)> {
    // A CSV X with its own y file has no target column to split off.
    let split = if y.is_some() { None } else { target };
    let (inputs, from_csv) = io::read_inputs(x, split, select)?;
    let targets = match (y, from_csv) {
        (Some(path), _) => io::read_targets(path)?,
        (None, Some(t)) => t,
        (None, None) => bail!(
            "missing targets for {}: pass {flag} FILE (or --target COLUMN for a CSV)",
            x.display()
        ),
    };
    if targets.n != inputs.n {
        bail!(
            "{}: {} rows of targets where X ({}) has {} rows",
            y.unwrap_or(x).display(),
            targets.n,
            x.display(),
            inputs.n
        );
    }
    Ok((inputs, targets))
}

/// The targets as integer labels (one column), naming the first value that is not one.
fn integer_labels(x: &Path, y: Option<&Path>, t: &Targets) -> Result<Vec<i64>> {
    let file = y.unwrap_or(x).display();
    if t.k != 1 {
        bail!(
            "{file}: --classes needs one column of labels, got {} columns",
            t.k
        );
    }
    t.values
        .iter()
        .enumerate()
        .map(|(r, &v)| {
            if v.fract() == 0.0 && v.abs() <= (1u64 << 53) as f64 {
                Ok(v as i64)
            } else {
                bail!("{file}: row {r} holds {v}; --classes needs integer labels")
            }
        })
        .collect()
}

fn to_set(inputs: Inputs, t: &Targets, problem: &Problem, x: &Path) -> Result<Set> {
    let n = inputs.n;
    let (y, targets, labels) = match problem {
        Problem::Scalar => {
            let y: Vec<f32> = t.values.iter().map(|&v| v as f32).collect();
            (y.clone(), y, Vec::new())
        }
        Problem::Vector { .. } => (
            vec![0.0; n],
            t.values.iter().map(|&v| v as f32).collect(),
            Vec::new(),
        ),
        Problem::Classes { classes } => {
            let labels: Vec<i64> = t.values.iter().map(|&v| v as i64).collect();
            let k = classes.len();
            let mut onehot = vec![0.0f32; n * k];
            for (r, l) in labels.iter().enumerate() {
                // Test labels unseen in training get no target row (scored as wrong).
                if let Ok(c) = classes.binary_search(l) {
                    onehot[r * k + c] = 1.0;
                }
            }
            (vec![0.0; n], onehot, labels)
        }
    };
    let data = io::to_data(inputs, y).map_err(|e| anyhow::anyhow!("{}: {e}", x.display()))?;
    Ok(Set {
        data: Arc::new(data),
        targets,
        labels,
    })
}

/// Regression metrics of predictions against targets (row-major, any k): MSE, relative error
/// and R² (pooled over outputs, against each output's mean).
fn regression(pred: &[f32], y: &[f32], k: usize) -> serde_json::Value {
    let n = (y.len() / k.max(1)).max(1);
    let mut mean = vec![0.0f64; k];
    for (e, &v) in y.iter().enumerate() {
        mean[e % k] += v as f64 / n as f64;
    }
    let (mut sse, mut sst, mut yy) = (0.0f64, 0.0f64, 0.0f64);
    for (e, (&p, &v)) in pred.iter().zip(y).enumerate() {
        sse += (p as f64 - v as f64).powi(2);
        sst += (v as f64 - mean[e % k]).powi(2);
        yy += (v as f64).powi(2);
    }
    let r2 = if sst > 0.0 { 1.0 - sse / sst } else { f64::NAN };
    json!({
        "mse": sse / y.len().max(1) as f64,
        "rel_error": if yy > 0.0 { (sse / yy).sqrt() } else { f64::NAN },
        "r2": if r2.is_finite() { Some(r2) } else { None },
    })
}

/// Accuracy of argmax predictions against labels.
fn accuracy(scores: &[f32], labels: &[i64], classes: &[i64]) -> serde_json::Value {
    let k = classes.len();
    let hits = argmax_rows(scores, k)
        .iter()
        .zip(labels)
        .filter(|(&c, &l)| classes[c] == l)
        .count();
    json!({"accuracy": hits as f64 / labels.len().max(1) as f64})
}

/// One line of a set's metrics.
fn describe(v: &serde_json::Value) -> String {
    if let Some(acc) = v.get("accuracy").and_then(|a| a.as_f64()) {
        return format!("accuracy {:.2}%", 100.0 * acc);
    }
    let num = |k: &str| v.get(k).and_then(|a| a.as_f64()).unwrap_or(f64::NAN);
    format!(
        "MSE {:.4e}, relative error {:.3e}, R² {:.4}",
        num("mse"),
        num("rel_error"),
        num("r2")
    )
}

fn fit<B: Backend>(
    a: &FitArgs,
    config: &IhtConfig,
    problem: &Problem,
    (train, test): (Set, Option<Set>),
    columns: Option<Vec<String>>,
    backend: B,
) -> Result<()> {
    let name = backend.name();
    let m = a.solver.m_or(100);
    let (n, d, k) = (train.data.n(), train.data.d(), problem.k());
    let kind = match problem {
        Problem::Classes { .. } => Kind::Classifier,
        _ => Kind::Regressor,
    };
    let mut meta = save::meta("fit", kind, &a.solver, config, m);
    meta.columns = columns;
    let score = |pred: &[f32], set: &Set| match problem {
        Problem::Classes { classes } => accuracy(pred, &set.labels, classes),
        _ => regression(pred, &set.targets, k),
    };
    let (record, network, summary) = match problem {
        Problem::Scalar => {
            let rows: Arc<dyn RowSource> = Arc::new(InMemory(train.data.clone()));
            let (deep, mut be) = report::fit_layers(
                backend,
                rows.clone(),
                m,
                config,
                a.solver.layers,
                a.solver.quiet,
            )?;
            let train_pred = deep.predict(&mut be, rows, m, n)?;
            let train_score = score(&train_pred, &train);
            let test_score = match &test {
                Some(set) => {
                    let rows: Arc<dyn RowSource> = Arc::new(InMemory(set.data.clone()));
                    Some(score(&deep.predict(&mut be, rows, m, set.data.n())?, set))
                }
                None => None,
            };
            let network = deep.network(d)?;
            let summary = format!(
                "{} nonzeros in {} neurons after {} steps in {:.2} s",
                deep.nnz(),
                deep.neurons(),
                deep.steps(),
                deep.seconds()
            );
            let record = RunRecord::scalar_iht(
                "fit",
                name,
                (n, d, m, config.s),
                config.seed,
                &deep,
                json!({"mode": config.mode, "batch_size": config.batch_size, "neurons": deep.neurons(), "train": train_score, "test": test_score}),
            );
            (record, network, summary)
        }
        Problem::Vector { .. } | Problem::Classes { .. } => {
            let loss = if a.classes {
                a.loss.into()
            } else {
                relu_iht::problem::model::Loss::Mse
            };
            let mut vc = VectorConfig::from_iht(config, loss, a.select.into(), a.step_size);
            // Without --step-size the step is probed: SPEC §3's fixed steps suit MNIST's raw
            // pixels, not data of any scale.
            let mut backend = backend;
            let mut probed = None;
            if a.step_size.is_none() {
                let (be, alpha, tried) = relu_iht::solver::vector::choose_step(
                    backend,
                    train.data.clone(),
                    &train.targets,
                    k,
                    m,
                    &vc,
                )?;
                (backend, vc.step) = (be, Some(alpha));
                probed = Some(tried);
            }
            let (mut model, seconds, last_loss) = report::fit_vector(
                backend,
                train.data.clone(),
                train.targets.clone(),
                k,
                m,
                &vc,
                a.solver.layers,
                a.solver.quiet,
            )?;
            let train_score = score(&model.predict(train.data.clone())?, &train);
            let test_score = match &test {
                Some(set) => Some(score(&model.predict(set.data.clone())?, set)),
                None => None,
            };
            let network = model.network()?;
            let summary = format!(
                "{} nonzeros in {} neurons after {} steps in {seconds:.2} s (step size {}{})",
                model.nnz(),
                network.output.inp,
                model.steps(),
                vc.step_size(m),
                if probed.is_some() { ", probed" } else { "" }
            );
            let record = RunRecord {
                task: "fit",
                method: "iht",
                backend: model.last.backend().name(),
                n,
                d,
                m,
                s: vc.s,
                k,
                layers: a.solver.layers,
                steps: model.steps(),
                seed: vc.seed,
                nnz: model.nnz(),
                seconds,
                peak_host_bytes: relu_iht::mem::peak_host_bytes(),
                peak_device_bytes: model.last.backend().peak_device_bytes(),
                extra: json!({"mode": config.mode, "loss": vc.loss, "select": vc.select, "step_size": vc.step_size(m), "batch_size": vc.batch_size, "epochs": vc.epochs, "step_probe": probed.as_ref().map(|t| t.iter().map(|&(a, l)| json!({"step_size": a, "loss": if l.is_finite() { Some(l) } else { None }})).collect::<Vec<_>>()), "final_batch_loss": last_loss, "train": train_score, "test": test_score}),
            };
            if let Problem::Classes { classes } = problem {
                meta.classes = Some(classes.clone());
            }
            (record, network, summary)
        }
    };
    let mut record = record;
    if let Some(obj) = record.extra.as_object_mut() {
        obj.insert("x".into(), a.x.display().to_string().into());
        obj.insert("kind".into(), kind_name(problem).into());
    }
    save::save(&a.solver, network, meta, &mut record)?;
    if a.solver.json {
        return record.print();
    }
    println!(
        "fit {}: n = {n}, d = {d}, {}, m = {m}, s = {}: {summary}",
        a.x.display(),
        match problem {
            Problem::Scalar => "one target (scalar model)".to_string(),
            Problem::Vector { k } => format!("{k} targets (vector-output model)"),
            Problem::Classes { classes } => format!("{} classes", classes.len()),
        },
        config.s
    );
    let train_score = &record.extra["train"];
    print!("train: {}", describe(train_score));
    if let Some(t) = record.extra.get("test").filter(|t| !t.is_null()) {
        print!("; test: {}", describe(t));
    }
    println!();
    Ok(())
}

fn kind_name(p: &Problem) -> &'static str {
    match p {
        Problem::Scalar => "regressor",
        Problem::Vector { .. } => "vector regressor",
        Problem::Classes { .. } => "classifier",
    }
}
