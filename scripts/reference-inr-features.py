#!/usr/bin/env python3
"""Dumps the paper's INR inputs exactly as the reference code builds them, so relu-iht can be run on
the same data. For each seed:
  --task mnist (default): X (784 × 1500 float32 Fourier features from the reference's
    MNISTINRLoader with mapping_sigma = 2, its B drawn by NumPy from the seed) and y (the pixels of
    load_MNIST's test[1000] in [0, 1]) as OUT/refX{seed}.npy and OUT/refy{seed}.npy;
  --task cifar: X (3072 × 1500 from the reference's CIFAR10INRLoader with mapping_sigma = 5: raw
    (row, column, channel) coordinates, B's channel column N(0, 1)·0.05) and y (the image's values
    in [0, 1], channel-major as the loader orders them) of --cifar-png, fed through ToTensor as the
    harness's run_task.py feeds it, as OUT/refcX{seed}.npy and OUT/refcy{seed}.npy.

It runs inside the harness of ../shared/reference (its NumPy shims and loader patches; see that
README): run it with the harness's virtual environment and REF_REPO set, e.g.

    REF_REPO=/path/to/MLP-IHT.git ~/.cache/relu-iht-reference/venv/bin/python \\
        scripts/reference-inr-features.py --seeds 0-59 --out /tmp/ref-inr
    relu-iht fit --x /tmp/ref-inr/refX0.npy --y /tmp/ref-inr/refy0.npy --m 50 --s 500 \\
        --steps 100 --seed 0 --backend cpu --json   # PSNR = -10 log10(train.mse), peak 1
"""
import argparse
import contextlib
import os
import pathlib
import sys

HARNESS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def seeds(text):
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=seeds, default=seeds("0-2"))
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--mnist-mat", default=os.path.expanduser("~/.cache/relu-iht-reference/data/mnist-original.mat"))
    p.add_argument("--task", choices=("mnist", "cifar"), default="mnist")
    p.add_argument("--cifar-png", default=os.path.expanduser(
        "~/.cache/relu-iht-reference/data/cifar10_foolbox/cifar10_00_3.png"))
    a = p.parse_args()
    sys.path.insert(0, str(HARNESS))
    import refpatch
    import refsrc

    src_dir, _ = refsrc.materialize()
    sys.path.insert(0, src_dir)
    sys.path.insert(0, str(refsrc.SHIMS))
    import numpy as np

    with contextlib.redirect_stdout(sys.stderr):
        import cupy as cp
        import torch

        cp.cuda.Device(0).use()
        torch.cuda.set_device("cuda:0")
        import mnist_loader
        import cifar10_loader
        from torchvision import transforms

        if a.task == "mnist":
            refpatch.apply_loaders(mnist_loader, a.mnist_mat)
            _, _, test, _ = mnist_loader.load_MNIST(bias=False)
        else:
            rgb = refpatch.png_rgb(a.cifar_png)  # HWC uint8
            image = transforms.ToTensor()(rgb).reshape(-1).view(refpatch.TensorLike)
    a.out.mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:
        if a.task == "mnist":
            ds = mnist_loader.MNISTINRLoader(image=test[1000], d=1500, mapping_sigma=2, ws=[], seed=seed)
            stem = ""
        else:
            ds = cifar10_loader.CIFAR10INRLoader(image=image, d=1500, mapping_sigma=5, ws=[], seed=seed)
            stem = "c"
        X = np.stack([ds[i][0] for i in range(len(ds))]).astype(np.float32)
        y = np.array([ds[i][1] for i in range(len(ds))], dtype=np.float32)
        np.save(a.out / f"ref{stem}X{seed}.npy", X)
        np.save(a.out / f"ref{stem}y{seed}.npy", y)


if __name__ == "__main__":
    main()
