#!/usr/bin/env bash
# Fetch mbed TLS 3.6 LTS into a project-local prefix (.deps/mbedtls) on hosts
# whose distribution ships an older mbed TLS (Debian 12 has 2.28, end of life).
#
# Debian 13's 3.6 packages unpack cleanly on Debian 12. We never touch the
# system's apt sources: a private source list, state and cache directory are
# passed with -o options, and the mirror URL is read from the system's own apt
# configuration so no host name is written into the repository.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${MBEDTLS_PREFIX:-$here/.deps/mbedtls}
suite=${MBEDTLS_SUITE:-trixie}
pkgs="libmbedtls-dev libmbedtls21 libmbedx509-7 libmbedcrypto16"

if [ -f "$prefix/usr/include/mbedtls/build_info.h" ] &&
   grep -q 'MBEDTLS_VERSION_MAJOR  *3' "$prefix/usr/include/mbedtls/build_info.h"; then
    echo "fetch-mbedtls: mbed TLS 3 already in $prefix"
    exit 0
fi

# shellcheck source-path=SCRIPTDIR source=apt-mirror.sh
. "$here/scripts/apt-mirror.sh"

mirror=${MBEDTLS_MIRROR:-$(apt_mirror)} || {
    echo "fetch-mbedtls: cannot find a Debian mirror in /etc/apt; set MBEDTLS_MIRROR" >&2
    exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror $suite main" > "$work/sources.list"

aptopts=(-o "Dir::Etc::SourceList=$work/sources.list"
         -o "Dir::Etc::SourceParts=/dev/null"
         -o "Dir::State::Lists=$work/lists"
         -o "Dir::Cache=$work/cache"
         -o "Debug::NoLocking=1"
         -o "APT::Get::List-Cleanup=0")

echo "fetch-mbedtls: $suite from $mirror"
apt-get "${aptopts[@]}" -q update >"$work/update.log" 2>&1 || {
    cat "$work/update.log" >&2
    exit 1
}
(cd "$work/debs" && apt-get "${aptopts[@]}" -q download $pkgs)

rm -rf "$prefix"
mkdir -p "$prefix"
for deb in "$work"/debs/*.deb; do
    dpkg -x "$deb" "$prefix"
done
grep -q 'MBEDTLS_VERSION_MAJOR  *3' "$prefix/usr/include/mbedtls/build_info.h"
echo "fetch-mbedtls: installed into $prefix"
