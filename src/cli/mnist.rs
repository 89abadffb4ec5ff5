//! `relu-iht mnist`: binary MNIST (digits 0 and 1) with the scalar model, least squares on 0/1
//! labels, and test accuracy of `1{ŷ ≥ 0.5}`.

use super::args::{ClassesChoice, MnistArgs};
use super::report::{self, RunRecord};
use anyhow::{bail, Result};
use relu_iht::data::Data;
use relu_iht::iht::{self, Iht, IhtConfig};
use relu_iht::mem::peak_host_bytes;
use relu_iht::operator::{Generators, Operator};
use relu_iht::tasks::mnist::{self, Labeled};
use relu_iht::Backend;
use serde_json::json;
use std::sync::Arc;

pub fn run(a: &MnistArgs) -> Result<()> {
    if a.classes == ClassesChoice::All {
        bail!("invalid --classes = all: 10-class MNIST needs the vector-output solver, which this build does not have yet");
    }
    for (name, v) in [
        ("--train-per-class", a.train_per_class),
        ("--test-per-class", a.test_per_class),
    ] {
        if v == 0 {
            bail!("invalid {name} = 0: must be at least 1");
        }
    }
    let config = a.solver.to_config(15, 200)?;
    let (train, test) = mnist::load_split(
        &a.data_dir.join("mnist"),
        &[0, 1],
        a.train_per_class,
        a.test_per_class,
    )?;
    let data = |set: &Labeled| {
        Data::from_rows(
            set.len(),
            set.d,
            &set.x,
            set.labels.iter().map(|&l| l as f32).collect(),
        )
    };
    let (train_data, test_data) = (Arc::new(data(&train)?), Arc::new(data(&test)?));
    config.validate(train_data.n(), (a.solver.m_or(100) * train.d) as u64)?;
    let engine = report::backend(
        a.solver.backend,
        a.solver.quiet || a.solver.json,
        a.solver.device_memory,
    )?;
    crate::with_engine!(engine, b => fit(a, &config, train_data, test_data, (&train, &test), b))
}

fn fit<B: Backend>(
    a: &MnistArgs,
    config: &IhtConfig,
    train_data: Arc<Data>,
    test_data: Arc<Data>,
    sets: (&Labeled, &Labeled),
    backend: B,
) -> Result<()> {
    let name = backend.name();
    let m = a.solver.m_or(100);
    let op = Operator::new(
        train_data.clone(),
        m,
        Generators::Random { seed: config.seed },
    )?;
    let mut solver = Iht::new(backend, op, config.clone())?;
    let bar = report::progress(solver.total_steps(), a.solver.quiet);
    let rec = solver.solve(|st| {
        bar.set_message(format!(
            "rel. residual {:.3e}, nnz {}",
            st.rel_residual, st.nnz
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let mut be = solver.into_backend();
    let accuracy = |data: &Arc<Data>, set: &Labeled, be: &mut B| -> Result<f64> {
        let op = Operator::new(data.clone(), m, rec.generators())?;
        let pred = iht::predict(be, &op, &rec.x)?;
        Ok(mnist::binary_accuracy(&pred, &set.labels, 1))
    };
    let test_acc = accuracy(&test_data, sets.1, &mut be)?;
    let train_acc = accuracy(&train_data, sets.0, &mut be)?;
    let record = RunRecord {
        task: "mnist",
        method: "iht",
        backend: name,
        n: train_data.n(),
        d: train_data.d(),
        m,
        s: config.s,
        k: 1,
        layers: 1,
        steps: rec.steps,
        seed: config.seed,
        nnz: rec.x.nnz(),
        seconds: rec.seconds,
        peak_host_bytes: peak_host_bytes(),
        peak_device_bytes: rec.peak_device_bytes,
        extra: json!({
            "classes": "binary",
            "batch_size": config.batch_size,
            "epochs": config.batch_size.map(|_| config.steps),
            "mode": config.mode,
            "accuracy": test_acc,
            "train_accuracy": train_acc,
            "test_n": test_data.n(),
            "neurons": rec.x.neurons(train_data.d()).len(),
        }),
    };
    if a.solver.json {
        return record.print();
    }
    println!(
        "binary MNIST (0 vs 1): {} train / {} test images, m = {m}, s = {}: {} nonzeros in {} neurons after {} steps in {:.2} s",
        train_data.n(),
        test_data.n(),
        config.s,
        rec.x.nnz(),
        rec.x.neurons(train_data.d()).len(),
        rec.steps,
        rec.seconds
    );
    println!(
        "test accuracy {:.2}%, train accuracy {:.2}%",
        100.0 * test_acc,
        100.0 * train_acc
    );
    Ok(())
}
