"""relu_iht: sparse two-layer ReLU networks recovered by iterative hard thresholding.

scikit-learn-style estimators over the relu-iht Rust engine (CPU, or any GPU through WebGPU):

    from relu_iht import SparseReLURegressor
    est = SparseReLURegressor(n_nonzero=200, n_neurons=100).fit(X, y)
    est.predict(X_new); est.score(X, y); est.save("model.safetensors")

The model is ``f(x) = sum_j relu(x . w_j)`` (scalar targets) or ``relu(X W1^T) W2^T`` (several
targets, classes), with at most ``n_nonzero`` nonzero weights. The solve runs in Rust with the GIL
released; errors from the engine arrive as ``ValueError`` (bad input), ``OSError`` (files) or
``RuntimeError`` (GPU) with the engine's one-line message.
"""

import numpy as np

from . import _core
from ._base import (
    HAVE_SKLEARN,
    BaseEstimator,
    ClassifierMixin,
    NotFittedError,
    RegressorMixin,
    check_classification_targets,
    validate_data,
)

__all__ = [
    "SparseReLURegressor",
    "SparseReLUClassifier",
    "fit_image",
    "render",
    "load",
    "NotFittedError",
]
__version__ = _core.__version__


def _as_2d_float(X, what="X"):
    """X as a 2-D float32/float64 array; copies only when the dtype or type requires it."""
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise TypeError(f"sparse input is not supported: pass a dense array for {what}")
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {what} has dtype {X.dtype}")
    if X.dtype.kind not in "fiub":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{what} must be numeric, got dtype {X.dtype}") from e
    elif X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array for {what}, got {X.ndim}D array instead: reshape your data "
            "with X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{what} of shape {X.shape}: need at least one sample and one feature")
    return X


def _check_y(y, n):
    y = np.asarray(y)
    if y.dtype.kind == "c":
        raise ValueError("Complex data not supported in y")
    return y


class _SparseReLUBase(BaseEstimator):
    """Shared parameters and fitted state; see the two estimators."""

    def __init__(
        self,
        n_nonzero=200,
        n_neurons=100,
        steps=15,
        mode="sequential-convex",
        batch_size=None,
        epochs=None,
        layers=1,
        backend="auto",
        precision="f32",
        device_memory=None,
        seed=0,
        inner_steps=10,
        tol=0.0,
        inflate=1.0,
        refine=0,
        select="sketch",
        step_size=None,
        verbose=False,
    ):
        self.n_nonzero = n_nonzero
        self.n_neurons = n_neurons
        self.steps = steps
        self.mode = mode
        self.batch_size = batch_size
        self.epochs = epochs
        self.layers = layers
        self.backend = backend
        self.precision = precision
        self.device_memory = device_memory
        self.seed = seed
        self.inner_steps = inner_steps
        self.tol = tol
        self.inflate = inflate
        self.refine = refine
        self.select = select
        self.step_size = step_size
        self.verbose = verbose

    def _solver_params(self):
        return dict(
            n_neurons=int(self.n_neurons),
            n_nonzero=int(self.n_nonzero),
            steps=int(self.steps),
            mode=str(self.mode),
            batch_size=None if self.batch_size is None else int(self.batch_size),
            epochs=None if self.epochs is None else int(self.epochs),
            layers=int(self.layers),
            backend=str(self.backend),
            precision=str(self.precision),
            device_memory=None if self.device_memory is None else int(self.device_memory),
            seed=int(self.seed),
            inner_steps=int(self.inner_steps),
            tol=float(self.tol),
            inflate=float(self.inflate),
            refine=int(self.refine),
            select=str(self.select),
            step_size=None if self.step_size is None else float(self.step_size),
            verbose=bool(self.verbose),
        )

    def _validate(self, X, y=None, reset=True, **kw):
        """X (and y) checked and converted: scikit-learn's validation when it is installed (its
        messages and conventions), else ours. Finiteness is left to the engine, whose message
        names the first bad value."""
        if validate_data is not None:
            args = dict(ensure_all_finite=False, dtype=(np.float64, np.float32), reset=reset)
            if y is None:
                return validate_data(self, X, **args), None
            return validate_data(self, X, y, **args, **kw)
        X = _as_2d_float(X)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return X, y

    def _fit(self, X, y, **kw):
        n, d = X.shape
        s, m = int(self.n_nonzero), int(self.n_neurons)
        if kw.get("classes"):
            k = int(y.max()) + 1
        else:
            k = y.shape[1] if y.ndim == 2 else 0
        if s > m * (d + (k if k > 1 else 0)):
            raise ValueError(
                f"n_nonzero = {s} exceeds the model's weights for {d} feature(s): "
                f"n_neurons × n_features = {m} × {d}"
            )
        model, info = _core.fit(X, y, **kw, **self._solver_params())
        self._set_model(model, info)
        return self

    def _set_model(self, model, info):
        self.model_ = model
        self.weights_ = model.weights()
        self.gates_ = model.gates()
        self.n_iter_ = info.get("n_iter")
        self.converged_ = info.get("converged")
        self.peak_host_bytes_ = info.get("peak_host_bytes")
        self.peak_device_bytes_ = info.get("peak_device_bytes")
        self.backend_ = info.get("backend")
        self.step_size_ = info.get("step_size")
        self.nnz_ = info.get("nnz")

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _outputs(self, X):
        self._check_fitted()
        X, _ = self._validate(X, reset=False)
        # float64, computed in float64 (the CLI's predict writes these rounded to float32).
        return self.model_.predict(X)

    def save(self, path):
        """Writes the fitted network as the relu-iht model file (safetensors)."""
        self._check_fitted()
        self.model_.save(str(path))

    def to_torch(self):
        """The fitted network as a ``torch.nn.Sequential`` of bias-free ``Linear`` and ``ReLU``
        layers (gated convex-mode models are not plain MLPs and are refused)."""
        self._check_fitted()
        import torch

        if any(g is not None for g in self.gates_):
            raise ValueError("a convex-mode model is gated, not a plain MLP; use predict()")
        mods = []
        for w in self.weights_:
            lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            mods += [lin, torch.nn.ReLU()]
        return torch.nn.Sequential(*mods[:-1])

    @classmethod
    def _from_file(cls, path, kind):
        """An estimator holding the model in ``path`` (which must be a ``kind``), and its
        metadata."""
        model = _core.Model.load(str(path))
        meta = model.meta()
        if meta["kind"] != kind:
            raise ValueError(f"{path}: a {meta['kind']} model, not a {kind}")
        est = cls(n_nonzero=meta["s"], n_neurons=meta["m"], layers=meta["layers"], seed=meta["seed"],
                  mode="convex" if meta["mode"] == "convex" else "sequential-convex")
        est._set_model(model, {})
        est.n_features_in_ = meta["d"]
        return est, meta

    # Pickling goes through the model file's bytes (the compiled model is not picklable).
    def __getstate__(self):
        state = self.__dict__.copy()
        if "model_" in state:
            state["model_"] = state["model_"].to_bytes()
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), (bytes, bytearray)):
            state["model_"] = _core.Model.from_bytes(bytes(state["model_"]))
        self.__dict__.update(state)


def _tags(est, multi_output):
    """scikit-learn tags: float inputs, NaN refused by the engine, and whether y may be 2-D."""
    tags = super(type(est), est).__sklearn_tags__()
    tags.target_tags.multi_output = multi_output
    tags.target_tags.single_output = True
    return tags


class SparseReLURegressor(RegressorMixin, _SparseReLUBase):
    """Regression with a sparse ReLU network: ``y ~ sum_j relu(x . w_j)`` for one target column,
    the vector-output model (MSE) for several.

    Parameters
    ----------
    n_nonzero : int, default=200
        Nonzero weights kept (s).
    n_neurons : int, default=100
        Hidden neurons (m); memory grows with ``n_nonzero``, not with ``n_neurons``.
    steps : int, default=15
        IHT steps (full batch), or epochs with ``batch_size``.
    mode : {"sequential-convex", "convex"}
    batch_size, epochs : minibatch IHT (``epochs`` replaces ``steps``).
    layers : int, default=1
        Hidden layers, fitted greedily with ``n_nonzero / layers`` weights each.
    backend : {"auto", "cpu", "gpu"}
    precision : {"f32", "f64"}, default="f32"
        ``"f64"``: the CPU engine in f64 (products, residuals and weights; the same bits on every
        machine, several times slower; one output column only).
    device_memory : int or None
        The GPU engine's memory budget in bytes.
    seed, inner_steps, tol, inflate, refine, select, step_size, verbose : see the README.

    Fitted attributes: ``weights_`` (per layer, ``out x in``), ``gates_``, ``n_iter_``,
    ``converged_``, ``peak_host_bytes_``, ``peak_device_bytes_``, ``n_features_in_``.
    """

    def fit(self, X, y):
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        X, y = self._validate(X, y, multi_output=True, y_numeric=True)
        y = _check_y(y, None)
        if y.dtype.kind not in "fiub":
            raise ValueError(f"y must be numeric, got dtype {y.dtype}")
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        self._y_ndim = y.ndim
        if y.ndim == 1 and self.mode != "convex" and np.any(y < 0):
            import warnings

            warnings.warn(
                f"{np.mean(y < 0):.0%} of y is negative, and the sequential-convex model "
                "sum_j relu(x . w_j) is non-negative: it can fit only the positive part. "
                "mode='convex' (fixed random gates) or two target columns (the vector-output "
                "model, signed output weights) fit signed targets.",
                UserWarning,
                stacklevel=2,
            )
        return self._fit(X, y)

    def predict(self, X):
        out = self._outputs(X)
        return out[:, 0] if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = _tags(self, multi_output=True)
        # The paper's model sum_j relu(x . w_j) is non-negative; scikit-learn's regression check
        # fits centred targets, half of them negative (R^2 at most about 0.49 there).
        tags.regressor_tags.poor_score = self.mode != "convex"
        return tags

    @classmethod
    def load(cls, path):
        """A regressor from a model file written by ``save`` (or ``relu-iht ... --save``)."""
        est, meta = cls._from_file(path, "regressor")
        est._y_ndim = 1 if meta["k"] == 1 else 2
        return est


class SparseReLUClassifier(ClassifierMixin, _SparseReLUBase):
    """Classification with a sparse ReLU network: the vector-output model with one output per
    class, cross-entropy (``loss``), argmax prediction; ``predict_proba`` is the softmax of the
    outputs. Labels may be of any type; the model file records integer labels.

    Takes the regressor's parameters plus ``loss`` ({"cross-entropy", "mse"}). Without
    ``step_size`` the fixed step is probed on the data's scale.
    """

    def __init__(self, n_nonzero=200, n_neurons=100, steps=15, mode="sequential-convex",
                 batch_size=None, epochs=None, layers=1, backend="auto", precision="f32",
                 device_memory=None, seed=0, inner_steps=10, tol=0.0, inflate=1.0, refine=0,
                 select="sketch", step_size=None, loss="cross-entropy", verbose=False):
        super().__init__(n_nonzero=n_nonzero, n_neurons=n_neurons, steps=steps, mode=mode,
                         batch_size=batch_size, epochs=epochs, layers=layers, backend=backend,
                         precision=precision, device_memory=device_memory, seed=seed,
                         inner_steps=inner_steps, tol=tol,
                         inflate=inflate, refine=refine, select=select, step_size=step_size,
                         verbose=verbose)
        self.loss = loss

    def fit(self, X, y):
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        X, y = self._validate(X, y)
        y = _check_y(y, None)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D class labels, got shape {y.shape}")
        if check_classification_targets is not None:
            check_classification_targets(y)
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity")
        if y.dtype.kind == "f" and np.any(y != np.round(y)):
            raise ValueError(
                "Unknown label type: continuous targets; a classifier needs class labels"
            )
        classes, idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"the classifier needs samples of at least 2 classes; got 1 class ({classes[0]!r})"
            )
        self.classes_ = classes
        labels = None
        if classes.dtype.kind in "iub" or (classes.dtype.kind == "f"):
            labels = [int(c) for c in classes]
        return self._fit(X, idx.astype(np.float64), classes=True, class_labels=labels,
                         loss=str(self.loss))

    def decision_function(self, X):
        out = self._outputs(X)
        return out[:, 1] - out[:, 0] if len(self.classes_) == 2 else out

    def predict(self, X):
        out = self._outputs(X)
        return self.classes_[np.argmax(out, axis=1)]

    def predict_proba(self, X):
        z = self._outputs(X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path):
        self._check_fitted()
        if self.classes_.dtype.kind not in "iubf":
            raise ValueError(
                f"the model file records integer class labels; these are {self.classes_.dtype}"
            )
        super().save(path)

    @classmethod
    def load(cls, path):
        """A classifier from a model file written by ``save`` (or ``relu-iht ... --save``)."""
        est, meta = cls._from_file(path, "classifier")
        est.classes_ = np.asarray(meta["classes"])
        return est


def load(path):
    """The model in a model file, as the estimator (or INR model) it was saved from."""
    model = _core.Model.load(str(path))
    kind = model.meta()["kind"]
    if kind == "classifier":
        return SparseReLUClassifier.load(path)
    if kind == "regressor":
        return SparseReLURegressor.load(path)
    return model


def fit_image(image, *, features=None, sigma=None, unit_coords=None, max_side=None,
              n_neurons=None, n_nonzero=None, steps=None, mode="sequential-convex",
              batch_size=None, epochs=None, paper=False, backend="auto", precision="f32",
              device_memory=None, seed=0, verbose=False):
    """Fits an image as an implicit neural representation (Fourier features of pixel
    coordinates). ``image`` is a PNG/JPEG path (downscaled to ``max_side`` if given) or an
    H x W x C array with values in [0, 1]. Settings left ``None`` take the defaults of
    ``relu-iht inr``: for photos, unit coordinates and the whole image, streamed in batches when
    it is large; with ``paper=True``, the paper's settings (raw pixel indices, sigma = 5, 1500
    features, 200 neurons, 2000 nonzeros, 100 full-batch steps). Returns ``(reconstruction,
    model, info)``: an H x W x C float32 array, the INR model (``render`` draws it at any size,
    ``save`` writes it) and a dict with ``psnr``."""
    if not isinstance(image, (str, bytes)) and not hasattr(image, "__fspath__"):
        image = np.asarray(image, dtype=np.float32)
        if image.ndim == 2:
            image = image[:, :, None]
        image = np.ascontiguousarray(image)
    else:
        image = str(image)
    model, recon, info = _core.fit_image(
        image, features=features, sigma=sigma, unit_coords=unit_coords, max_side=max_side,
        n_neurons=n_neurons, n_nonzero=n_nonzero, steps=steps, mode=mode, batch_size=batch_size,
        epochs=epochs, paper=paper, backend=backend, precision=precision,
        device_memory=device_memory, seed=seed,
        verbose=verbose)
    return recon, model, dict(info)


def render(model, size):
    """Draws an INR model at ``size``: ``(width, height)`` or one number for the longer side.
    Returns an H x W x C float32 array in [0, 1]."""
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        model = _core.Model.load(str(model))
    meta = model.meta()
    if meta["kind"] != "inr":
        raise ValueError(f"not an INR model (fitted by {meta['task']})")
    if np.ndim(size) == 0:
        w, h = meta["width"], meta["height"]
        scale = int(size) / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    width, height = (int(v) for v in size)
    return model.render(width, height)
