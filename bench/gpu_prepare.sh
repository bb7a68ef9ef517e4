#!/usr/bin/env bash
# Run HERE (the dev VM: nvcc, no GPU). Builds a portable Release for sm_90 into
# build-gpu/ and packs into .gpu/ (git-ignored) what bench/gpu_check.sh needs on
# the GPU machine, which has a driver, CUDA 13 with cuBLAS and PyTorch, but no
# HDF5, OpenBLAS or package registry:
#   .gpu/pack.tar.xz  bin/ (test_*, affinity, bench_*; stripped)
#                     lib/ (every non-glibc shared library they load, from ldd)
#                     tests/data/ (a copy), weights/*.h5 (when they fit)
#   .gpu/MANIFEST     source and build paths compiled into the tests, commit, sizes
# Not packed: libcuda (the driver's), libcublas/libcublasLt (540 MB; found on the
# GPU machine by gpu_check.sh), glibc. cudart is linked statically.
# Usage: bench/gpu_prepare.sh            (env: AF_CUDA_ARCH=90, AF_GPU_BUDGET_MB=60)
# Then carry .gpu to the device and run bench/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ARCH=${AF_CUDA_ARCH:-90}
BUDGET_MB=${AF_GPU_BUDGET_MB:-60}
export PATH="$PATH:/usr/local/cuda/bin"

command -v nvcc >/dev/null || { echo "gpu_prepare: nvcc not found (looked in PATH and /usr/local/cuda/bin)" >&2; exit 1; }

# AF_NATIVE=OFF: the GPU machine's CPU is not this Zen 5; -march=native code
# could die there with SIGILL.
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DAF_WITH_CUDA=ON -DAF_NATIVE=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCH" | tee build-gpu.configure.log | grep -E "affinity:|Error" || true
if ! grep -q "affinity: CUDA kernels ON" build-gpu.configure.log; then
  echo "gpu_prepare: CMake did not enable CUDA (see build-gpu.configure.log)" >&2
  exit 1
fi
rm -f build-gpu.configure.log
cmake --build build-gpu -j2

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/tests" "$STAGE/weights"

bins=()
for f in build-gpu/test_* build-gpu/affinity build-gpu/bench_*; do
  [ -f "$f" ] && [ -x "$f" ] || continue
  cp "$f" "$STAGE/bin/"
  strip --strip-unneeded "$STAGE/bin/$(basename "$f")"
  bins+=("$f")
done
[ ${#bins[@]} -gt 0 ] || { echo "gpu_prepare: no binaries in build-gpu/" >&2; exit 1; }

# Shared libraries: everything ldd resolves except glibc, the driver and cuBLAS.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libmvec\.so|libpthread\.so|libdl\.so|librt\.so|libresolv\.so|libutil\.so|libcuda\.so|libnvidia-|libcudart\.so|libcublas\.so|libcublasLt\.so)'
missing=0
while read -r name arrow path _; do
  [ "$arrow" = "=>" ] || continue
  [[ "$name" =~ $skip ]] && continue # provided by the GPU machine
  if [ "$path" = "not" ]; then
    echo "gpu_prepare: ldd cannot find $name" >&2
    missing=1
    continue
  fi
  if [ ! -e "$STAGE/lib/$name" ]; then
    cp -L "$path" "$STAGE/lib/$name"
    strip --strip-unneeded "$STAGE/lib/$name" 2>/dev/null || true
  fi
done < <(for b in "${bins[@]}"; do ldd "$b"; done | sort -u)
[ "$missing" = 0 ] || { echo "gpu_prepare: unresolved libraries" >&2; exit 1; }

[ -d tests/data ] && cp -r tests/data "$STAGE/tests/"

# The newest glibc symbol version each file needs: gpu_check.sh sets aside a
# packed library that needs a newer glibc than the GPU machine has (Debian 12's
# libstdc++ needs 2.36) and uses the machine's own copy instead.
for f in "$STAGE"/bin/* "$STAGE"/lib/*; do
  v=$(objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  echo "${v:-0} $(basename "$f")"
done > "$STAGE/GLIBC_NEEDS"
glibc=$(cut -d' ' -f1 "$STAGE/GLIBC_NEEDS" | sort -uV | tail -1)

# Model files last, each only if the whole pack still fits the budget.
pack() { tar -C "$STAGE" -cf - . | xz -T2 -6 > .gpu/pack.tar.xz.tmp && mv .gpu/pack.tar.xz.tmp .gpu/pack.tar.xz; }
rm -rf .gpu
mkdir -p .gpu
pack
# The fp32 MiniLM checkpoint (90 MB) never fits the 64 MiB transfer limit, so
# the GPU benchmarks build a MiniLM-shaped model there (bench/encode_gpu.py);
# they need the real catalog names and vocabulary, carried beside the pack.
mkdir -p .gpu/data
SHARED=$ROOT/../shared/datasets
cp "$SHARED/instacart/products.csv" .gpu/data/products.csv
cp "$SHARED/vocab/bert-base-uncased/vocab.txt" .gpu/data/vocab.txt

size=$(du -m .gpu/pack.tar.xz | cut -f1)
{
  echo "source_dir=$ROOT"
  echo "binary_dir=$ROOT/build-gpu"
  echo "commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo -dirty)"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cuda_arch=$ARCH"
  echo "nvcc=$(nvcc --version | tail -1)"
  echo "glibc_needed=$glibc"
  echo "pack_mb=$size"
  echo "binaries=$(cd "$STAGE/bin" && ls | tr '\n' ' ')"
  echo "libs=$(cd "$STAGE/lib" && ls | tr '\n' ' ')"
  echo "weights=$(cd "$STAGE/weights" && ls | tr '\n' ' ')"
} > .gpu/MANIFEST
cat .gpu/MANIFEST
if [ "$size" -gt "$BUDGET_MB" ]; then
  echo "gpu_prepare: .gpu is ${size} MB > ${BUDGET_MB} MB budget" >&2
  exit 1
fi
echo "gpu_prepare: .gpu/ ready (${size} MB). On the GPU machine: carry .gpu, run bench/gpu_check.sh"
