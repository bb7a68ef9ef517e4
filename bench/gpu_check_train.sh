#!/usr/bin/env bash
# The training part of the GPU check, called by bench/gpu_check.sh (one line
# there folds these rows into its table). Run THERE, from the repository
# root, after gpu_check.sh unpacked .gpu and made its wrappers:
#   1. test_cuda_train (the trainer on CUDA vs the CPU: attention dropout,
#      token dropout, AdamW bit-equal; 20 steps fp32 <= 1e-4, bf16 <= 2e-2;
#      the bf16 linear; NCCL inside the trainer)
#   2. bench/gpu_check_train.py: training tokens/s and MFU of MiniLM-L6 at
#      256 pairs, ours fp32/bf16 vs PyTorch bf16 autocast eager and compiled
# Usage: bash bench/gpu_check_train.sh LOGDIR WRAPDIR SECONDS_LEFT
# Prints one line per row, "STEP|STATE|SECONDS|NOTE", and nothing else on
# stdout (logs go to LOGDIR). Status: written 2026-12-01; has NOT run on a GPU.
set -u
LOG=${1:?LOGDIR}
W=${2:?WRAPDIR}
LEFT=${3:-240}
mkdir -p "$LOG"
T0=$SECONDS
left() { echo $((LEFT - (SECONDS - T0))); }
row() { printf '%s|%s|%s|%s\n' "$1" "$2" "$3" "$4"; }

# ---- 1. the GPU training tests ---------------------------------------------
if [ -x "$W/test_cuda_train" ]; then
  budget=$(( $(left) / 3 < 45 ? $(left) / 3 : 45 )) # the rest is for the benchmark
  if [ "$budget" -ge 10 ]; then
    s=$SECONDS
    GTEST_OUTPUT="xml:$LOG/test_cuda_train.xml" timeout -k 5 "$budget" "$W/test_cuda_train" \
      > "$LOG/test_cuda_train.log" 2>&1
    rc=$?
    nskip=$(grep -cE '^\[  SKIPPED \] .*\(' "$LOG/test_cuda_train.log")
    nfail=$(grep -cE '^\[  FAILED  \] .*\(' "$LOG/test_cuda_train.log")
    case $rc in 0) st=PASS ;; 124|137) st=TIMEOUT ;; *) st="FAIL($rc)" ;; esac
    [ "$nskip" -gt 0 ] && st="$st/GPU-SKIPPED"
    row test_cuda_train "$st" $((SECONDS - s)) "failed $nfail, skipped $nskip; $(grep -E '^(fp32|bf16):' "$LOG/test_cuda_train.log" | tr '\n' ' ' | cut -c1-60)"
  else
    row test_cuda_train SKIP 0 "out of time"
  fi
else
  row test_cuda_train FAIL 0 "not packed (build-gpu/test_cuda_train)"
fi

# ---- 2. throughput against PyTorch -----------------------------------------
if [ ! -x "$W/bench_train_gpu" ]; then
  row "train bench" FAIL 0 "bench_train_gpu not packed"
  exit 0
fi
budget=$(left)
if [ "$budget" -lt 30 ]; then
  row "train bench" SKIP 0 "out of time"
  exit 0
fi
timeout -k 5 "$budget" python3 bench/gpu_check_train.py --ours "$W/bench_train_gpu" \
  --device cuda --batch 256 --steps 10 --warmup 3 --out "$LOG" --timeout 60 \
  > "$LOG/train_bench.log" 2>&1
rc=$?
grep '^ROW|' "$LOG/train_bench.log" | cut -d'|' -f2-
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  row "train bench" TIMEOUT "$budget" "see $LOG/train_bench.log"
elif ! grep -q '^ROW|' "$LOG/train_bench.log"; then
  row "train bench" "FAIL($rc)" 0 "$(tail -1 "$LOG/train_bench.log" | cut -c1-90)"
fi
exit 0
