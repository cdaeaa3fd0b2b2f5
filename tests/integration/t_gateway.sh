#!/usr/bin/env bash
# t_gateway: stsproxy as a gateway appliance, set up by scripts/gateway-setup.sh.
#
#   client 192.0.2.10 / 2001:db8:1::10
#      |  veth
#   router 192.0.2.1 / 198.51.100.1 (2001:db8:1::1 / 2001:db8:2::1):
#          forwards, gateway-setup.sh up, stsproxy
#      |  veth
#   server 198.51.100.25 / 2001:db8:2::25: aiosmtpd on port 25
#
# For each variant (nft or iptables, REDIRECT or TPROXY) a message sent by
# the client to the server over IPv4 and over IPv6 must arrive with the
# router's address as the SMTP peer: a message that went straight through
# (no interception) would show the client's address. `up` twice must give
# the same ruleset, and `down` must leave the router's ruleset (nft list
# ruleset, iptables-save, ip6tables-save, ip rules, the TPROXY table)
# exactly as it was.
#
# Needs root, ip, nft, iptables, setpriv and python3 with aiosmtpd; exits 77
# without them. STSPROXY_BIN names the binary (default build/stsproxy).
# STSPROXY_TEST_MODE sets the proxy mode (default monitor);
# STSPROXY_TEST_VERBOSE=1 prints stsproxy's log for every variant.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
setup=$REPO/scripts/gateway-setup.sh
mode=${STSPROXY_TEST_MODE:-monitor}
port=10025

[ "$(id -u)" = 0 ] || it_skip "needs root (network namespaces)"
for t in ip nft iptables ip6tables setpriv ss timeout; do
	command -v "$t" >/dev/null 2>&1 || it_skip "$t not installed"
done
sink_require

tag=stsgw$$
nsc=$tag-cli
nsr=$tag-rtr
nss=$tag-srv
T=$(mktemp -d /var/tmp/stsproxy-t_gateway.XXXXXX)
chmod 0755 "$T"

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	ns_down "$nsc" "$nsr" "$nss"
	it_rmtemp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

inr() { ip netns exec "$nsr" "$@"; }

# --- topology -------------------------------------------------------------------
build_net() {
	local ns
	ns_up "$nsc" "$nsr" "$nss"
	for ns in "$nsc" "$nsr" "$nss"; do
		# link-local addresses (and their routes) at once, not some
		# seconds later in the middle of a ruleset comparison
		nsx "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0
	done
	ns_veth "$nsc" "${tag}c" "$nsr" "${tag}rc"
	ns_veth "$nss" "${tag}s" "$nsr" "${tag}rs"
	ns_addr "$nsc" "${tag}c" 192.0.2.10/24 2001:db8:1::10/64
	ns_addr "$nsr" "${tag}rc" 192.0.2.1/24 2001:db8:1::1/64
	ns_addr "$nsr" "${tag}rs" 198.51.100.1/24 2001:db8:2::1/64
	ns_addr "$nss" "${tag}s" 198.51.100.25/24 2001:db8:2::25/64
	ip -n "$nsc" route add default via 192.0.2.1
	ip -n "$nsc" -6 route add default via 2001:db8:1::1
	ip -n "$nss" route add default via 198.51.100.1
	ip -n "$nss" -6 route add default via 2001:db8:2::1
	inr sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	wait_for 10 "link-local addresses on the router" _router_link_local
	sleep 0.5 # let any late kernel route settle before the first snapshot
}
# shellcheck disable=SC2317 # called through wait_for
_router_link_local() { [ "$(ip -n "$nsr" -6 addr show scope link | grep -c fe80)" -ge 2 ]; }

# --- the legacy client ------------------------------------------------------------
write_client() {
	cat >"$T/client.py" <<'EOF'
import smtplib, sys
host, token = sys.argv[1], sys.argv[2]
msg = ("From: legacy@client.example\r\nTo: user@mx.example.net\r\n"
       "Subject: %s\r\n\r\nbody %s\r\n" % (token, token))
with smtplib.SMTP(host, 25, timeout=20, local_hostname="client.example") as s:
    s.sendmail("legacy@client.example", ["user@mx.example.net"], msg)
EOF
}

# --- stsproxy on the router -------------------------------------------------------
write_conf() { # write_conf redirect|tproxy
	mkdir -p "$T/state"
	chown nobody "$T/state"
	cat >"$T/stsproxy.conf" <<EOF
# t_gateway: stsproxy on the router
mode = "$mode";
listen = (
  { kind = "$1"; address = "0.0.0.0"; port = $port; },
  { kind = "$1"; address = "::"; port = $port; }
);
# Nothing answers DNS here: the server's address refuses port 53 at once.
dns = { servers = [ "198.51.100.25" ]; timeout = 1.0; tries = 1; };
log = { format = "json"; file = "-"; level = "debug"; };
state_dir = "$T/state";
EOF
	chmod 0644 "$T/stsproxy.conf"
}

# start_proxy redirect|tproxy: stsproxy on the router (PROXY_PID, stopped
# with proxy_stop); true when it listens on $port.
start_proxy() {
	local caps=()
	write_conf "$1"
	# Unprivileged like the systemd unit; TPROXY (IP_TRANSPARENT) needs
	# CAP_NET_ADMIN, REDIRECT nothing.
	[ "$1" = tproxy ] && caps=(--inh-caps=+net_admin --ambient-caps=+net_admin)
	# not through inr: $! must be the proxy itself, not a subshell
	ip netns exec "$nsr" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"${caps[@]}" "$STSPROXY_BIN" -c "$T/stsproxy.conf" >"$T/proxy.log" 2>&1 &
	PROXY_PID=$!
	# listening, or dead (then stop waiting at once)
	wait_for 10 "stsproxy listening on port $port" _proxy_listening_or_dead
	_proxy_listening
}
_proxy_listening() { inr ss -Hltn "sport = :$port" | grep -q .; }
# shellcheck disable=SC2317 # called through wait_for
_proxy_listening_or_dead() { _proxy_listening || _not_running "$PROXY_PID"; }

# Everything that `down` must give back, counters stripped.
snapshot() {
	{
		echo "## nft"
		inr nft list ruleset
		echo "## iptables"
		inr iptables-save | grep -v '^#'
		echo "## ip6tables"
		inr ip6tables-save | grep -v '^#'
		echo "## rules"
		inr ip -4 rule show
		inr ip -6 rule show
		echo "## routes"
		inr ip -4 route show table all
		inr ip -6 route show table all
	} 2>&1 | sed -E 's/\[[0-9]+:[0-9]+\]/[]/; s/ expires [0-9]+sec//'
}

send_and_check() { # send_and_check label dest router_addr
	local label=$1 dest=$2 via=$3 token peer
	token="t_gateway-$label-$$-$RANDOM"
	if ! ip netns exec "$nsc" timeout 30 "$PY" "$T/client.py" "$dest" "$token" \
		>"$T/client.log" 2>&1; then
		fail "$label: client could not send to $dest: $(tail -1 "$T/client.log")"
		return
	fi
	if ! wait_for 10 "$label at the server" sink_has "$token"; then
		fail "$label: message accepted by someone but not received by the server"
		return
	fi
	peer=$(sink_peer "$token")
	if [ "$peer" = "$via" ]; then
		pass "$label: delivered through stsproxy (server saw $peer)"
	else
		fail "$label: delivered but not through the router's proxy (server saw $peer, want $via)"
	fi
}

variant() { # variant nft|iptables redirect|tproxy
	local backend=$1 method=$2 name="$1/$2" args=()
	[ "$backend" = iptables ] && args+=(--iptables)
	[ "$method" = tproxy ] && args+=(--tproxy)
	step "$name"
	snapshot >"$T/before"

	if ! inr "$setup" up "${args[@]}" >"$T/setup.log" 2>&1; then
		fail "$name: gateway-setup.sh up failed: $(tail -3 "$T/setup.log")"
	fi
	snapshot >"$T/up1"
	inr "$setup" up "${args[@]}" >>"$T/setup.log" 2>&1
	snapshot >"$T/up2"
	if cmp -s "$T/before" "$T/up1"; then
		fail "$name: up changed nothing"
	elif cmp -s "$T/up1" "$T/up2"; then
		pass "$name: up installs rules and is idempotent"
	else
		fail "$name: a second up changed the ruleset"
		diff "$T/up1" "$T/up2" | head -20
	fi

	if start_proxy "$method"; then
		send_and_check "$name IPv4" 198.51.100.25 198.51.100.1
		send_and_check "$name IPv6" 2001:db8:2::25 2001:db8:2::1
	else
		fail "$name: stsproxy ($STSPROXY_BIN) not listening on port $port within 10 s"
		fail "$name: no delivery possible without the proxy"
	fi
	proxy_stop
	if [ -n "${STSPROXY_TEST_VERBOSE:-}" ]; then
		sed 's/^/  | /' "$T/proxy.log"
	elif [ "$IT_FAILS" -gt 0 ] && [ -s "$T/proxy.log" ]; then
		echo "  stsproxy log (last 15 lines):"
		tail -15 "$T/proxy.log" | sed 's/^/  | /'
	fi

	inr "$setup" down >>"$T/setup.log" 2>&1 || fail "$name: gateway-setup.sh down failed"
	snapshot >"$T/after"
	if cmp -s "$T/before" "$T/after"; then
		pass "$name: down restores the ruleset exactly"
	else
		fail "$name: down left the ruleset changed:"
		diff "$T/before" "$T/after" | head -30
	fi
}

# --- main -----------------------------------------------------------------------------
if [ ! -x "$STSPROXY_BIN" ]; then
	say "no stsproxy binary at $STSPROXY_BIN (build it, or set STSPROXY_BIN);"
	say "      the ruleset checks run anyway, every delivery check fails"
fi
build_net
write_client
sink_start "$nss" 198.51.100.25 2001:db8:2::25

for backend in nft iptables; do
	for method in redirect tproxy; do
		variant "$backend" "$method"
	done
done

sink_stop
finish
