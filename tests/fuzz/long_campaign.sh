#!/usr/bin/env bash
# The long fuzz campaign (docs/hardening.md): each target of build-fuzz/
# (.ci/fuzz.sh builds them) run to RUNS executions (default 10,000,000), one
# target at a time, under `nice -n 19` (idle CPU only), from a scratch copy of
# its committed corpus. Appends one line per target to LOG (default
# build-fuzz/long_campaign.log): target, executions, seconds, exec/s, result.
# A crash, leak, UB report or timeout leaves its input in build-fuzz/crashes/.
# MAX_TIME (seconds, default 0: none) stops a target there if it has not
# reached RUNS (the log then says how many it did); a target stopped by
# SIGINT/SIGTERM is logged as stopped, not as failed.
#   [MAX_TIME=S] tests/fuzz/long_campaign.sh [RUNS] [target ...]   (default: every target)
set -uo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-10000000}
shift || true
LOG=${LOG:-build-fuzz/long_campaign.log}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls tests/fuzz/corpus))
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=suppressions=$PWD/.ci/lsan.supp:print_suppressions=0
export OMP_NUM_THREADS=1
mkdir -p build-fuzz/crashes
for name in "${targets[@]}"; do
  bin=build-fuzz/fuzz_$name
  [ -x "$bin" ] || { echo "no target $bin" | tee -a "$LOG"; continue; }
  work=build-fuzz/long/$name
  rm -rf "$work" && mkdir -p "$work" && cp tests/fuzz/corpus/"$name"/* "$work"/
  t0=$(date +%s)
  nice -n 19 "$bin" -runs="$RUNS" -max_total_time="${MAX_TIME:-0}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -interrupted_exitcode=72 \
    -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/"$name"- "$work" \
    > "build-fuzz/$name.long.log" 2>&1
  rc=$?
  secs=$(($(date +%s) - t0))
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "build-fuzz/$name.long.log" |
    grep -Eo '[0-9]+$' || echo 0)
  [ -n "$runs" ] || runs=0
  # 72: stopped by SIGINT/SIGTERM (-interrupted_exitcode), no finding
  case $rc in
    0) result="no crash, no hang" ;;
    72) result="stopped by a signal before RUNS, no crash, no hang" ;;
    *) result="FAILED rc=$rc (build-fuzz/$name.long.log)" ;;
  esac
  printf '%s fuzz_%-12s %10s executions in %6ss (%s exec/s): %s\n' "$(date -u +%FT%TZ)" "$name" \
    "$runs" "$secs" "$((runs / (secs > 0 ? secs : 1)))" "$result" | tee -a "$LOG"
done
