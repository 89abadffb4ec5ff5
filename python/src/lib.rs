//! `relu_iht._core`: the compiled core of the Python package, a thin PyO3 layer over the
//! `relu-iht` crate (no second implementation). It takes NumPy arrays of any float dtype and
//! memory order (read in place, copied once into the engine's column-major layout), runs the
//! crate's fits with the GIL released, and hands back a [`Model`]: the dense network of the model
//! file, which predicts, renders, saves and loads. Engine errors arrive as Python exceptions with
//! the engine's one-line message: `ValueError` for bad input, `OSError` for files, `RuntimeError`
//! for the GPU.

use numpy::ndarray::{Array2, Array3, ArrayView2};
use numpy::prelude::*;
use numpy::{PyArray2, PyArray3, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3::IntoPyObjectExt;
use relu_iht::engine::{self, Choice};
use relu_iht::io::model_file::{self, Kind, Meta};
use relu_iht::problem::dense::View;
use relu_iht::problem::model::{Loss, Select};
use relu_iht::problem::operator::Mode;
use relu_iht::solver::depth;
use relu_iht::tasks::fit::{self as fitting, FitOptions, Set, Target};
use relu_iht::tasks::inr::{self, FourierFeatures, Image};
use relu_iht::{Error, IhtConfig};
use std::path::PathBuf;

/// The engine's error as the Python exception a user expects.
fn py_err(e: Error) -> PyErr {
    match e {
        Error::Io { .. } => PyOSError::new_err(format!("{e}: {}", io_cause(&e))),
        Error::NoAdapter(_) | Error::Gpu { .. } => PyRuntimeError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn io_cause(e: &Error) -> String {
    std::error::Error::source(e).map_or(String::new(), |s| s.to_string())
}

/// A 2-D float array (float32 or float64, any strides) as `(n, d, column-major f32)`.
fn columns(x: &Bound<'_, PyAny>) -> PyResult<(usize, usize, Vec<f32>)> {
    fn take<T: Copy>(v: ArrayView2<'_, T>, f: impl Fn(T) -> f32) -> (usize, usize, Vec<f32>) {
        let (n, d) = v.dim();
        let mut xt = Vec::with_capacity(n * d);
        for col in v.columns() {
            xt.extend(col.iter().map(|&a| f(a)));
        }
        (n, d, xt)
    }
    if let Ok(a) = x.extract::<PyReadonlyArray2<'_, f32>>() {
        return Ok(take(a.as_array(), |v| v));
    }
    if let Ok(a) = x.extract::<PyReadonlyArray2<'_, f64>>() {
        let view = a.as_array();
        if let Some(((r, c), v)) = view
            .indexed_iter()
            .find(|(_, v)| v.is_finite() && v.abs() > f32::MAX as f64)
        {
            return Err(PyValueError::new_err(format!(
                "X[{r}, {c}] = {v} does not fit a 32-bit float"
            )));
        }
        return Ok(take(view, |v| v as f32));
    }
    Err(PyValueError::new_err(
        "X must be a 2-D float32 or float64 array",
    ))
}

/// A fitted network with its metadata (the model file's content).
#[pyclass(module = "relu_iht._core", frozen)]
struct Model {
    inner: model_file::Model,
}

fn opt_list<'py, T>(py: Python<'py>, v: Option<Vec<T>>) -> PyResult<Bound<'py, PyAny>>
where
    Vec<T>: IntoPyObject<'py>,
{
    match v {
        Some(v) => v.into_bound_py_any(py),
        None => Ok(py.None().into_bound(py)),
    }
}

#[pymethods]
impl Model {
    /// Raw outputs (n × k float64, computed in f64) for X (n × d).
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (n, d, xt) = columns(x)?;
        let net = &self.inner.network;
        if d != net.d() {
            return Err(PyValueError::new_err(format!(
                "X has {d} features, but the model is expecting {} features as input",
                net.d()
            )));
        }
        if let Some(i) = xt.iter().position(|v| !v.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "X contains NaN or infinity ({} at row {}, column {})",
                xt[i],
                i % n.max(1),
                i / n.max(1)
            )));
        }
        let k = net.k();
        let y = py.detach(|| net.predict_f64(View::cols(&xt, n), n));
        let arr =
            Array2::from_shape_vec((n, k), y).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(arr.into_pyarray(py))
    }

    /// Writes the model file (safetensors) atomically.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        model_file::save(&path, &self.inner).map_err(py_err)
    }

    /// Reads and checks a model file.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Model> {
        Ok(Model {
            inner: model_file::load(&path).map_err(py_err)?,
        })
    }

    /// The model file's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = model_file::encode(&self.inner).map_err(py_err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// A model from model-file bytes.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Model> {
        let path = std::path::Path::new("<bytes>");
        Ok(Model {
            inner: model_file::decode(data, path).map_err(py_err)?,
        })
    }

    /// The layers' weights, `out × in` float32 (PyTorch's `Linear.weight`), the output last.
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyArray2<f32>>>> {
        let net = &self.inner.network;
        net.hidden
            .iter()
            .chain([&net.output])
            .map(|l| {
                Array2::from_shape_vec((l.out, l.inp), l.weight.clone())
                    .map(|a| a.into_pyarray(py))
                    .map_err(|e| PyValueError::new_err(e.to_string()))
            })
            .collect()
    }

    /// Each hidden layer's gates (`None` for a plain ReLU layer).
    fn gates<'py>(&self, py: Python<'py>) -> PyResult<Vec<Option<Bound<'py, PyArray2<f32>>>>> {
        self.inner
            .network
            .hidden
            .iter()
            .map(|l| {
                l.gate
                    .as_ref()
                    .map(|g| {
                        Array2::from_shape_vec((l.out, l.inp), g.clone())
                            .map(|a| a.into_pyarray(py))
                            .map_err(|e| PyValueError::new_err(e.to_string()))
                    })
                    .transpose()
            })
            .collect()
    }

    /// The metadata as a dict.
    fn meta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (m, net) = (&self.inner.meta, &self.inner.network);
        let out = PyDict::new(py);
        let kind = match m.kind {
            Kind::Regressor => "regressor",
            Kind::Classifier => "classifier",
            Kind::Inr => "inr",
        };
        out.set_item("kind", kind)?;
        out.set_item("task", &m.task)?;
        out.set_item("mode", &m.mode)?;
        out.set_item("d", net.d())?;
        out.set_item("k", net.k())?;
        out.set_item("m", m.m)?;
        out.set_item("s", m.s)?;
        out.set_item("layers", m.layers)?;
        out.set_item("seed", m.seed)?;
        out.set_item("nnz", net.nnz())?;
        out.set_item("gated", net.gated())?;
        out.set_item("classes", opt_list(py, m.classes.clone())?)?;
        out.set_item("columns", opt_list(py, m.columns.clone())?)?;
        if let Some(inr) = &m.inr {
            out.set_item("width", inr.width)?;
            out.set_item("height", inr.height)?;
            out.set_item("channels", inr.channels)?;
            out.set_item("sigma", inr.sigma)?;
            out.set_item("coord_scale", inr.coord_scale)?;
        }
        Ok(out)
    }

    /// An INR drawn at `width × height`: height × width × channels float32 in [0, 1].
    fn render<'py>(
        &self,
        py: Python<'py>,
        width: usize,
        height: usize,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let Some(meta) = &self.inner.meta.inr else {
            return Err(PyValueError::new_err(format!(
                "not an INR model (fitted by {})",
                self.inner.meta.task
            )));
        };
        let net = &self.inner.network;
        let image = py
            .detach(|| inr::render(net, meta, width, height))
            .map_err(py_err)?;
        image_array(py, image)
    }
}

fn image_array(py: Python<'_>, image: Image) -> PyResult<Bound<'_, PyArray3<f32>>> {
    Array3::from_shape_vec((image.height, image.width, image.channels), image.pixels)
        .map(|a| a.into_pyarray(py))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Solver settings shared by `fit` and `fit_image`.
#[allow(
    clippy::too_many_arguments,
    reason = "the estimator's parameters, passed through"
)]
fn iht_config(
    n_nonzero: usize,
    steps: usize,
    mode: &str,
    batch_size: Option<usize>,
    epochs: Option<usize>,
    seed: u64,
    inner_steps: usize,
    tol: f64,
    inflate: f64,
    refine: usize,
) -> PyResult<IhtConfig> {
    let mode = match mode {
        "sequential-convex" | "scp" => Mode::SequentialConvex,
        "convex" => Mode::Convex,
        other => {
            return Err(PyValueError::new_err(format!(
                "invalid mode = {other}: 'sequential-convex' or 'convex'"
            )))
        }
    };
    if epochs.is_some() && batch_size.is_none() {
        return Err(PyValueError::new_err("invalid epochs: requires batch_size"));
    }
    Ok(IhtConfig {
        s: n_nonzero,
        steps: epochs.unwrap_or(steps),
        mode,
        seed,
        batch_size,
        inner_steps,
        tol,
        inflate,
        refine,
        warmup: None,
        safeguards: relu_iht::solver::scalar::Safeguards::PAPER,
        average: None,
    })
}

fn open_engine(
    backend: &str,
    precision: &str,
    device_memory: Option<u64>,
) -> PyResult<engine::Engine> {
    let choice: Choice = backend.parse().map_err(py_err)?;
    let precision: engine::Precision = precision.parse().map_err(py_err)?;
    Ok(
        engine::open_at(choice, precision, device_memory, Default::default())
            .map_err(py_err)?
            .0,
    )
}

/// What a fit did, for the estimator's fitted attributes.
fn info<'py, B: relu_iht::Backend>(
    py: Python<'py>,
    f: &fitting::Fitted<B>,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("n_iter", f.steps())?;
    out.set_item("converged", f.converged())?;
    out.set_item("seconds", f.seconds)?;
    out.set_item("nnz", f.nnz())?;
    out.set_item("backend", f.backend().name())?;
    out.set_item("peak_host_bytes", relu_iht::mem::peak_host_bytes())?;
    out.set_item("peak_device_bytes", f.peak_device_bytes())?;
    out.set_item("step_size", f.step)?;
    Ok(out)
}

/// Fits X (n × d) and y (n targets, or n × k); with `classes`, y holds class indices and
/// `class_labels` the labels the model file records. Returns the model and what the fit did.
#[pyfunction]
#[pyo3(signature = (x, y, *, classes=false, class_labels=None, n_neurons=100, n_nonzero=200,
    steps=15, mode="sequential-convex", batch_size=None, epochs=None, layers=1, backend="auto",
    precision="f32", device_memory=None, seed=0, inner_steps=10, tol=0.0, inflate=1.0, refine=0,
    loss="cross-entropy", select="sketch", step_size=None, verbose=false))]
#[allow(
    clippy::too_many_arguments,
    reason = "the estimator's parameters, passed through"
)]
fn fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    classes: bool,
    class_labels: Option<Vec<i64>>,
    n_neurons: usize,
    n_nonzero: usize,
    steps: usize,
    mode: &str,
    batch_size: Option<usize>,
    epochs: Option<usize>,
    layers: usize,
    backend: &str,
    precision: &str,
    device_memory: Option<u64>,
    seed: u64,
    inner_steps: usize,
    tol: f64,
    inflate: f64,
    refine: usize,
    loss: &str,
    select: &str,
    step_size: Option<f32>,
    verbose: bool,
) -> PyResult<(Model, Bound<'py, PyDict>)> {
    let (n, d, xt) = columns(x)?;
    let (yv, k): (Vec<f64>, usize) = if let Ok(a) = y.extract::<PyReadonlyArray1<'_, f64>>() {
        (a.as_array().to_vec(), 1)
    } else if let Ok(a) = y.extract::<PyReadonlyArray2<'_, f64>>() {
        let v = a.as_array();
        (v.iter().copied().collect(), v.ncols())
    } else {
        return Err(PyValueError::new_err(
            "y must be a 1-D or 2-D float64 array",
        ));
    };
    if yv.len() != n * k {
        return Err(PyValueError::new_err(format!(
            "y has {} rows where X has {n}",
            yv.len() / k.max(1)
        )));
    }
    let config = iht_config(
        n_nonzero,
        steps,
        mode,
        batch_size,
        epochs,
        seed,
        inner_steps,
        tol,
        inflate,
        refine,
    )?;
    let target = if classes {
        Target::classes_of(&yv).map_err(py_err)?
    } else {
        Target::regression(k)
    };
    let opts = FitOptions {
        m: n_neurons,
        config,
        layers,
        loss: match loss {
            "cross-entropy" => Loss::CrossEntropy,
            "mse" => Loss::Mse,
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid loss = {other}: 'cross-entropy' or 'mse'"
                )))
            }
        },
        select: match select {
            "sketch" => Select::Sketch,
            "magnitude" => Select::Magnitude,
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid select = {other}: 'sketch' or 'magnitude'"
                )))
            }
        },
        step: step_size,
    };
    let train = Set::new(n, d, xt, &yv, &target).map_err(py_err)?;
    let extra = if target == Target::Scalar {
        0
    } else {
        target.k()
    };
    opts.config
        .validate(n, (n_neurons as u64).saturating_mul((d + extra) as u64))
        .map_err(py_err)?;
    if layers == 0 || layers > n_nonzero {
        return Err(PyValueError::new_err(format!(
            "invalid layers = {layers}: between 1 and n_nonzero = {n_nonzero}"
        )));
    }
    let engine = open_engine(backend, precision, device_memory)?;
    let total = layers * opts.config.total_steps(n);
    let progress = move |done: &mut usize| {
        *done += 1;
        if verbose {
            eprintln!("relu_iht: step {done}/{total}");
        }
    };
    let (network, fitted_info) = relu_iht::with_engine!(engine, b => {
        let mut done = 0;
        let fitted = py
            .detach(|| fitting::fit(b, &train, &target, &opts, |_| progress(&mut done)))
            .map_err(py_err)?;
        (fitted.network().map_err(py_err)?, info(py, &fitted)?)
    });
    let kind = if classes {
        Kind::Classifier
    } else {
        Kind::Regressor
    };
    let labels = match &target {
        Target::Classes { classes } => Some(class_labels.unwrap_or_else(|| classes.clone())),
        _ => None,
    };
    if let Some(l) = &labels {
        if l.len() != network.k() {
            return Err(PyValueError::new_err("class_labels must name every class"));
        }
    }
    let mut meta = Meta::new(
        kind,
        "python",
        opts.config.mode,
        (n_neurons, n_nonzero, layers, seed),
    );
    meta.classes = labels;
    Ok((
        Model {
            inner: model_file::Model { network, meta },
        },
        fitted_info,
    ))
}

/// Fits an image (a PNG/JPEG path, downscaled to `max_side` if given, or an H × W × C array in
/// [0, 1]) as an INR; returns the model, the reconstruction (H × W × C) and what the fit did.
/// Settings left `None` are resolved as the CLI's `inr` resolves them (`paper` takes the paper's).
#[pyfunction]
#[pyo3(signature = (image, *, features=None, sigma=None, unit_coords=None, max_side=None,
    n_neurons=None, n_nonzero=None, steps=None, mode="sequential-convex", batch_size=None,
    epochs=None, paper=false, backend="auto", precision="f32", device_memory=None, seed=0,
    inner_steps=None,
    verbose=false))]
#[allow(
    clippy::too_many_arguments,
    reason = "the helper's parameters, passed through"
)]
fn fit_image<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    features: Option<usize>,
    sigma: Option<f32>,
    unit_coords: Option<bool>,
    max_side: Option<usize>,
    n_neurons: Option<usize>,
    n_nonzero: Option<usize>,
    steps: Option<usize>,
    mode: &str,
    batch_size: Option<usize>,
    epochs: Option<usize>,
    paper: bool,
    backend: &str,
    precision: &str,
    device_memory: Option<u64>,
    seed: u64,
    inner_steps: Option<usize>,
    verbose: bool,
) -> PyResult<(Model, Bound<'py, PyArray3<f32>>, Bound<'py, PyDict>)> {
    if let (Some(_), Some(_)) = (steps, epochs) {
        return Err(PyValueError::new_err(
            "invalid steps with epochs: epochs replaces steps",
        ));
    }
    if epochs.is_some() && batch_size.is_none() {
        return Err(PyValueError::new_err("invalid epochs: requires batch_size"));
    }
    if let Some(sigma) = sigma {
        if !sigma.is_finite() {
            return Err(PyValueError::new_err(format!(
                "invalid sigma = {sigma}: must be a positive number"
            )));
        }
    }
    let max_side = max_side.unwrap_or(usize::MAX);
    let image = if let Ok(path) = image.extract::<PathBuf>() {
        if max_side == 0 {
            return Err(PyValueError::new_err(
                "invalid max_side = 0: must be at least 1",
            ));
        }
        Image::load(&path, max_side).map_err(py_err)?
    } else {
        let a: PyReadonlyArray3<'_, f32> = image.extract().map_err(|_| {
            PyValueError::new_err("image must be a path or an H × W × C float32 array (C = 1 or 3)")
        })?;
        let v = a.as_array();
        let (height, width, channels) = v.dim();
        if !matches!(channels, 1 | 3) || height == 0 || width == 0 {
            return Err(PyValueError::new_err(format!(
                "image of shape ({height}, {width}, {channels}): need H, W ≥ 1 and 1 or 3 channels"
            )));
        }
        let pixels: Vec<f32> = v.iter().copied().collect();
        if let Some(p) = pixels
            .iter()
            .find(|p| !(p.is_finite() && (0.0..=1.0).contains(*p)))
        {
            return Err(PyValueError::new_err(format!(
                "image value {p} is outside [0, 1]"
            )));
        }
        Image {
            width,
            height,
            channels,
            pixels,
        }
    };
    let plan = inr::InrRequest {
        paper,
        digit: false,
        unit: unit_coords,
        sigma,
        sigma_high: None,
        high_share: None,
        features,
        m: n_neurons,
        s: n_nonzero,
        steps,
        batch_size,
        epochs,
        warmup: None,
        inner_steps,
    }
    .resolve(image.len());
    let (features, sigma, unit_coords, n_neurons, n_nonzero, batch_size) = (
        plan.features,
        plan.sigma,
        plan.unit,
        plan.m,
        plan.s,
        plan.batch_size,
    );
    let config = IhtConfig {
        warmup: plan.warmup,
        safeguards: plan.safeguards,
        average: (!paper).then_some(relu_iht::solver::scalar::DEFAULT_AVERAGE),
        ..iht_config(
            n_nonzero,
            plan.steps,
            mode,
            batch_size,
            None,
            seed,
            plan.inner_steps,
            0.0,
            1.0,
            0,
        )?
    };
    let n = image.len();
    let cols = n_neurons as u64 * features as u64;
    config.validate(n, cols).map_err(py_err)?;
    let ff = FourierFeatures::with_band(features, image.coord_dims(), sigma, plan.band, seed)
        .map_err(py_err)?;
    let inr_meta = inr::inr_meta(&image, &ff, sigma, unit_coords);
    let rows = inr::feature_rows(&image, ff, unit_coords, batch_size.is_some()).map_err(py_err)?;
    let engine = open_engine(backend, precision, device_memory)?;
    let total = config.total_steps(n);
    let (network, pred, fit_info) = relu_iht::with_engine!(engine, b => {
        let (deep, mut be, pred) = py
            .detach(|| -> relu_iht::Result<_> {
                let mut done = 0;
                let (deep, mut be) = depth::fit_layers(b, rows.clone(), n_neurons, &config, 1, |_, _| {
                    done += 1;
                    if verbose {
                        eprintln!("relu_iht: step {done}/{total}");
                    }
                })?;
                let pred = deep.predict(&mut be, rows.clone(), n_neurons, batch_size.unwrap_or(n))?;
                Ok((deep, be, pred))
            })
            .map_err(py_err)?;
        let d = PyDict::new(py);
        d.set_item("n_iter", deep.steps())?;
        d.set_item("seconds", deep.seconds())?;
        d.set_item("nnz", deep.nnz())?;
        d.set_item("backend", relu_iht::Backend::name(&be))?;
        d.set_item("psnr", inr::psnr(&image.pixels, &image.with_pixels(&pred).pixels))?;
        let _ = &mut be;
        (deep.network(features).map_err(py_err)?, pred, d)
    });
    let mut meta = Meta::new(
        Kind::Inr,
        "python",
        config.mode,
        (n_neurons, n_nonzero, 1, seed),
    );
    meta.inr = Some(inr_meta);
    let recon = image.with_pixels(&pred);
    Ok((
        Model {
            inner: model_file::Model { network, meta },
        },
        image_array(py, recon)?,
        fit_info,
    ))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(fit_image, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
