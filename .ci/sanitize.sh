#!/usr/bin/env bash
# The whole ctest suite under AddressSanitizer + UndefinedBehaviorSanitizer
# (-fsanitize=address,undefined,float-cast-overflow, -fno-sanitize-recover),
# CUDA off: library, CLI and tests built in build-asan/. LeakSanitizer is on;
# third-party leaks are suppressed by .ci/lsan.supp (nothing of ours).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DAF_SANITIZE=ON -DAF_WITH_CUDA=OFF -DCMAKE_BUILD_TYPE=Release \
  > build-asan.log 2>&1 || { tail -30 build-asan.log; exit 1; }
cmake --build build-asan -j"$(nproc)" >> build-asan.log 2>&1 || { tail -50 build-asan.log; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/.ci/lsan.supp:print_suppressions=0
# The mpirun-launched tests (Comm.*, DataParallel.*) run without leak checking:
# OpenMPI's components (dlopened, without frame pointers) leave allocations
# whose stacks LeakSanitizer cannot name, so no suppression can match them.
# Our code on those paths is leak-checked by the single-process tests of the
# same functions (af_comm's single backend, training, scoring).
MPI_TESTS='^(Comm|DataParallel)\.'
ctest --test-dir build-asan --output-on-failure -j2 --timeout 1500 -E "$MPI_TESTS"
ASAN_OPTIONS=${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0} \
  ctest --test-dir build-asan --output-on-failure -j2 --timeout 1500 -R "$MPI_TESTS"
