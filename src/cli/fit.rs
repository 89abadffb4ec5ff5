//! `relu-iht fit`: the user's own data. X and y from `.npy` arrays or a CSV table, the model the
//! targets call for ([`relu_iht::tasks::fit`]: scalar for one column, vector-output for several,
//! a classifier with `--classes`), the training metrics (and the test metrics with `--x-test`),
//! and the network saved with `--save`.
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
use relu_iht::solver::scalar::Safeguards;
use relu_iht::tasks::fit::{self, FitOptions, Score, Set, Target};
use relu_iht::Backend;
use serde_json::json;
use std::path::Path;

pub fn run(a: &FitArgs) -> Result<()> {
    let mut config = a.solver.to_config(15, 200)?;
    a.solver.refuse_checkpoint("fit")?;
    if a.solver.method == MethodChoice::Imp {
        bail!("invalid --method imp for fit: fit runs IHT (the IMP baseline covers the built-in tasks)");
    }
    super::args::check_step_size(a.vector.step_size)?;
    a.solver.check_save()?;
    a.solver.check_trace()?;
    let (inputs, targets) = read_set(&a.x, a.y.as_deref(), a.target.as_deref(), None, "--y")?;
    let columns = inputs.columns.clone();
    let named = |file: &Path, e: relu_iht::Error| anyhow::anyhow!("{}: {e}", file.display());
    let y_file = a.y.as_deref().unwrap_or(&a.x);
    let target = if a.classes {
        if targets.k != 1 {
            bail!(
                "{}: --classes needs one column of labels, got {} columns",
                y_file.display(),
                targets.k
            );
        }
        Target::classes_of(&targets.values).map_err(|e| named(y_file, e))?
    } else {
        Target::regression(targets.k)
    };
    let negative = targets.values.iter().filter(|&&v| v < 0.0).count();
    // The default solver's safeguards (the INR's); signed neurons in the plain run too where
    // some target is negative, which the paper's model Σ_j relu(x·w_j) cannot output.
    if !a.paper && a.solver.average.is_none() {
        config.average = Some(relu_iht::solver::scalar::DEFAULT_AVERAGE);
    }
    config.safeguards = if a.paper {
        Safeguards::PAPER
    } else {
        Safeguards {
            signed: negative > 0,
            ..Safeguards::DEFAULT
        }
    };
    if target == Target::Scalar
        && config.mode == relu_iht::Mode::SequentialConvex
        && a.paper
        && negative > 0
        && !a.solver.quiet
        && !a.solver.json
    {
        eprintln!(
            "note: {:.0}% of the targets are negative, and the paper's model Σ_j relu(x·w_j) is non-negative: it fits their positive part only (without --paper, signed neurons fit them)",
            100.0 * negative as f64 / targets.values.len() as f64
        );
    }
    if target != Target::Scalar {
        a.solver.refuse_trace()?;
    }
    let train = to_set(inputs, &targets, &target, y_file)?;
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
            let cols = if a.classes { 1 } else { target.k() };
            let file = a.y_test.as_deref().unwrap_or(x);
            if targets.k != cols {
                bail!(
                    "{}: test targets have {} columns where the training targets have {cols}",
                    file.display(),
                    targets.k
                );
            }
            Some(to_set(inputs, &targets, &target, file)?)
        }
    };
    let m = a.solver.m_or(100);
    let (n, d) = (train.data.n(), train.data.d());
    let extra = if target == Target::Scalar {
        0
    } else {
        a.solver
            .refuse_f64("several target columns (the vector-output model)")?;
        target.k()
    };
    let weights = m as u128 * (d + extra) as u128;
    if weights >= u32::MAX as u128 {
        return Err(relu_iht::Error::TooLarge(weights).into());
    }
    config.validate(n, weights as u64)?;
    let opts = FitOptions {
        m,
        config,
        layers: a.solver.layers,
        loss: a.vector.loss.into(),
        select: a.vector.select.into(),
        step: a.vector.step_size,
    };
    let engine = engine::for_run(&a.solver)?;
    crate::with_engine!(engine, b => run_fit(a, &opts, &target, (train, test), columns, b))
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

fn to_set(inputs: Inputs, t: &Targets, target: &Target, file: &Path) -> Result<Set> {
    Set::new(inputs.n, inputs.d, inputs.xt, &t.values, target)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// One line of a set's scores.
fn describe(s: &Score) -> String {
    if let Some(acc) = s.accuracy {
        return format!("accuracy {:.2}%", 100.0 * acc);
    }
    let num = |v: Option<f64>| v.unwrap_or(f64::NAN);
    format!(
        "MSE {:.4e}, relative error {:.3e}, R² {:.4}",
        num(s.mse),
        num(s.rel_error),
        num(s.r2)
    )
}

fn run_fit<B: Backend>(
    a: &FitArgs,
    opts: &FitOptions,
    target: &Target,
    (train, test): (Set, Option<Set>),
    columns: Option<Vec<String>>,
    backend: B,
) -> Result<()> {
    let (m, config) = (opts.m, &opts.config);
    let (n, d, k) = (train.data.n(), train.data.d(), target.k());
    let bar = report::progress(
        opts.layers * config.total_steps(n),
        a.solver.quiet || a.solver.json,
    );
    let mut fitted = fit::fit(backend, &train, target, opts, |_| bar.inc(1))?;
    bar.finish_and_clear();
    let train_score = fitted.score(&train)?;
    let test_score = match &test {
        Some(set) => Some(fitted.score(set)?),
        None => None,
    };
    let network = fitted.network()?;
    let neurons = network.output.inp;
    let extra = json!({
        "x": a.x.display().to_string(),
        "kind": match target {
            Target::Scalar => "regressor",
            Target::Vector { .. } => "vector regressor",
            Target::Classes { .. } => "classifier",
        },
        "mode": config.mode,
        "batch_size": config.batch_size,
        "neurons": neurons,
        "step_size": fitted.step,
        "step_probe": fitted.probes.as_ref().map(|t| t.iter().map(|&(a, l)| json!({"step_size": a, "loss": l.is_finite().then_some(l)})).collect::<Vec<_>>()),
        "final_batch_loss": fitted.final_loss,
        "train": train_score,
        "test": test_score,
    });
    let mut record = match &fitted.model {
        fit::Model::Scalar { deep, .. } => RunRecord::scalar_iht(
            "fit",
            fitted.backend().name(),
            (n, d, m, config.s),
            config.seed,
            deep,
            extra,
        ),
        fit::Model::Vector(_) => RunRecord {
            task: "fit",
            method: "iht",
            backend: fitted.backend().name(),
            n,
            d,
            m,
            s: config.s,
            k,
            layers: opts.layers,
            steps: fitted.steps(),
            seed: config.seed,
            nnz: fitted.nnz(),
            seconds: fitted.seconds,
            peak_host_bytes: relu_iht::mem::peak_host_bytes(),
            peak_device_bytes: fitted.peak_device_bytes(),
            extra,
        },
    };
    let kind = match target {
        Target::Classes { .. } => Kind::Classifier,
        _ => Kind::Regressor,
    };
    let mut meta = save::meta("fit", kind, &a.solver, config, m);
    meta.columns = columns;
    if let Target::Classes { classes } = target {
        meta.classes = Some(classes.clone());
    }
    save::save(&a.solver, network, meta, &mut record)?;
    if let fit::Model::Scalar { deep, .. } = &fitted.model {
        report::write_trace(&a.solver, deep)?;
    }
    if a.solver.json {
        return record.print();
    }
    println!(
        "fit {}: n = {n}, d = {d}, {}, m = {m}, s = {}: {} nonzeros in {neurons} neurons after {} steps in {:.2} s{}",
        a.x.display(),
        match target {
            Target::Scalar => "one target (scalar model)".to_string(),
            Target::Vector { k } => format!("{k} targets (vector-output model)"),
            Target::Classes { classes } => format!("{} classes", classes.len()),
        },
        config.s,
        fitted.nnz(),
        fitted.steps(),
        fitted.seconds,
        match (fitted.step, &fitted.probes) {
            (Some(s), Some(_)) => format!(" (step size {s}, probed)"),
            (Some(s), None) => format!(" (step size {s})"),
            _ => String::new(),
        }
    );
    print!("train: {}", describe(&train_score));
    if let Some(t) = &test_score {
        print!("; test: {}", describe(t));
    }
    println!();
    Ok(())
}
