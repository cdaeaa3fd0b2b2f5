#!/usr/bin/env bash
# Fail if any C file differs from the committed .clang-format style.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find proxy policy conf tests -name '*.[ch]')
[ -n "$files" ] || exit 0
if ! command -v clang-format >/dev/null; then
    echo "check-format: clang-format not installed" >&2
    exit 1
fi
# shellcheck disable=SC2086
clang-format --dry-run -Werror $files
echo "check-format: $(echo "$files" | wc -w) files ok"
