#!/usr/bin/env bash
# Run all of stsproxy's tests: unit tests and integration tests (real
# Postfix, nsd, nginx in network namespaces), built with ASan + UBSan and
# warnings as errors, plus the format check. Needs root for the namespaces
# (integration tests skip, and say so, without it).
#
#   scripts/test.sh                 install what is missing, build, run all
#   STSPROXY_NO_INSTALL=1 ...       skip the package installation step
#   CTEST_ARGS="-L unit" ...        pass arguments to ctest
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build=${STSPROXY_TEST_BUILD:-build-test}

if [ "${STSPROXY_NO_INSTALL:-0}" != 1 ]; then
    bash scripts/install-deps.sh
fi

bash scripts/check-format.sh

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DSTSPROXY_SANITIZE=ON -DSTSPROXY_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"

# Sanitizer findings must fail the run, leaks included.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# shellcheck disable=SC2086
ctest --test-dir "$build" --output-on-failure --timeout 900 ${CTEST_ARGS:-}
