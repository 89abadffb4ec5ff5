"""The model file as a NumPy user meets it: data built with NumPy, `relu-iht fit --save`, the file
read with the `safetensors` package, predictions computed by the README's NumPy snippet (taken from
README.md itself, so the documented code is the tested code) and compared with `relu-iht predict`.

Usage: model_file.py RELU_IHT_BINARY SCRATCH_DIR. Exits non-zero with a message on any mismatch.
"""

import pathlib
import re
import subprocess
import sys

import numpy as np

BIN, DIR = sys.argv[1], pathlib.Path(sys.argv[2])
README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet():
    """The Python block after the README's 'checked by tests/py/model_file.py' marker."""
    text = README.read_text()
    m = re.search(r"checked by tests/py/model_file\.py.*?```python\n(.*?)```", text, re.S)
    assert m, "README.md has no checked NumPy snippet"
    scope = {}
    exec(m.group(1), scope)
    return scope["predict"]


def run(*args):
    out = subprocess.run([BIN, *args], capture_output=True, text=True)
    assert out.returncode == 0, f"relu-iht {' '.join(args)}: {out.stderr}"
    return out.stdout


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


predict = readme_snippet()
rng = np.random.default_rng(0)
n, d, m = 800, 8, 6
X = rng.standard_normal((n, d)).astype(np.float32)
W = np.zeros((d, 3), np.float32)
W[[0, 2, 5, 7], [0, 1, 2, 0]] = [1.5, -2.0, 1.0, 0.7]
y = np.maximum(X @ W, 0).sum(1)
np.save(DIR / "X.npy", X)
np.save(DIR / "Xf.npy", np.asfortranarray(X.astype(np.float64)))
np.save(DIR / "y.npy", y)
labels = (X[:, 0] > 0).astype(np.int64) * 2 + (X[:, 3] > 0.3) - 1  # classes -1, 0, 1, 2
np.save(DIR / "labels.npy", labels)

cases = [
    ("regressor", ["--y", str(DIR / "y.npy"), "--m", str(m), "--s", "6"]),
    ("two layers", ["--y", str(DIR / "y.npy"), "--m", str(m), "--s", "24", "--layers", "2"]),
    ("convex mode (gated)", ["--y", str(DIR / "y.npy"), "--m", str(m), "--s", "12", "--mode", "convex"]),
    ("classifier", ["--y", str(DIR / "labels.npy"), "--classes", "--m", "12", "--s", "80",
                    "--steps", "40", "--step-size", "1"]),
]
for name, args in cases:
    model = DIR / (name.replace(" ", "_") + ".safetensors")
    run("fit", "--x", str(DIR / "Xf.npy"), *args, "--backend", "cpu", "-q", "--save", str(model))
    out = DIR / "p.npy"
    run("predict", "--model", str(model), "--x", str(DIR / "X.npy"), "--out", str(out))
    theirs = np.load(out)
    ours = predict(str(model), X)
    if name == "classifier":
        from safetensors import safe_open
        import json
        with safe_open(str(model), "np") as f:
            classes = np.array(json.loads(f.metadata()["classes"]))
        assert list(classes) == [-1, 0, 1, 2], classes
        ours = classes[ours.argmax(1)]
        assert theirs.dtype == np.int64, theirs.dtype
        agree = float((ours == theirs).mean())
        assert agree == 1.0, f"{name}: labels agree on {agree:.4f} of rows"
        acc = float((theirs == labels).mean())
        assert acc > 0.6, f"{name}: training accuracy {acc}"
    else:
        assert ours.shape == (n, 1) and theirs.shape == (n,), (ours.shape, theirs.shape)
        diff = rel(ours[:, 0], theirs)
        assert diff <= 1e-5, f"{name}: relative difference {diff:.2e} between NumPy and relu-iht predict"
        fit_err = rel(theirs, y)
        assert fit_err < 0.9, f"{name}: relative training error {fit_err}"
    print(f"{name}: NumPy and relu-iht predict agree")
