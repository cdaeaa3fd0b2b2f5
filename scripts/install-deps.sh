#!/usr/bin/env bash
# Install everything stsproxy needs to build and test on Debian 12 (or 13):
# compilers and libraries from the distribution, mbed TLS 3.6 into the
# project-local prefix, and the real peers the integration tests run
# (Postfix, nsd, nginx, ...). Idempotent; nothing is started on the host.
#
#   scripts/install-deps.sh           everything (scripts/test.sh, .ci/run)
#   scripts/install-deps.sh --build   only what building stsproxy needs
#                                     (scripts/demo.sh on a fresh machine)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
only_build=0
[ "${1:-}" = --build ] && only_build=1

build_pkgs="build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
 libev-dev libc-ares-dev libcurl4-openssl-dev libconfig-dev libcmocka-dev
 ca-certificates debian-archive-keyring openssl"

missing=""
for p in $build_pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: need root to install:$missing" >&2
        exit 1
    fi
    echo "install-deps: installing$missing"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

"$here/scripts/fetch-mbedtls.sh"
[ "$only_build" = 1 ] && exit 0

# Real peers for the integration tests, and podman for the container test.
bash "$here/tests/integration/install-peers.sh"
bash "$here/tests/integration/docker-lib.sh" install
