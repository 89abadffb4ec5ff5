//! `relu-iht mnist`: binary MNIST (digits 0 and 1) with the scalar model, least squares on 0/1
//! labels, and test accuracy of `1{ŷ ≥ 0.5}`.

use super::args::{ClassesChoice, MethodChoice, MnistArgs};
use super::engine;
use super::imp::{self, ImpRun};
use super::report::{self, RunRecord};
use super::save;
use anyhow::{bail, Result};
use relu_iht::io::model_file::Kind;
use relu_iht::mem::peak_host_bytes;
use relu_iht::problem::data::{Data, InMemory, RowSource};
use relu_iht::problem::model::Loss;
use relu_iht::solver::scalar::IhtConfig;
use relu_iht::tasks::mnist::{self, Labeled};
use relu_iht::Backend;
use serde_json::json;
use std::sync::Arc;

pub fn run(a: &MnistArgs) -> Result<()> {
    for (name, v) in [
        ("--train-per-class", a.train_per_class),
        ("--test-per-class", a.test_per_class),
    ] {
        if v == 0 {
            bail!("invalid {name} = 0: must be at least 1");
        }
    }
    let config = a.solver.to_config(15, 200)?;
    a.solver.refuse_checkpoint("mnist")?;
    super::args::check_step_size(a.vector.step_size)?;
    a.solver.check_save()?;
    a.solver.check_trace()?;
    if a.classes == ClassesChoice::All {
        a.solver.refuse_trace()?;
        a.solver
            .refuse_f64("the vector-output model (--classes all)")?;
        return all_classes(a, &config);
    }
    let ((train, test), (train_data, test_data)) = load(a, &[0, 1], |set| {
        set.labels.iter().map(|&l| l as f32).collect()
    })?;
    let imp = a.solver.method == MethodChoice::Imp;
    config.validate(train_data.n(), (a.solver.m_or(100) * train.d) as u64)?;
    if imp {
        let run = ImpRun {
            task: "mnist",
            solver: &a.solver,
            config: &config,
            m: a.solver.m_or(100),
            k: 1,
            loss: Loss::Mse,
            data: &train_data,
            targets: train_data.y(),
            extra: json!({"classes": "binary", "test_n": test_data.n(), "input_scale": IMP_SCALE}),
        };
        return imp::run(run, |model, _| {
            let pred = model.predict(&test_data)?;
            Ok(accuracy_score(mnist::binary_accuracy(
                &pred,
                &test.labels,
                1,
            )))
        });
    }
    let engine = engine::for_run(&a.solver)?;
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
    let layers = a.solver.layers;
    let train_rows: Arc<dyn RowSource> = Arc::new(InMemory(train_data.clone()));
    let (deep, mut be) = report::fit_layers(
        backend,
        train_rows.clone(),
        m,
        config,
        layers,
        a.solver.quiet,
    )?;
    let mut accuracy = |rows: Arc<dyn RowSource>, set: &Labeled| -> Result<f64> {
        let n = rows.n();
        let pred = deep.predict(&mut be, rows, m, n)?;
        Ok(mnist::binary_accuracy(&pred, &set.labels, 1))
    };
    let test_acc = accuracy(Arc::new(InMemory(test_data.clone())), sets.1)?;
    let train_acc = accuracy(train_rows, sets.0)?;
    let mut record = RunRecord::scalar_iht(
        "mnist",
        name,
        (train_data.n(), train_data.d(), m, config.s),
        config.seed,
        &deep,
        json!({
            "classes": "binary",
            "batch_size": config.batch_size,
            "epochs": config.batch_size.map(|_| config.steps),
            "mode": config.mode,
            "accuracy": test_acc,
            "train_accuracy": train_acc,
            "test_n": test_data.n(),
            "neurons": deep.neurons(),
        }),
    );
    let meta = save::meta("mnist", Kind::Regressor, &a.solver, config, m);
    save::save(&a.solver, deep.network(train_data.d())?, meta, &mut record)?;
    report::write_trace(&a.solver, &deep)?;
    if a.solver.json {
        return record.print();
    }
    println!(
        "binary MNIST (0 vs 1): {} train / {} test images, m = {m}, s = {}: {} nonzeros in {} neurons after {} steps in {:.2} s",
        train_data.n(),
        test_data.n(),
        config.s,
        deep.nnz(),
        deep.neurons(),
        deep.steps(),
        deep.seconds()
    );
    println!(
        "test accuracy {:.2}%, train accuracy {:.2}%",
        100.0 * test_acc,
        100.0 * train_acc
    );
    Ok(())
}

/// 10-class MNIST with the vector-output model.
fn all_classes(a: &MnistArgs, config: &IhtConfig) -> Result<()> {
    let classes: Vec<u8> = (0..10).collect();
    let ((train, test), (train_data, test_data)) = load(a, &classes, |set| vec![0.0; set.len()])?;
    if a.solver.method == MethodChoice::Imp {
        let m = a.solver.m_or(100);
        let targets = train.one_hot(10);
        let run = ImpRun {
            task: "mnist",
            solver: &a.solver,
            config,
            m,
            k: 10,
            loss: a.vector.loss.into(),
            data: &train_data,
            targets: &targets,
            extra: json!({"classes": "all", "loss": relu_iht::problem::model::Loss::from(a.vector.loss), "test_n": test_data.n(), "input_scale": IMP_SCALE}),
        };
        return imp::run(run, |model, _| {
            Ok(accuracy_score(mnist::class_accuracy(
                &model.predict(&test_data)?,
                &test.labels,
                10,
            )))
        });
    }
    let engine = engine::for_run(&a.solver)?;
    crate::with_engine!(engine, b => all_classes_fit(a, config, (&train, &test), (train_data, test_data), b))
}

fn all_classes_fit<B: Backend>(
    a: &MnistArgs,
    config: &IhtConfig,
    (train, test): (&Labeled, &Labeled),
    (train_data, test_data): (Arc<Data>, Arc<Data>),
    backend: B,
) -> Result<()> {
    use relu_iht::solver::vector::VectorConfig;
    let k = 10;
    let m = a.solver.m_or(100);
    let layers = a.solver.layers;
    let vc = VectorConfig::from_iht(
        config,
        a.vector.loss.into(),
        a.vector.select.into(),
        a.vector.step_size,
    );
    let (mut model, seconds, last_loss) = report::fit_vector(
        backend,
        train_data.clone(),
        train.one_hot(k),
        k,
        m,
        &vc,
        layers,
        a.solver.quiet,
    )?;
    let mut accuracy = |data: &Arc<Data>, set: &Labeled| -> Result<f64> {
        Ok(mnist::class_accuracy(
            &model.predict(data.clone())?,
            &set.labels,
            k,
        ))
    };
    let (test_acc, train_acc) = (accuracy(&test_data, test)?, accuracy(&train_data, train)?);
    let mut record = RunRecord {
        task: "mnist",
        method: "iht",
        backend: model.last.backend().name(),
        n: train_data.n(),
        d: train_data.d(),
        m,
        s: vc.s,
        k,
        layers,
        steps: model.steps(),
        seed: vc.seed,
        nnz: model.nnz(),
        seconds,
        peak_host_bytes: peak_host_bytes(),
        peak_device_bytes: model.last.backend().peak_device_bytes(),
        extra: json!({
            "classes": "all",
            "loss": vc.loss,
            "select": vc.select,
            "step_size": vc.step_size(m),
            "batch_size": vc.batch_size,
            "epochs": vc.epochs,
            "final_batch_loss": last_loss,
            "accuracy": test_acc,
            "train_accuracy": train_acc,
            "test_n": test_data.n(),
        }),
    };
    let mut meta = save::meta("mnist", Kind::Classifier, &a.solver, config, m);
    meta.classes = Some((0..k as i64).collect());
    save::save(&a.solver, model.network()?, meta, &mut record)?;
    if a.solver.json {
        return record.print();
    }
    println!(
        "MNIST, 10 classes: {} train / {} test images, m = {m}, s = {}, {layers} layer(s), {:?} loss, {:?} selection: {} nonzeros after {} steps in {seconds:.2} s",
        train_data.n(), test_data.n(), vc.s, vc.loss, vc.select, model.nnz(), model.steps()
    );
    println!(
        "test accuracy {:.2}%, train accuracy {:.2}% (final batch loss {last_loss:.4})",
        100.0 * test_acc,
        100.0 * train_acc
    );
    Ok(())
}

/// The train and test sets of `classes`, each also converted to the column-major layout (pixels
/// scaled for IMP) with targets `targets(set)`. The raw pixels are dropped once converted: only
/// the labels are used later.
#[allow(
    clippy::type_complexity,
    reason = "two pairs, unpacked at once by both callers"
)]
fn load(
    a: &MnistArgs,
    classes: &[u8],
    targets: impl Fn(&Labeled) -> Vec<f32>,
) -> Result<((Labeled, Labeled), (Arc<Data>, Arc<Data>))> {
    let (mut train, mut test) = mnist::load_split(
        &a.data_dir.join("mnist"),
        classes,
        a.train_per_class,
        a.test_per_class,
    )?;
    let scale = if a.solver.method == MethodChoice::Imp {
        IMP_SCALE
    } else {
        1.0
    };
    let convert = |set: &mut Labeled| -> Result<Arc<Data>> {
        let data = set.to_data(scale, targets(set))?;
        set.x = Vec::new();
        Ok(Arc::new(data))
    };
    let (train_data, test_data) = (convert(&mut train)?, convert(&mut test)?);
    Ok(((train, test), (train_data, test_data)))
}

/// IMP's input scale: pixels in [0, 1], as PyTorch's `ToTensor` gives the dense baseline (Adam at
/// lr 1e-3 from the default init trains poorly on raw 0–255 inputs). IHT keeps the paper's raw
/// pixels: its masks do not depend on the scale and its weights absorb it.
const IMP_SCALE: f32 = 1.0 / 255.0;

/// IMP's score of a model: the JSON field and the summary line.
fn accuracy_score(acc: f64) -> (serde_json::Value, String) {
    (
        json!({"accuracy": acc}),
        format!("test accuracy {:.2}%", 100.0 * acc),
    )
}
