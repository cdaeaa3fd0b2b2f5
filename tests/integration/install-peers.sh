#!/usr/bin/env bash
# install-peers.sh: install the real servers the integration tests and
# scripts/demo.sh run inside network namespaces (Debian 12, as root).
#
# Nothing is started or left running on the host: a temporary
# /usr/sbin/policy-rc.d that exits 101 stops every package from starting its
# service, and it is removed again (an existing one is restored) even when
# apt fails. Postfix is preseeded to "No configuration" (the tests write their
# own config directories). Idempotent; with everything present it only checks
# and exits, without touching apt.
set -euo pipefail

PKGS=(
	postfix swaks nsd unbound nginx-light stunnel4 haproxy
	python3 python3-dnslib python3-aiosmtpd python3-prometheus-client
	iptables nftables iproute2 procps
	openssl ca-certificates faketime
	libnet-ssleay-perl libio-socket-ssl-perl # swaks --tls, for debugging by hand
)

if [ "$(id -u)" != 0 ]; then
	echo "install-peers: must run as root" >&2
	exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${PKGS[@]}"; do
	installed "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-peers: all ${#PKGS[@]} packages already installed"
	exit 0
fi
echo "install-peers: installing ${missing[*]}"

policy=/usr/sbin/policy-rc.d
backup=
if [ -e "$policy" ]; then
	backup=$(mktemp /tmp/policy-rc.d.XXXXXX)
	cp -a "$policy" "$backup"
fi
restore_policy() {
	if [ -n "$backup" ]; then
		mv -f "$backup" "$policy"
	else
		rm -f "$policy"
	fi
}
trap restore_policy EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
printf '#!/bin/sh\n# install-peers.sh: start no services while installing\nexit 101\n' >"$policy"
chmod 755 "$policy"

export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"

# Check, never kill: a service running on the host now was not started by us
# (policy-rc.d forbade it) but would disturb nothing in the namespaces.
for d in master nsd unbound nginx haproxy stunnel4; do
	if pgrep -x "$d" >/dev/null 2>&1; then
		echo "install-peers: note: a '$d' process is running on the host (not started by this script)"
	fi
done
echo "install-peers: done"
