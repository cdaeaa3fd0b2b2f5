#!/usr/bin/env bash
# Build the libFuzzer drivers (tests/fuzz/fuzz_<name>.c) with clang into
# build-fuzz and run each for FUZZ_SECONDS (default 30) over a scratch copy
# of its committed corpus (tests/fuzz/corpus/<name>/), so that new inputs
# never land in the tree. Exits non-zero when a build fails or a fuzzer
# finds a crash, a leak, a timeout or a failed invariant; the reproducer
# and the log stay in build-fuzz/fuzz-out/<name>/.
#
#   tests/fuzz/run.sh                     every driver
#   tests/fuzz/run.sh smtp_reply ehlo     only these
#   FUZZ_SECONDS=300 tests/fuzz/run.sh    longer runs
#   STSPROXY_FUZZ_BUILD=dir               another build directory
#
# Dictionary: tests/fuzz/fuzz_<name>.dict if present, else tests/fuzz/smtp.dict.
# Reproduce a finding: build-fuzz/fuzz_<name> build-fuzz/fuzz-out/<name>/crash-...
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
build=${STSPROXY_FUZZ_BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-30}

if ! command -v clang >/dev/null; then
    echo "fuzz: clang is needed for libFuzzer" >&2
    exit 1
fi

names=()
if [ $# -gt 0 ]; then
    names=("$@")
else
    for src in tests/fuzz/fuzz_*.c; do
        n=${src##*/fuzz_}
        names+=("${n%.c}")
    done
fi
targets=()
for n in "${names[@]}"; do
    if [ ! -f "tests/fuzz/fuzz_$n.c" ]; then
        echo "fuzz: no driver tests/fuzz/fuzz_$n.c" >&2
        exit 1
    fi
    targets+=("fuzz_$n")
done

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSTSPROXY_FUZZ=ON >/dev/null
cmake --build "$build" -j2 --target "${targets[@]}"

failed=()
for n in "${names[@]}"; do
    out="$build/fuzz-out/$n"
    rm -rf "$out"
    mkdir -p "$out/corpus"
    if [ -d "tests/fuzz/corpus/$n" ]; then
        cp -R "tests/fuzz/corpus/$n/." "$out/corpus/"
    fi
    dict=tests/fuzz/smtp.dict
    [ -f "tests/fuzz/fuzz_$n.dict" ] && dict="tests/fuzz/fuzz_$n.dict"
    echo "fuzz: $n for ${secs}s ($(find "$out/corpus" -type f | wc -l) seeds, dict $dict)"
    if "$build/fuzz_$n" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$out/" -dict="$dict" "$out/corpus" >"$out/log" 2>&1; then
        grep -E '^Done|stat::number_of_executed_units|stat::new_units_added' "$out/log" |
            sed 's/^/    /'
    else
        echo "fuzz: $n FAILED, log $out/log" >&2
        grep -E -A25 'ERROR|invariant failed|runtime error' "$out/log" | head -40 >&2 || true
        ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null >&2 || true
        failed+=("$n")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failures in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#names[@]} fuzzers ran ${secs}s without findings"
