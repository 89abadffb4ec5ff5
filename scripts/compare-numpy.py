#!/usr/bin/env python3
"""Whole-process timings of relu-iht's CPU engine against NumPy + OpenBLAS, alternating.

For each shape it runs, ROUNDS times in turn: `relu-iht planted --backend cpu`, this
repository's `scripts/numpy_iht.py`, and (when found) the shared NumPy peer program, each
under `/usr/bin/time` for wall-clock seconds and peak resident memory. It prints one JSON
line per run and, per shape, the medians and the median of the per-round ratios.

Usage: python3 scripts/compare-numpy.py [--rounds 3] [--peer PATH] [--shape N,D,M,S,STEPS ...]
Needs numpy and threadpoolctl in the Python that runs it, and a release build of relu-iht.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd):
    """Wall seconds and peak RSS (MiB) of a command, via GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M"] + cmd, cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    line = [l for l in out.stderr.splitlines() if l.startswith("TIME ")][-1]
    secs, kib = line.split()[1:]
    return float(secs), int(kib) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peer", default=os.path.join(ROOT, "..", "shared", "bench", "numpy_peer.py"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", nargs="+", default=["50000,100,1000,1000,15"],
                    help="N,D,M,S,STEPS (several allowed)")
    a = ap.parse_args()
    py = sys.executable
    binary = os.path.join(ROOT, "target", "release", "relu-iht")
    for shape in a.shape:
        n, d, m, s, steps = (int(v) for v in shape.split(","))
        progs = {
            "relu-iht": [binary, "planted", "--backend", "cpu", "--n", str(n), "--d", str(d),
                         "--m", str(m), "--s", str(s), "--steps", str(steps),
                         "--seed", str(a.seed)],
            "numpy_iht.py": [py, "scripts/numpy_iht.py", "--n", str(n), "--d", str(d),
                             "--m", str(m), "--s", str(s), "--steps", str(steps),
                             "--seed", str(a.seed)],
        }
        if os.path.exists(a.peer):
            progs["numpy_peer.py"] = [py, a.peer, "--n", str(n), "--d", str(d), "--m", str(m),
                                      "--s", str(s), "--epochs", str(steps),
                                      "--seed", str(a.seed)]
        runs = {k: [] for k in progs}
        for r in range(a.rounds):
            for name, cmd in progs.items():
                secs, mib = timed(cmd)
                runs[name].append((secs, mib))
                print(json.dumps({"shape": shape, "round": r, "program": name,
                                  "seconds": secs, "peak_mib": mib}), flush=True)
        ours = [t for t, _ in runs["relu-iht"]]
        summary = {"shape": shape, "rounds": a.rounds}
        for name, rs in runs.items():
            summary[name] = {"median_seconds": statistics.median(t for t, _ in rs),
                             "median_peak_mib": statistics.median(mb for _, mb in rs)}
            if name != "relu-iht":
                summary[name]["median_ratio_to_relu_iht"] = statistics.median(
                    t / o for (t, _), o in zip(rs, ours))
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
