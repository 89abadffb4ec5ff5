#!/usr/bin/env python3
"""NumPy + OpenBLAS speed baseline for relu-iht.

This is a plain, vectorized NumPy implementation of the same iterative hard
thresholding (IHT) algorithm that the Rust crate implements: recovering a
sparse two-layer ReLU network y = sum_j relu(X w_j) from (X, y).  It exists
only so the README can compare wall-clock times ("Rust solve is N x faster
than NumPy"); it is not part of the crate. It is written as a practitioner who
knows the algorithm would write it: every heavy product is a float32 BLAS call
(reductions in float64), dead neurons are skipped, the masks of a step are
formed once (and with h_j = w_j they give the model output for free), the
gradient on the support is read off the full gradient, the support matrix
A_T is formed once per step for the inner steps, and with h_j = w_j a neuron
whose only weight is a at input i (most of them) has its mask and output read
off X+ = max(X, 0) and X- = min(X, 0) (two GEMVs for all such neurons).

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


def network_output(X, W, block=4096):
    """sum_j relu(X @ W[:, j]), skipping all-zero neurons (they contribute 0); rows in blocks,
    so no n x m temporary is allocated (and faulted in) at once."""
    cols = np.flatnonzero(np.any(W != 0, axis=0))
    out = np.zeros(X.shape[0], dtype=np.float32)
    if cols.size == 0:
        return out
    Wc = np.ascontiguousarray(W[:, cols])
    Z = np.empty((min(block, X.shape[0]), cols.size), dtype=np.float32)
    for lo in range(0, X.shape[0], block):
        z = Z[:min(block, X.shape[0] - lo)]
        np.matmul(X[lo:lo + block], Wc, out=z)
        np.maximum(z, 0, out=z)
        z.sum(axis=1, dtype=np.float32, out=out[lo:lo + z.shape[0]])
    return out


def live_masks(XT, H, tile, own_weights, split=None):
    """Masks 1{X h_j > 0} of the live neurons (h_j != 0; a dead neuron's mask, column block
    and gradient are all zero, so skipping it is exact) as an (L + 1) x n bool matrix whose
    last row (for "not live") is all false, and, when H is the iterate's own sparse weights,
    sum_j relu(X h_j) over them (the model output) and each live neuron's sign class (below).
    Random generators take a GEMM per tile of neurons. With h_j = w_j, a neuron whose only
    weight is a at input i has the mask 1{sign(a) X[:, i] > 0} and the output relu(a X[:, i]) =
    a X+[:, i] (a > 0) or a X-[:, i] (a < 0), X+ = max(X, 0), X- = min(X, 0): its mask row is
    copied from a precomputed one and all such outputs are two GEMVs (`split` holds X+, X- and
    the two sign masks); other neurons take one small product over their nonzeros."""
    live = np.flatnonzero(np.any(H != 0, axis=0))
    n = XT.shape[1]
    MT = np.zeros((live.size + 1, n), dtype=bool)
    out = np.zeros(n, dtype=np.float32)
    if own_weights:
        Xp, Xm, MpT, MmT = split
        HL = H[:, live]
        single = np.count_nonzero(HL, axis=0) == 1
        sign = np.zeros(live.size, dtype=np.int8)           # +1 / -1: single weight; 0: other
        ls = np.flatnonzero(single)
        if ls.size:
            inp = np.argmax(HL[:, ls] != 0, axis=0)
            val = HL[inp, ls]
            pos = val > 0
            MT[ls[pos]] = MpT[inp[pos]]
            MT[ls[~pos]] = MmT[inp[~pos]]
            sign[ls] = np.where(pos, 1, -1)
            d = XT.shape[0]
            ap = np.bincount(inp[pos], weights=val[pos], minlength=d).astype(np.float32)
            am = np.bincount(inp[~pos], weights=val[~pos], minlength=d).astype(np.float32)
            out += Xp @ ap
            out += Xm @ am
        for l in np.flatnonzero(~single):
            nz = np.flatnonzero(HL[:, l])
            z = HL[nz, l] @ XT[nz]
            np.greater(z, 0, out=MT[l])
            np.maximum(z, 0, out=z)
            out += z
        return live, MT, out, sign
    HT = np.ascontiguousarray(H[:, live].T)
    for lo in range(0, live.size, tile):
        Z = HT[lo:lo + tile] @ XT                        # float32 GEMM, t x n
        np.greater(Z, 0, out=MT[lo:lo + Z.shape[0]])
    return live, MT, None, None


def support_rows(XT, MT, slot, idx, d, buf):
    """A_T^T as an explicit |idx| x n float32 matrix: row c = j*d + i is mask_j * X[:, i],
    written into `buf` (kept across steps, so no fresh pages each step)."""
    j, i = np.divmod(idx, d)
    A = buf[:idx.size]
    for row, (ii, jj) in enumerate(zip(i, slot[j])):
        np.multiply(XT[ii], MT[jj], out=A[row])
    return A


def masked_product(XT, MT, slot, idx, vals, d, classes=None):
    """A_idx v = sum_j mask_j * (X v_j), one small product per neuron over its entries; with
    `classes` (the sign of each neuron's single weight under h_j = w_j, 0 for others, and X+,
    X-), the entries of single-weight neurons (whose one support entry is that weight's input)
    go through two GEMVs, X+ v+ + X- v-."""
    j, i = np.divmod(idx, d)
    out = np.zeros(XT.shape[1], dtype=np.float32)
    if idx.size == 0:
        return out
    if classes is not None:
        sign, Xp, Xm = classes
        sj = sign[j]
        for sg, Xs in ((1, Xp), (-1, Xm)):
            sel = sj == sg
            out += Xs @ np.bincount(i[sel], weights=vals[sel], minlength=d).astype(np.float32)
        keep = sj == 0
        j, i, vals = j[keep], i[keep], vals[keep]
        if j.size == 0:
            return out
    starts = np.flatnonzero(np.r_[True, j[1:] != j[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], j.size]):
        out += (vals[a:b] @ XT[i[a:b]]) * MT[slot[j[a]]]
    return out


def iht_step(X, XT, y, x, H, s, d, tile, own_weights, buf, split):
    """One step. `own_weights`: H is the iterate's own weights (h_j = w_j), so the model
    output comes with the masks; otherwise (random generators) it is one more product."""
    m = H.shape[1]
    live, MT, out, sign = live_masks(XT, H, tile, own_weights, split)
    slot = np.full(m, live.size)                         # not live: the all-false row
    slot[live] = np.arange(live.size)
    classes = None
    if sign is not None:
        sign_of = np.zeros(m, dtype=np.int8)
        sign_of[live] = sign
        classes = (sign_of, split[0], split[1])
    S = np.flatnonzero(x)
    if out is None:
        out = masked_product(XT, MT, slot, S, x[S], d)
    r = out - y
    # 1-2. the gradient over the live neurons, tile by tile: G[l] = (M_l * r) X
    G = np.empty((live.size, d), dtype=np.float32)
    P = np.empty((min(tile, live.size), XT.shape[1]), dtype=np.float32)
    for lo in range(0, live.size, tile):
        t = min(tile, live.size - lo)
        np.multiply(MT[lo:lo + t], r, out=P[:t])
        np.matmul(P[:t], X, out=G[lo:lo + t])
    del P
    grad = np.zeros(m * d, dtype=np.float32)
    grad.reshape(m, d)[live] = G
    if S.size == 0:
        mu = 1e-14
    else:
        g = grad[S]                                      # A_S^T r, read off the gradient
        mu = sqnorm(g) / (sqnorm(masked_product(XT, MT, slot, S, g, d, classes)) + 1e-8)
    cand = x - np.float32(mu) * grad
    a = np.abs(cand)
    T = np.argpartition(a, a.size - s)[a.size - s:] if s < a.size else np.arange(a.size)
    T = np.sort(T[a[T] > 0])
    x_new = np.zeros_like(x)
    if T.size == 0:
        return x_new
    z0 = cand[T]
    # 3. gradient descent on T with Armijo backtracking; A_T formed once per step, and a trial
    #    costs O(n): A_T (z - mu g) - y = r - mu A_T g.
    AT = support_rows(XT, MT, slot, T, d, buf)
    del MT
    z = z0.copy()
    r = z @ AT - y
    f = f_tilde = sqnorm(r)
    r0 = r.copy()
    for _ in range(10):
        g = AT @ r
        gg = sqnorm(g)
        if gg == 0.0:
            break
        Ag = g @ AT
        for _ in range(11):
            r_try = r - np.float32(mu) * Ag
            f_try = sqnorm(r_try)
            if f_try <= f - 0.9 * mu * gg:
                z, r, f = z - np.float32(mu) * g, r_try, f_try
                break
            mu /= 2.0
        else:                                            # 11 failed tries: back to z0
            z, r, f = z0.copy(), r0.copy(), f_tilde
    x_new[T] = z                                         # 4.
    return x_new


def solve(X, y, H0, m, s, steps, tile):
    d = X.shape[1]
    XT = np.ascontiguousarray(X.T)
    x = np.zeros(m * d, dtype=np.float32)
    buf = np.empty((s, X.shape[0]), dtype=np.float32)
    # For single-weight neurons under h_j = w_j (see live_masks): X+, X- and the sign masks.
    split = (np.maximum(X, 0), np.minimum(X, 0), XT > 0, XT < 0)
    per_step = []
    for k in range(steps):
        t0 = time.perf_counter()
        H = H0 if k < 2 else np.ascontiguousarray(x.reshape(m, d).T)
        x = iht_step(X, XT, y, x, H, s, d, tile, own_weights=k >= 2, buf=buf, split=split)
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
    ap.add_argument("--neuron-tile", type=int, default=256,
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
