#!/usr/bin/env bash
# Run THERE: the GPU machine (one H100/H200, driver + CUDA 13 + cuBLAS +
# PyTorch; no HDF5/OpenBLAS, no package registry), in the repository root,
# after bench/gpu_prepare.sh packed .gpu/ here and .gpu was carried over.
#   1. nvidia-smi -L and the GPU's name/driver/memory
#   2. unpack .gpu/pack.tar.xz, find libcublas.so.13, recreate the paths the
#      test binaries were compiled with (source dir, build-gpu/affinity)
#   3. every packed test binary (test_cuda_ops first), GTEST_OUTPUT=xml
#   4. the GPU benchmarks that exist (BENCH_SCRIPTS / bench_*gpu*, bench_*cuda*
#      binaries: bench_cuda_kernels times each kernel)
#   5. a table of every step, then the kernel table; logs under $OUT/gpu_check
#      when $OUT is set.
#   6. ONE results table (bench/gpu_table.py rows from kernels_gpu.py: per-kernel
#      µs / TFLOP/s vs cuDNN SDPA and torch.mm; score_gpu.py: all-pairs top-k at
#      N = 200k and 1M vs the bf16 GEMM floor and torch mm+topk; encode_gpu.py:
#      tokens/s ours fp32/bf16 vs sentence-transformers fp16/bf16 on the 49,688
#      names and 1M synthetic titles; peak device memory per stage)
# Status: extended 2026-12-01 for the fused top-k, the encode pipeline and the
# one table; this version has NOT run on a GPU (none was lent). The Python
# peers' logic was checked on the CPU with AF_BENCH_TINY=1.
# Keeps going after a failure; exits 1 if any step failed. Whole run < 5 min
# (hard deadline below). Usage: bash bench/gpu_check.sh
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
LOG=${OUT:-$ROOT/gpu-logs}/gpu_check
mkdir -p "$LOG"
T0=$SECONDS
DEADLINE=295      # seconds from start: everything must be done by then (< 5 min)
TEST_DEADLINE=60  # tests stop being started after this; the rest is for benchmarks
# Python benchmarks to run when present (the lead may add more here).
BENCH_SCRIPTS="bench/kernels_gpu.py bench/score_gpu.py bench/encode_gpu.py bench/train_gpu.py"
export AF_TABLE=$LOG/table.md # the one results table (bench/gpu_table.py)
rm -f "$AF_TABLE"

steps=() states=() secs=() notes=()
record() { steps+=("$1"); states+=("$2"); secs+=("$3"); notes+=("${4:-}"); }
left() { echo $((DEADLINE - (SECONDS - T0))); }
mintime() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }

# ---- 1. the GPU ------------------------------------------------------------
s=$SECONDS
if timeout 30 nvidia-smi -L > "$LOG/nvidia-smi.log" 2>&1; then
  timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    >> "$LOG/nvidia-smi.log" 2>&1
  record "nvidia-smi" PASS $((SECONDS - s)) "$(tail -1 "$LOG/nvidia-smi.log")"
else
  record "nvidia-smi" FAIL $((SECONDS - s)) "$(tail -1 "$LOG/nvidia-smi.log")"
fi
cat "$LOG/nvidia-smi.log"

# ---- 2. unpack and paths ----------------------------------------------------
s=$SECONDS
X=$ROOT/.gpu/x
unpacked=0
if [ -f .gpu/pack.tar.xz ]; then
  rm -rf "$X" && mkdir -p "$X"
  if tar -C "$X" -xJf .gpu/pack.tar.xz 2> "$LOG/unpack.log" ||
     python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
       .gpu/pack.tar.xz "$X" 2>> "$LOG/unpack.log"; then
    unpacked=1
    record "unpack .gpu" PASS $((SECONDS - s)) "$(grep -E '^(commit|pack_mb|glibc_needed)=' .gpu/MANIFEST | tr '\n' ' ')"
  else
    record "unpack .gpu" FAIL $((SECONDS - s)) "$(tail -1 "$LOG/unpack.log")"
  fi
else
  record "unpack .gpu" FAIL 0 "no .gpu/pack.tar.xz: run bench/gpu_prepare.sh and carry .gpu"
fi

# A packed library needing a newer glibc than this machine's is set aside, so
# the machine's own copy (e.g. libstdc++.so.6) is used instead.
if [ "$unpacked" = 1 ] && [ -f "$X/GLIBC_NEEDS" ]; then
  sysglibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
  aside=""
  if [ -n "$sysglibc" ]; then
    while read -r need f; do
      [ -f "$X/lib/$f" ] || continue
      if [ "$(printf '%s\n%s\n' "$need" "$sysglibc" | sort -V | tail -1)" != "$sysglibc" ]; then
        mkdir -p "$X/lib-aside" && mv "$X/lib/$f" "$X/lib-aside/" && aside="$aside $f"
      fi
    done < "$X/GLIBC_NEEDS"
  fi
  record "glibc" INFO 0 "system ${sysglibc:-unknown}; binaries need $(sed -n 's/^glibc_needed=//p' .gpu/MANIFEST)${aside:+; using the system copy of:$aside}"
fi

# libcublas.so.13 (+ libcublasLt): the system's, CUDA's, or PyTorch's wheel.
find_cublas() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda-13*/lib64 \
           /usr/local/cuda-13*/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [ -e "$d/libcublas.so.13" ] && { echo "$d"; return; }
  done
  d=$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13 /{print $NF; exit}')
  [ -n "$d" ] && { dirname "$d"; return; }
  python3 - 2>/dev/null <<'EOF'
import glob, os, sys
for p in sys.path:
    for hit in glob.glob(os.path.join(p, "nvidia", "*", "lib", "libcublas.so.13")):
        print(os.path.dirname(hit)); sys.exit(0)
EOF
}
CUBLAS_DIR=$(find_cublas)
if [ -n "$CUBLAS_DIR" ]; then
  record "find libcublas.so.13" PASS 0 "$CUBLAS_DIR"
else
  record "find libcublas.so.13" FAIL 0 "not in /usr/local/cuda*, ldconfig or python nvidia/*/lib"
fi
LIBPATH="$X/lib${CUBLAS_DIR:+:$CUBLAS_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export AF_GPU_LIBPATH="$LIBPATH" # for benchmark scripts that start our binaries

# The tests were compiled with absolute paths (AF_SOURCE_DIR, AF_BINARY_DIR,
# AF_CLI_PATH): make them point at this checkout when we can.
src=$(sed -n 's/^source_dir=//p' .gpu/MANIFEST 2>/dev/null)
pathnote="same checkout path"
if [ -n "$src" ] && [ "$src" != "$ROOT" ]; then
  if [ ! -e "$src" ] && mkdir -p "$(dirname "$src")" 2>/dev/null && ln -s "$ROOT" "$src" 2>/dev/null; then
    pathnote="linked $src -> $ROOT"
  elif [ "$(readlink -f "$src")" = "$ROOT" ]; then
    pathnote="$src already -> $ROOT"
  else
    pathnote="cannot link $src: tests reading tests/data may fail"
  fi
  if [ -n "$src" ] && [ ! -e "$(dirname "$src")/shared" ] && [ -d "$ROOT/shared" ]; then
    ln -s "$ROOT/shared" "$(dirname "$src")/shared" 2>/dev/null && pathnote="$pathnote; shared/ linked"
  fi
fi
mkdir -p build-gpu weights
[ -x "$X/bin/affinity" ] && ln -sf "$X/bin/affinity" build-gpu/affinity
for h5 in "$X"/weights/*.h5; do
  [ -f "$h5" ] && [ ! -e "weights/$(basename "$h5")" ] && ln -s "$h5" "weights/$(basename "$h5")"
done
record "paths" INFO 0 "$pathnote"

# Wrappers so that scripts find our binaries with the packed libraries.
W=$X/wrap
mkdir -p "$W"
for b in "$X"/bin/*; do
  [ -f "$b" ] || continue
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$LIBPATH" "$b" > "$W/$(basename "$b")"
  chmod +x "$W/$(basename "$b")"
done
export AF_CLI="$W/affinity"

# NCCL is opened at run time (engine/comm/comm_nccl.c): PyTorch's wheel brings one.
if [ -z "${AF_NCCL_LIBRARY:-}" ]; then
  AF_NCCL_LIBRARY=$(timeout 30 python3 -c "import glob, os, nvidia.nccl as n; print((glob.glob(os.path.join(list(n.__path__)[0], 'lib', 'libnccl.so*')) or [''])[0])" 2>/dev/null || true)
  [ -n "$AF_NCCL_LIBRARY" ] && export AF_NCCL_LIBRARY
fi
record "libnccl" INFO 0 "${AF_NCCL_LIBRARY:-libnccl.so.2 from the loader path}"

# ---- 3. test binaries -------------------------------------------------------
run_test() { # $1 = binary, then its arguments
  local b=$1 name rc s budget summary state
  shift
  name=$(basename "$b")
  budget=$(mintime $((TEST_DEADLINE - (SECONDS - T0))) 60)
  if [ "$budget" -lt 10 ]; then
    record "$name" SKIP 0 "out of time"
    return
  fi
  s=$SECONDS
  ( cd "$ROOT" && LD_LIBRARY_PATH="$LIBPATH" GTEST_OUTPUT="xml:$LOG/$name.xml" \
      timeout -k 5 "$budget" "$b" "$@" ) > "$LOG/$name.log" 2>&1
  rc=$?
  summary="$(grep -E '^\[  PASSED  \]' "$LOG/$name.log" | tail -1 | sed 's/\[  PASSED  \] //')"
  local nfail nskip
  nfail=$(grep -cE '^\[  FAILED  \] .*\(' "$LOG/$name.log")
  nskip=$(grep -cE '^\[  SKIPPED \] .*\(' "$LOG/$name.log")
  if [ "$rc" = 0 ]; then state=PASS; elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then state=TIMEOUT; else state="FAIL($rc)"; fi
  # On a GPU machine only CudaDevice.RefusedClearlyWithoutGpu may skip.
  if [ "$name" = test_cuda_ops ] && [ "$nskip" -gt 1 ]; then state="$state/GPU-SKIPPED"; fi
  if [ "$name" = test_cuda_backward ] && [ "$nskip" -gt 1 ]; then state="$state/GPU-SKIPPED"; fi
  if [ "$name" = test_cuda_score ] && [ "$nskip" -gt 0 ]; then state="$state/GPU-SKIPPED"; fi
  record "$name" "$state" $((SECONDS - s)) "${summary:-no summary}; failed $nfail, skipped $nskip"
  if [ "$state" != PASS ]; then
    echo "---- $name: $state (first failures; full log $LOG/$name.log)"
    grep -E -B2 -A6 'Failure$|\[  FAILED  \]|error' "$LOG/$name.log" | head -60
  fi
}
if [ "$unpacked" = 1 ]; then
  if [ -x "$X/bin/test_cuda_ops" ]; then
    run_test "$X/bin/test_cuda_ops"
  else
    record test_cuda_ops FAIL 0 "not packed"
  fi
  # the backward kernels, the fused AdamW and a one-rank NCCL smoke test
  if [ -x "$X/bin/test_cuda_backward" ]; then
    run_test "$X/bin/test_cuda_backward"
  fi
  # The other suites need ../shared/datasets, which does not travel: the GPU
  # machine runs the GPU tests and the encoder tests that use carried fixtures.
  if [ -x "$X/bin/test_encoder" ]; then
    run_test "$X/bin/test_encoder" \
      "--gtest_filter=EncoderCuda.*:EncoderCudaBf16.*:EncoderBf16.Tiny*:Encoder.Tiny*:Encoder.Rejects*"
  fi
  # CPU-only suites that need no shared data: the op tables and the bf16
  # emulation the GPU kernels are compared with (quick sanity of the pack).
  [ -x "$X/bin/test_cuda_score" ] && run_test "$X/bin/test_cuda_score"
  for t in test_ops_table test_bf16; do
    [ -x "$X/bin/$t" ] && run_test "$X/bin/$t"
  done
fi

# the training tests and the training benchmark (bench/gpu_check_train.sh, <= 110 s so that the
# inference benchmarks below keep ~130 s inside the 5 minutes), as rows of this table
[ -f bench/gpu_check_train.sh ] && while IFS='|' read -r a b c d; do record "$a" "$b" "$c" "$d"; done < <(PATH="$W:$PATH" bash bench/gpu_check_train.sh "$LOG" "$W" "$(mintime "$(left)" 110)")

# ---- 4. benchmarks ----------------------------------------------------------
s=$SECONDS
if timeout 60 python3 -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
    > "$LOG/torch.log" 2>&1; then
  record "python3 torch" PASS $((SECONDS - s)) "$(tail -1 "$LOG/torch.log")"
else
  record "python3 torch" FAIL $((SECONDS - s)) "$(tail -1 "$LOG/torch.log")"
fi
run_bench() { # $1 = name, then the command
  local name=$1 budget s rc state
  shift
  budget=$(mintime "$(left)" 90)
  if [ "$budget" -lt 15 ]; then
    record "$name" SKIP 0 "out of time"
    return
  fi
  s=$SECONDS
  ( cd "$ROOT" && PATH="$W:$PATH" timeout -k 5 "$budget" "$@" ) > "$LOG/$name.log" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then state=PASS; elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then state=TIMEOUT; else state="FAIL($rc)"; fi
  record "$name" "$state" $((SECONDS - s)) "$(grep -v '^\s*$' "$LOG/$name.log" | tail -1 | cut -c1-100)"
  echo "---- $name ($state), last lines:"
  tail -15 "$LOG/$name.log"
}
for py in $BENCH_SCRIPTS; do
  if [ -f "$py" ]; then run_bench "$(basename "$py")" python3 "$py"; else record "$(basename "$py")" SKIP 0 "not in this checkout"; fi
done
for b in "$W"/bench_*gpu* "$W"/bench_*cuda*; do
  # bench_cuda_kernels runs inside kernels_gpu.py (its output is in that log)
  [ "$(basename "$b")" = bench_cuda_kernels ] && [ -f bench/kernels_gpu.py ] && continue
  [ -x "$b" ] && run_bench "$(basename "$b")" "$b"
done

# ---- 5. summary -------------------------------------------------------------
fail=0
for st in "${states[@]}"; do
  case "$st" in PASS|INFO|SKIP) ;; *) fail=1 ;; esac
done
{
  echo
  echo "==== gpu_check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - T0)) s total) ===="
  printf '%-28s %-22s %6s  %s\n' STEP STATE SECONDS NOTE
  for i in "${!steps[@]}"; do
    printf '%-28s %-22s %6s  %s\n' "${steps[$i]}" "${states[$i]}" "${secs[$i]}" "${notes[$i]}"
  done
  echo "logs: $LOG; overall: $([ $fail = 0 ] && echo PASS || echo FAIL)"
  # The one results table (our code and its peer in the same run, ratios,
  # floors, peak device memory per stage).
  if [ -f "$AF_TABLE" ]; then
    echo
    echo "==== results ($(tail -1 "$LOG/nvidia-smi.log" 2>/dev/null)) ===="
    cat "$AF_TABLE"
  fi
  # The per-kernel table (µs, TFLOP/s or GB/s, % of peak) of bench_cuda_kernels.
  if [ -f "$LOG/kernels_gpu.py.log" ]; then
    echo
    echo "==== kernels (bench_cuda_kernels, in kernels_gpu.py.log) ===="
    grep -E '^(op|linear|attention|add|bias)' "$LOG/kernels_gpu.py.log"
  fi
} | tee "$LOG/summary.txt"
exit $fail
