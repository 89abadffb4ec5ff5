//! Fitting the user's own data, shared by the `fit` command and the Python package: the targets
//! decide the model (one column: the scalar model; several: the vector-output model with MSE;
//! class labels: the vector-output model with one output per class), [`fit`] runs the greedy
//! layer-wise solve on any engine, and [`Fitted`] predicts, scores, and becomes the dense
//! [`Network`] of the model file.
//!
//! Invariants: every check on the targets (rows, integer labels, at least two classes) happens
//! in [`Set::new`] / [`Target::classes_of`], before any engine work; without a fixed step the
//! vector-output model's step is probed on the data's scale ([`choose_step`]).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::problem::data::{Data, InMemory, RowSource};
use crate::problem::model::{argmax_rows, Loss, Select};
use crate::problem::network::Network;
use crate::solver::depth::{self, Deep, VectorDeep};
use crate::solver::scalar::{IhtConfig, StepRecord};
use crate::solver::vector::{choose_step, Probes, VectorConfig};
use std::sync::Arc;

/// What is fitted.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// One target column: the scalar model `Σ_j relu(x·w_j)`.
    Scalar,
    /// `k` target columns: the vector-output model with MSE.
    Vector { k: usize },
    /// Class labels (sorted): the vector-output model with one output per class, argmax.
    Classes { classes: Vec<i64> },
}

impl Target {
    /// Outputs of the model.
    pub fn k(&self) -> usize {
        match self {
            Target::Scalar => 1,
            Target::Vector { k } => *k,
            Target::Classes { classes } => classes.len(),
        }
    }

    /// The model for `k` target columns (regression).
    pub fn regression(k: usize) -> Self {
        if k > 1 {
            Target::Vector { k }
        } else {
            Target::Scalar
        }
    }

    /// The classes of integer labels `y` (one per row): sorted, at least two.
    pub fn classes_of(y: &[f64]) -> Result<Self> {
        let mut classes = integer_labels(y)?;
        classes.sort_unstable();
        classes.dedup();
        if classes.len() < 2 {
            return Err(Error::invalid(
                "y",
                format!("{} label(s)", classes.len()),
                "a classifier needs at least two classes",
            ));
        }
        if classes.len() > 65_536 {
            return Err(Error::invalid(
                "y",
                format!("{} distinct labels", classes.len()),
                "at most 65536 classes; are these class labels?",
            ));
        }
        Ok(Target::Classes { classes })
    }
}

/// The targets as integer labels, naming the first value that is not one.
pub fn integer_labels(y: &[f64]) -> Result<Vec<i64>> {
    y.iter()
        .enumerate()
        .map(|(r, &v)| {
            if v.fract() == 0.0 && v.abs() <= (1u64 << 53) as f64 {
                Ok(v as i64)
            } else {
                Err(Error::invalid(
                    "y",
                    v,
                    format!("row {r} is not an integer class label"),
                ))
            }
        })
        .collect()
}

/// A data set with its targets in the form the model needs.
#[derive(Clone, Debug)]
pub struct Set {
    pub data: Arc<Data>,
    /// Targets row-major, `k` per row (one-hot for a classifier).
    pub targets: Vec<f32>,
    /// Class labels of each row (classifier), else empty.
    pub labels: Vec<i64>,
}

impl Set {
    /// Inputs (`n × d`, column-major) with targets `y` (`n × k`, row-major, f64) for `target`.
    /// Labels unseen among a classifier's classes get no one-hot row (scored as wrong).
    pub fn new(n: usize, d: usize, xt: Vec<f32>, y: &[f64], target: &Target) -> Result<Self> {
        let cols = match target {
            Target::Vector { k } => *k,
            _ => 1,
        };
        Error::check_len("targets (n·k)", n * cols, y.len())?;
        if let Some(r) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "y",
                index: r,
                value: y[r] as f32,
            });
        }
        let (scalar, targets, labels) = match target {
            Target::Scalar => {
                let y: Vec<f32> = y.iter().map(|&v| v as f32).collect();
                (y.clone(), y, Vec::new())
            }
            Target::Vector { .. } => (
                vec![0.0; n],
                y.iter().map(|&v| v as f32).collect(),
                Vec::new(),
            ),
            Target::Classes { classes } => {
                let labels = integer_labels(y)?;
                let k = classes.len();
                let mut onehot = vec![0.0f32; n * k];
                for (r, l) in labels.iter().enumerate() {
                    if let Ok(c) = classes.binary_search(l) {
                        onehot[r * k + c] = 1.0;
                    }
                }
                (vec![0.0; n], onehot, labels)
            }
        };
        Ok(Self {
            data: Arc::new(Data::from_columns(n, d, xt, scalar)?),
            targets,
            labels,
        })
    }
}

/// How to fit.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Neurons per layer.
    pub m: usize,
    pub config: IhtConfig,
    pub layers: usize,
    /// The classifier's loss (regression is MSE).
    pub loss: Loss,
    pub select: Select,
    /// Fixed step of the vector-output model; `None` probes one.
    pub step: Option<f32>,
}

/// A fitted model on its engine.
#[allow(
    clippy::large_enum_variant,
    reason = "one model per fit, moved once; boxing would only add an indirection"
)]
pub enum Model<B: Backend> {
    Scalar { deep: Deep, backend: B, m: usize },
    Vector(VectorDeep<B>),
}

/// A fit: the model and what the solve did.
pub struct Fitted<B: Backend> {
    pub model: Model<B>,
    pub target: Target,
    /// Solve time in seconds (the step probe excluded).
    pub seconds: f64,
    /// The vector-output model's step, and the probes that chose it (when probed).
    pub step: Option<f32>,
    pub probes: Option<Probes>,
    /// The last batch loss of the vector-output model.
    pub final_loss: Option<f64>,
}

/// Fits `train` on `backend`; `on_step(layer)` follows every step.
pub fn fit<B: Backend>(
    backend: B,
    train: &Set,
    target: &Target,
    opts: &FitOptions,
    mut on_step: impl FnMut(usize),
) -> Result<Fitted<B>> {
    let (m, layers) = (opts.m, opts.layers);
    if let Target::Scalar = target {
        let rows: Arc<dyn RowSource> = Arc::new(InMemory(train.data.clone()));
        let (deep, backend) = depth::fit_layers(
            backend,
            rows,
            m,
            &opts.config,
            layers,
            |l, _: &StepRecord| on_step(l),
        )?;
        let seconds = deep.seconds();
        return Ok(Fitted {
            model: Model::Scalar { deep, backend, m },
            target: target.clone(),
            seconds,
            step: None,
            probes: None,
            final_loss: None,
        });
    }
    let loss = match target {
        Target::Classes { .. } => opts.loss,
        _ => Loss::Mse,
    };
    let k = target.k();
    let mut vc = VectorConfig::from_iht(&opts.config, loss, opts.select, opts.step);
    let (mut backend, mut probes) = (backend, None);
    if opts.step.is_none() {
        let (be, alpha, tried) =
            choose_step(backend, train.data.clone(), &train.targets, k, m, &vc)?;
        (backend, vc.step, probes) = (be, Some(alpha), Some(tried));
    }
    let start = std::time::Instant::now();
    let mut last = f64::NAN;
    let model = depth::fit_vector_layers(
        backend,
        train.data.clone(),
        train.targets.clone(),
        k,
        m,
        &vc,
        layers,
        |l, _, loss| {
            last = loss;
            on_step(l)
        },
    )?;
    Ok(Fitted {
        model: Model::Vector(model),
        target: target.clone(),
        seconds: start.elapsed().as_secs_f64(),
        step: vc.step,
        probes,
        final_loss: Some(last),
    })
}

/// Scores of predictions: MSE, relative error and R² for regression, accuracy for classes.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Score {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rel_error: Option<f64>,
    /// R² pooled over outputs (each against its own mean); `None` for constant targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

impl<B: Backend> Fitted<B> {
    /// Raw outputs (`n × k` row-major) on `data`, computed by the engine.
    pub fn predict(&mut self, data: Arc<Data>) -> Result<Vec<f32>> {
        match &mut self.model {
            Model::Scalar { deep, backend, m } => {
                let n = data.n();
                deep.predict(backend, Arc::new(InMemory(data)), *m, n)
            }
            Model::Vector(model) => model.predict(data),
        }
    }

    /// The scores of this model on `set`.
    pub fn score(&mut self, set: &Set) -> Result<Score> {
        let pred = self.predict(set.data.clone())?;
        Ok(score(&pred, set, &self.target))
    }

    /// The dense network (what the model file stores).
    pub fn network(&self) -> Result<Network> {
        match &self.model {
            Model::Scalar { deep, .. } => {
                deep.network(deep.layers[0].x.len() as usize / deep.layers[0].m())
            }
            Model::Vector(model) => model.network(),
        }
    }

    /// Nonzero weights kept.
    pub fn nnz(&self) -> usize {
        match &self.model {
            Model::Scalar { deep, .. } => deep.nnz(),
            Model::Vector(model) => model.nnz(),
        }
    }

    /// Steps taken over all layers.
    pub fn steps(&self) -> usize {
        match &self.model {
            Model::Scalar { deep, .. } => deep.steps(),
            Model::Vector(model) => model.steps(),
        }
    }

    /// Whether the scalar solve stopped at its tolerance (`None` for the vector model).
    pub fn converged(&self) -> Option<bool> {
        match &self.model {
            Model::Scalar { deep, .. } => Some(deep.last().converged),
            Model::Vector(_) => None,
        }
    }

    /// The engine.
    pub fn backend(&self) -> &B {
        match &self.model {
            Model::Scalar { backend, .. } => backend,
            Model::Vector(model) => model.last.backend(),
        }
    }

    /// The engine's device peak over the fit.
    pub fn peak_device_bytes(&self) -> u64 {
        match &self.model {
            Model::Scalar { deep, .. } => deep
                .layers
                .iter()
                .map(|r| r.peak_device_bytes)
                .max()
                .unwrap_or(0),
            Model::Vector(model) => model.last.backend().peak_device_bytes(),
        }
    }
}

/// Scores of raw outputs `pred` against a set.
pub fn score(pred: &[f32], set: &Set, target: &Target) -> Score {
    match target {
        Target::Classes { classes } => {
            let hits = argmax_rows(pred, classes.len())
                .iter()
                .zip(&set.labels)
                .filter(|(&c, &l)| classes[c] == l)
                .count();
            Score {
                mse: None,
                rel_error: None,
                r2: None,
                accuracy: Some(hits as f64 / set.labels.len().max(1) as f64),
            }
        }
        _ => regression(pred, &set.targets, target.k()),
    }
}

/// MSE, relative error and R² of predictions against targets (row-major, `k` per row).
pub fn regression(pred: &[f32], y: &[f32], k: usize) -> Score {
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
    Score {
        mse: Some(sse / y.len().max(1) as f64),
        rel_error: (yy > 0.0).then(|| (sse / yy).sqrt()),
        r2: (sst > 0.0).then(|| 1.0 - sse / sst),
        accuracy: None,
    }
}
