#!/usr/bin/env python3
"""NumPy + OpenBLAS speed baseline for relu-iht.

This is a plain, vectorized NumPy implementation of the same iterative hard
thresholding (IHT) algorithm that the Rust crate implements: recovering a
sparse two-layer ReLU network y = sum_j relu(X w_j) from (X, y).  It exists
only so the README can compare wall-clock times ("Rust solve is N x faster
than NumPy"); it is not part of the crate and is not tuned beyond the obvious
(all heavy work goes through float32 BLAS calls, reductions use float64).

The unknown is a vector x of length m*d with index c = j*d + i (neuron j,
input i).  Block j of the implicit design matrix is A_j = diag(1{X h_j > 0}) X,
where h_j is a random Gaussian generator for steps 0 and 1 and the current
fused weights w_j = x[j*d:(j+1)*d] from step 2 on.

Usage (run without OpenBLAS core-type overrides; they slow current numpy):
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 scripts/numpy_iht.py \
      --n 50000 --d 100 --m 1000 --s 1000 --steps 15 --seed 0
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 scripts/numpy_iht.py \
      --n 50000 --d 100 --gemm-only --tile 256 1000
Prints one JSON line per result on stdout; BLAS details go to stderr.
"""
import argparse
import json
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info


def blas_info():
    """Describe the BLAS numpy uses (library, version, core type, threads)."""
    for p in threadpool_info():
        if p.get("user_api") == "blas":
            desc = f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')})"
            return desc, p.get("num_threads"), p
    return "unknown", None, {}


def sqnorm(v):
    """Squared Euclidean norm accumulated in float64."""
    v = np.asarray(v, dtype=np.float64).ravel()
    return float(v @ v)


def make_data(n, d, m, s, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    pos = rng.choice(d * m, size=s, replace=False)          # planted support in W (d x m)
    vals = rng.standard_normal(s).astype(np.float32)
    H0 = rng.standard_normal((d, m), dtype=np.float32)      # random generators, steps 0-1
    W = np.zeros((d, m), dtype=np.float32)
    W.reshape(-1)[pos] = vals
    y = network_output(X, W)
    return X, y, H0


def network_output(X, W):
    """sum_j relu(X @ W[:, j]), skipping all-zero neurons (they contribute 0)."""
    cols = np.flatnonzero(np.any(W != 0, axis=0))
    if cols.size == 0:
        return np.zeros(X.shape[0], dtype=np.float32)
    return np.maximum(X @ W[:, cols], 0).sum(axis=1, dtype=np.float32)


class Masks:
    """Activation masks 1{X H > 0} for a fixed generator matrix H (d x m)."""

    def __init__(self, X, H, tile):
        self.X, self.H, self.tile = X, H, tile
        m = H.shape[1]
        # Small m: compute every mask once per step and reuse it.
        self.full = (X @ H > 0) if m <= tile else None

    def cols(self, J):
        if self.full is not None:
            return self.full[:, J]
        return self.X @ self.H[:, J] > 0

    def tiles(self):
        m = self.H.shape[1]
        for lo in range(0, m, self.tile):
            hi = min(m, lo + self.tile)
            yield lo, hi, (self.full[:, lo:hi] if self.full is not None
                           else self.X @ self.H[:, lo:hi] > 0)


def build_A(X, masks, idx, d):
    """Explicit n x |idx| matrix: column for c = j*d + i is mask_j * X[:, i]."""
    j, i = np.divmod(idx, d)
    uj, inv = np.unique(j, return_inverse=True)
    return X[:, i] * masks.cols(uj)[:, inv]


def iht_step(X, y, x, H, s, d, tile):
    masks = Masks(X, H, tile)
    # 1. step size from the current support
    S = np.flatnonzero(x)
    if S.size == 0:
        r, mu = -y, 1e-14
    else:
        A_S = build_A(X, masks, S, d)
        r = A_S @ x[S] - y
        g = A_S.T @ r
        mu = sqnorm(g) / (sqnorm(A_S @ g) + 1e-8)
        del A_S
    # 2. full gradient over all m*d coordinates, tiled over neurons
    cand = x.copy()
    for lo, hi, M in masks.tiles():
        G = X.T @ (M * r[:, None])                       # d x t
        cand[lo * d:hi * d] -= np.float32(mu) * G.T.reshape(-1)
    a = np.abs(cand)
    T = np.argpartition(a, a.size - s)[a.size - s:] if s < a.size else np.arange(a.size)
    T = np.sort(T[a[T] > 0])
    x_new = np.zeros_like(x)
    if T.size == 0:
        return x_new
    z0 = cand[T]
    # 3. gradient descent on T with Armijo backtracking.  A trial costs O(n), as in the
    #    Rust solver: A_T (z - mu g) - y = r - mu A_T g, with A_T g formed once per inner step.
    A_T = build_A(X, masks, T, d)
    z = z0.copy()
    r = A_T @ z - y
    f = f_tilde = sqnorm(r)
    for _ in range(10):
        g = A_T.T @ r
        gg = sqnorm(g)
        if gg == 0.0:
            break
        Ag = A_T @ g
        for _ in range(11):
            r_try = r - np.float32(mu) * Ag
            f_try = sqnorm(r_try)
            if f_try <= f - 0.9 * mu * gg:
                z, r, f = z - np.float32(mu) * g, r_try, f_try
                break
            mu /= 2.0
        else:                                            # 11 failed tries: back to z0
            z = z0.copy()
            r, f = A_T @ z - y, f_tilde
    x_new[T] = z                                         # 4.
    return x_new


def solve(X, y, H0, m, s, steps, tile):
    d = X.shape[1]
    x = np.zeros(m * d, dtype=np.float32)
    per_step = []
    for k in range(steps):
        t0 = time.perf_counter()
        H = H0 if k < 2 else np.ascontiguousarray(x.reshape(m, d).T)
        x = iht_step(X, y, x, H, s, d, tile)
        per_step.append(time.perf_counter() - t0)
    return x, per_step


def gemm_bench(n, d, tiles, seed, reps=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    for t in tiles:
        P = rng.standard_normal((n, t), dtype=np.float32)
        H = rng.standard_normal((d, t), dtype=np.float32)
        best_g = best_m = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter(); X.T @ P; best_g = min(best_g, time.perf_counter() - t0)
            t0 = time.perf_counter(); X @ H; best_m = min(best_m, time.perf_counter() - t0)
        flops = 2.0 * n * d * t
        yield {"n": n, "d": d, "t": t, "reps": reps,
               "grad_XtP_seconds": best_g, "grad_XtP_gflops": flops / best_g / 1e9,
               "mask_XH_seconds": best_m, "mask_XH_gflops": flops / best_m / 1e9}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--m", type=int, default=1000)
    ap.add_argument("--s", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--neuron-tile", type=int, default=1024,
                    help="neurons per tile in the full-gradient pass")
    ap.add_argument("--gemm-only", action="store_true",
                    help="only benchmark the sgemm shapes of the gradient and mask products")
    ap.add_argument("--tile", type=int, nargs="+", default=[256, 1000],
                    help="GEMM widths t for --gemm-only")
    args = ap.parse_args()

    blas, threads, raw = blas_info()
    print(f"numpy {np.__version__}; BLAS: {blas}; threads={threads}; "
          f"core type={raw.get('architecture')}; lib={raw.get('filepath')}", file=sys.stderr)
    common = {"blas": blas, "threads": threads}

    if args.gemm_only:
        for rec in gemm_bench(args.n, args.d, args.tile, args.seed):
            print(json.dumps({**rec, **common}), flush=True)
        return

    t0 = time.perf_counter()
    X, y, H0 = make_data(args.n, args.d, args.m, args.s, args.seed)
    t_data = time.perf_counter() - t0
    x, per_step = solve(X, y, H0, args.m, args.s, args.steps, args.neuron_tile)
    yhat = network_output(X, np.ascontiguousarray(x.reshape(args.m, args.d).T))
    err = sqnorm(yhat - y)
    psnr = 20 * np.log10(float(np.max(np.abs(y)))) - 10 * np.log10(err / y.size)
    print(json.dumps({
        "n": args.n, "d": args.d, "m": args.m, "s": args.s, "steps": args.steps,
        "seed": args.seed, "seconds_data": t_data, "seconds_solve": sum(per_step),
        "seconds_per_step": per_step, "psnr": float(psnr),
        "rel_error": float(np.sqrt(err / sqnorm(y))), **common}))


if __name__ == "__main__":
    main()
