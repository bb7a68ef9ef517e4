#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang and runs each one over
# its committed corpus (a regression test: every file must pass) and then for
# a short bounded fuzz (FUZZ_SECONDS each, default 15) from a scratch copy of
# the corpus. Prints the executions reached per target. Any crash, leak, UB
# report or timeout fails the script; the input that did it is kept in
# build-fuzz/crashes/ (add it to tests/fuzz/corpus/<target>/ once fixed).
# Then the short CLI campaigns (tests/fuzz/cli_campaign.sh, 100 mutated files;
# tests/fuzz/kill_campaign.sh, 2 kills per command): docs/hardening.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-15}
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DAF_FUZZ=ON \
  -DAF_WITH_CUDA=OFF -DAF_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release > build-fuzz.log 2>&1 ||
  { tail -30 build-fuzz.log; exit 1; }
cmake --build build-fuzz --target fuzz_all -j"$(nproc)" >> build-fuzz.log 2>&1 ||
  { tail -50 build-fuzz.log; exit 1; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=suppressions=$PWD/.ci/lsan.supp:print_suppressions=0
export OMP_NUM_THREADS=1
mkdir -p build-fuzz/crashes
status=0
for corpus in tests/fuzz/corpus/*/; do
  name=$(basename "$corpus")
  bin=build-fuzz/fuzz_$name
  [ -x "$bin" ] || { echo "fuzz: no target for corpus $name"; status=1; continue; }
  # 1. the corpus as a regression test
  if ! "$bin" -runs=0 -timeout=20 "$corpus" > "build-fuzz/$name.regress.log" 2>&1; then
    echo "fuzz_$name: corpus regression FAILED"; tail -40 "build-fuzz/$name.regress.log"; status=1; continue
  fi
  # 2. a short bounded fuzz from a scratch copy (the committed corpus is not touched)
  work=build-fuzz/work/$name
  rm -rf "$work"; mkdir -p "$work"; cp "$corpus"/* "$work"/
  if ! "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix=build-fuzz/crashes/"$name"- "$work" > "build-fuzz/$name.fuzz.log" 2>&1; then
    echo "fuzz_$name: FAILED"; tail -40 "build-fuzz/$name.fuzz.log"; status=1; continue
  fi
  runs=$(grep -Eo 'Done [0-9]+ runs' "build-fuzz/$name.fuzz.log" | grep -Eo '[0-9]+' || echo "?")
  printf 'fuzz_%-12s corpus %3d files ok; %10s executions in %ss, no crash\n' "$name" \
    "$(ls "$corpus" | wc -l)" "$runs" "$SECONDS_EACH"
done
# 3. the CLI campaigns, short (docs/hardening.md): 100 byte-mutated input
# files through the CLI, and 2 kill -9 per command; the ASan build of
# .ci/sanitize.sh when it is there, else the release build.
AF=build-asan/affinity
[ -x "$AF" ] || AF=build/affinity
if [ -x "$AF" ]; then
  tests/fuzz/cli_campaign.sh -n "${CLI_CASES:-100}" -b "$PWD/$AF" -w "$PWD/build-fuzz/cli" \
    > build-fuzz/cli.log 2>&1 || { echo "cli campaign FAILED"; tail -30 build-fuzz/cli.log; status=1; }
  tail -1 build-fuzz/cli.log
  tests/fuzz/kill_campaign.sh -k "${KILL_EACH:-2}" -b "$PWD/$AF" -w "$PWD/build-fuzz/kill" \
    > build-fuzz/kill.log 2>&1 || { echo "kill campaign FAILED"; cat build-fuzz/kill.log; status=1; }
  cat build-fuzz/kill.log
else
  echo "fuzz: no affinity binary (build/ or build-asan/): CLI campaigns skipped"; status=1
fi
exit $status
