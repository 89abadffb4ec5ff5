"""The Python package against the CLI (bit for bit on the same data and seed), scikit-learn's
estimator checks, bad input, the GIL, the model file, and the INR helpers.

The CLI comparisons need the `relu-iht` binary: RELU_IHT_BIN, else target/release/relu-iht of
this clone (built by `cargo test --release`); they fail when neither exists.
"""

import os
import pathlib
import subprocess
import threading
import time

import numpy as np
import pytest

import relu_iht
from relu_iht import NotFittedError, SparseReLUClassifier, SparseReLURegressor

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("RELU_IHT_BIN", str(ROOT / "target" / "release" / "relu-iht"))


def cli(*args):
    assert os.path.exists(BIN), f"the relu-iht binary is missing at {BIN} (cargo build --release)"
    out = subprocess.run([BIN, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def planted(n=600, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    W = np.zeros((d, 3), np.float32)
    W[[0, 2, 5, 7], [0, 1, 2, 0]] = [1.5, -2.0, 1.0, 0.7]
    return X, np.maximum(X @ W, 0).sum(1)


def test_regressor_matches_the_cli_bit_for_bit(tmp_path):
    X, y = planted()
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    params = dict(n_nonzero=6, n_neurons=5, steps=15, seed=3, backend="cpu")
    est = SparseReLURegressor(**params).fit(X, y)
    model = tmp_path / "m.safetensors"
    cli("fit", "--x", str(tmp_path / "X.npy"), "--y", str(tmp_path / "y.npy"), "--s", "6", "--m", "5",
        "--seed", "3", "--backend", "cpu", "-q", "--save", str(model))
    cli("predict", "--model", str(model), "--x", str(tmp_path / "X.npy"), "--out", str(tmp_path / "p.npy"))
    # The same f32 data, seed and engine give the same weights; both predict with the same code
    # (in f64; the CLI writes float32).
    assert np.array_equal(est.predict(X).astype(np.float32), np.load(tmp_path / "p.npy"))
    loaded = SparseReLURegressor.load(model)
    for a, b in zip(est.weights_, loaded.weights_):
        assert np.array_equal(a, b)
    assert est.n_iter_ == 15 and est.converged_ is False
    assert est.peak_host_bytes_ > 0 and est.peak_device_bytes_ == 0
    assert est.score(X, y) > 0.9


def test_f64_precision_matches_the_cli_and_is_refused_where_it_cannot_run(tmp_path):
    X, y = planted()
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    est = SparseReLURegressor(n_nonzero=6, n_neurons=5, seed=3, backend="cpu",
                              precision="f64").fit(X, y)
    assert est.backend_ == "cpu-f64"
    model = tmp_path / "m.safetensors"
    cli("fit", "--x", str(tmp_path / "X.npy"), "--y", str(tmp_path / "y.npy"), "--s", "6", "--m", "5",
        "--seed", "3", "--backend", "cpu", "--precision", "f64", "-q", "--save", str(model))
    loaded = SparseReLURegressor.load(model)
    for a, b in zip(est.weights_, loaded.weights_):
        assert np.array_equal(a, b)
    assert est.score(X, y) > 0.9
    with pytest.raises(ValueError, match="precision = f16"):
        SparseReLURegressor(precision="f16", backend="cpu").fit(X, y)
    with pytest.raises(ValueError, match="precision = f64"):
        SparseReLURegressor(precision="f64", backend="gpu").fit(X, y)


def test_classifier_matches_the_cli(tmp_path):
    X, _ = planted(seed=1)
    labels = (X[:, 0] > 0).astype(np.int64) * 2 + (X[:, 3] > 0.3) - 1
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "l.npy", labels)
    est = SparseReLUClassifier(n_nonzero=80, n_neurons=12, steps=30, backend="cpu").fit(X, labels)
    model = tmp_path / "c.safetensors"
    cli("fit", "--x", str(tmp_path / "X.npy"), "--y", str(tmp_path / "l.npy"), "--classes", "--s", "80",
        "--m", "12", "--steps", "30", "--backend", "cpu", "-q", "--save", str(model))
    cli("predict", "--model", str(model), "--x", str(tmp_path / "X.npy"), "--out", str(tmp_path / "p.npy"))
    assert list(est.classes_) == [-1, 0, 1, 2]
    assert np.array_equal(est.predict(X), np.load(tmp_path / "p.npy"))
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 4) and np.allclose(proba.sum(1), 1)
    assert est.score(X, labels) > 0.8


def test_string_labels_and_pickle():
    import pickle

    X, _ = planted(seed=2)
    y = np.where(X[:, 1] > 0, "up", "down")
    est = SparseReLUClassifier(n_nonzero=40, n_neurons=8, steps=20, backend="cpu").fit(X, y)
    assert set(est.predict(X)) <= {"up", "down"} and est.score(X, y) > 0.8
    again = pickle.loads(pickle.dumps(est))
    assert np.array_equal(again.predict(X), est.predict(X))


def test_save_load_round_trip(tmp_path):
    X, y = planted(seed=4)
    Y = np.stack([y, -y + 1], 1)
    est = SparseReLURegressor(n_nonzero=60, n_neurons=10, steps=20, backend="cpu", layers=2).fit(X, Y)
    est.save(tmp_path / "r.safetensors")
    back = relu_iht.load(tmp_path / "r.safetensors")
    assert isinstance(back, SparseReLURegressor)
    assert np.array_equal(back.predict(X), est.predict(X)) and est.predict(X).shape == (len(X), 2)


def test_bad_input_raises_value_error_with_the_engine_message():
    X, y = planted(n=50)
    est = SparseReLURegressor(n_nonzero=4, n_neurons=3, backend="cpu")
    with pytest.raises(NotFittedError):
        est.predict(X)
    Xn = X.copy()
    Xn[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"non-finite value NaN in X at index"):
        est.fit(Xn, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples|rows"):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match="Complex"):
        est.fit(X.astype(np.complex64), y)
    with pytest.raises(ValueError, match=r"n_nonzero = 1000 exceeds the model's weights"):
        SparseReLURegressor(n_nonzero=1000, n_neurons=3, backend="cpu").fit(X, y)
    with pytest.raises(ValueError, match="backend"):
        SparseReLURegressor(backend="tpu").fit(X, y)
    est.fit(X, y)
    with pytest.raises(ValueError, match="expecting 8 features"):
        est.predict(X[:, :5])


def test_any_float_dtype_and_memory_order_give_the_same_fit():
    X, y = planted(seed=5)
    base = SparseReLURegressor(n_nonzero=6, n_neurons=5, backend="cpu").fit(X, y).predict(X)
    for variant in (np.asfortranarray(X), X.astype(np.float64), X[::1, :], np.asfortranarray(X.astype(np.float64))):
        got = SparseReLURegressor(n_nonzero=6, n_neurons=5, backend="cpu").fit(variant, y).predict(X)
        assert np.array_equal(got, base)


def test_the_gil_is_released_during_a_fit():
    X, y = planted(n=20000, d=40, seed=6)
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    start = time.perf_counter()
    SparseReLURegressor(n_nonzero=200, n_neurons=50, steps=15, backend="cpu").fit(X, y)
    end = time.perf_counter()
    done.set()
    t.join()
    during = [s for s in ticks if start < s < end]
    # With the GIL held for the whole solve the thread could not run at all in between.
    assert end - start > 0.05, "the fit was too quick to tell"
    assert len(during) >= 10, f"{len(during)} ticks during a {end - start:.2f} s fit"


def test_fit_image_and_render(tmp_path):
    yy, xx = np.mgrid[0:20, 0:24] / 24.0
    img = (0.5 + 0.4 * np.sin(6 * xx) * np.cos(4 * yy)).astype(np.float32)
    recon, model, info = relu_iht.fit_image(img, features=200, sigma=6.0, unit_coords=True,
                                            n_neurons=20, n_nonzero=300, steps=15, backend="cpu")
    assert recon.shape == (20, 24, 1) and info["psnr"] > 20
    same = relu_iht.render(model, (24, 20))
    assert np.max(np.abs(same - recon)) < 1e-4
    big = relu_iht.render(model, 48)
    assert big.shape == (40, 48, 1)
    model.save(str(tmp_path / "inr.safetensors"))
    again = relu_iht.render(tmp_path / "inr.safetensors", (24, 20))
    assert np.array_equal(again, same)


def test_fit_image_settings_resolve_like_the_cli():
    yy, xx = np.mgrid[0:30, 0:40] / 40.0
    img = (0.5 + 0.4 * np.sin(5 * xx) * np.cos(3 * yy)).astype(np.float32)
    cheap = dict(features=16, n_neurons=4, n_nonzero=12, steps=2, backend="cpu")
    # Photo defaults: unit coordinates (indices over the longer side), sigma 10.
    _, model, _ = relu_iht.fit_image(img, **cheap)
    meta = model.meta()
    assert meta["sigma"] == 10.0 and meta["coord_scale"] == pytest.approx(1 / 40)
    # The paper's: raw pixel indices, sigma 5.
    _, model, _ = relu_iht.fit_image(img, paper=True, **cheap)
    meta = model.meta()
    assert meta["sigma"] == 5.0 and meta["coord_scale"] == 1.0
    with pytest.raises(ValueError, match="epochs"):
        relu_iht.fit_image(img, epochs=2, backend="cpu")


def test_to_torch_when_available():
    torch = pytest.importorskip("torch")
    X, y = planted(seed=7)
    est = SparseReLURegressor(n_nonzero=6, n_neurons=5, backend="cpu").fit(X, y)
    net = est.to_torch()
    got = net(torch.from_numpy(X)).detach().numpy()[:, 0]
    assert np.allclose(got, est.predict(X), rtol=1e-5, atol=1e-5)


# scikit-learn's estimator checks. Each check expected to fail is named with its reason.
EXPECTED_FAILED = {
}


def _checks():
    from sklearn.utils.estimator_checks import parametrize_with_checks

    return parametrize_with_checks(
        [
            SparseReLURegressor(n_nonzero=20, n_neurons=10, backend="cpu"),
            SparseReLUClassifier(n_nonzero=40, n_neurons=10, steps=30, backend="cpu"),
        ],
        expected_failed_checks=lambda est: EXPECTED_FAILED.get(type(est).__name__, {}),
    )


@_checks()
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
