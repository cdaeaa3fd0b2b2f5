# shellcheck shell=bash
# apt_mirror: print the Debian mirror of this system's own apt configuration
# (the first URI that is not a security archive; deb822 .sources first, the
# Debian 12 default, then one-line .list files), or return 1. Sourced by
# scripts/fetch-mbedtls.sh and tests/integration/docker-lib.sh, so that no
# host name is ever written into the repository.
apt_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
		[ -n "$uri" ] && { echo "$uri"; return 0; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/ && $i !~ /security/) { print $i; exit } }' "$f")
		[ -n "$uri" ] && { echo "$uri"; return 0; }
	done
	return 1
}
