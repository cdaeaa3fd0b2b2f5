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

here=$(cd "$(dirname "$0")" && pwd)
src=${STSPROXY_SRC:-$(cd "$here/../.." && pwd)}
bin=${STSPROXY_BIN:-$src/build/stsproxy}
setup=$src/scripts/gateway-setup.sh
mode=${STSPROXY_TEST_MODE:-monitor}
py=/usr/bin/python3
port=10025

skip() { echo "t_gateway: SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
for t in ip nft iptables ip6tables setpriv ss timeout; do
	command -v "$t" >/dev/null 2>&1 || skip "$t not installed"
done
if ! [ -x "$py" ] || ! "$py" -c 'import aiosmtpd' 2>/dev/null; then
	skip "python3-aiosmtpd not installed (apt-get install python3-aiosmtpd)"
fi

tag=stsgw$$
nsc=$tag-cli
nsr=$tag-rtr
nss=$tag-srv
tmp=$(mktemp -d /var/tmp/stsproxy-t_gateway.XXXXXX)
chmod 0755 "$tmp"
pass=0
fail=0
proxy_pid=
server_pid=

log() { echo "t_gateway: $*"; }
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
not_ok() { fail=$((fail + 1)); echo "FAIL - $*"; }

cleanup() {
	local ns p
	for ns in "$nsc" "$nsr" "$nss"; do
		# only processes inside our own namespaces
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	for ns in "$nsc" "$nsr" "$nss"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS CMD...: poll CMD every 0.1 s, bounded.
wait_for() {
	local n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

inr() { ip netns exec "$nsr" "$@"; }

# --- topology -------------------------------------------------------------------
build_net() {
	local ns
	for ns in "$nsc" "$nsr" "$nss"; do
		ip netns add "$ns" || return 1
		ip -n "$ns" link set lo up
		# link-local addresses (and their routes) at once, not some
		# seconds later in the middle of a ruleset comparison
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0
	done
	ip link add "${tag}c" netns "$nsc" type veth peer name "${tag}rc" netns "$nsr" || return 1
	ip link add "${tag}s" netns "$nss" type veth peer name "${tag}rs" netns "$nsr" || return 1
	ip -n "$nsc" addr add 192.0.2.10/24 dev "${tag}c"
	ip -n "$nsc" addr add 2001:db8:1::10/64 dev "${tag}c" nodad
	ip -n "$nsr" addr add 192.0.2.1/24 dev "${tag}rc"
	ip -n "$nsr" addr add 2001:db8:1::1/64 dev "${tag}rc" nodad
	ip -n "$nsr" addr add 198.51.100.1/24 dev "${tag}rs"
	ip -n "$nsr" addr add 2001:db8:2::1/64 dev "${tag}rs" nodad
	ip -n "$nss" addr add 198.51.100.25/24 dev "${tag}s"
	ip -n "$nss" addr add 2001:db8:2::25/64 dev "${tag}s" nodad
	ip -n "$nsc" link set "${tag}c" up
	ip -n "$nsr" link set "${tag}rc" up
	ip -n "$nsr" link set "${tag}rs" up
	ip -n "$nss" link set "${tag}s" up
	ip -n "$nsc" route add default via 192.0.2.1
	ip -n "$nsc" -6 route add default via 2001:db8:1::1
	ip -n "$nss" route add default via 198.51.100.1
	ip -n "$nss" -6 route add default via 2001:db8:2::1
	inr sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	wait_for 10 sh -c "[ \$(ip -n $nsr -6 addr show scope link | grep -c fe80) -ge 2 ]"
	sleep 0.5 # let any late kernel route settle before the first snapshot
}

# --- peers ----------------------------------------------------------------------
write_peers() {
	cat >"$tmp/server.py" <<'EOF'
# Minimal SMTP sink: one JSON line per message, with the SMTP peer address.
import asyncio, json, sys
from aiosmtpd.smtp import SMTP

out, addrs = sys.argv[1], sys.argv[2:]

class Sink:
    async def handle_DATA(self, server, session, envelope):
        rec = {"peer": session.peer[0], "from": envelope.mail_from,
               "rcpt": envelope.rcpt_tos,
               "data": envelope.content.decode("utf-8", "replace")}
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        return "250 2.0.0 OK queued"

async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: SMTP(Sink(), hostname="mx.example.net"), host=addrs, port=25)
    await srv.serve_forever()

asyncio.run(main())
EOF
	cat >"$tmp/client.py" <<'EOF'
import smtplib, sys
host, token = sys.argv[1], sys.argv[2]
msg = ("From: legacy@client.example\r\nTo: user@mx.example.net\r\n"
       "Subject: %s\r\n\r\nbody %s\r\n" % (token, token))
with smtplib.SMTP(host, 25, timeout=20, local_hostname="client.example") as s:
    s.sendmail("legacy@client.example", ["user@mx.example.net"], msg)
EOF
}

start_server() {
	: >"$tmp/received.jsonl"
	ip netns exec "$nss" "$py" "$tmp/server.py" "$tmp/received.jsonl" \
		198.51.100.25 2001:db8:2::25 >"$tmp/server.log" 2>&1 &
	server_pid=$!
	wait_for 10 ip netns exec "$nss" sh -c 'ss -Hltn "sport = :25" | grep -q 198.51.100.25'
}

# --- stsproxy on the router -------------------------------------------------------
write_conf() { # write_conf redirect|tproxy
	mkdir -p "$tmp/state"
	chown nobody "$tmp/state"
	cat >"$tmp/stsproxy.conf" <<EOF
# t_gateway: stsproxy on the router
mode = "$mode";
listen = (
  { kind = "$1"; address = "0.0.0.0"; port = $port; },
  { kind = "$1"; address = "::"; port = $port; }
);
# Nothing answers DNS here: the server's address refuses port 53 at once.
dns = { servers = [ "198.51.100.25" ]; timeout = 1.0; tries = 1; };
log = { format = "json"; file = "-"; level = "debug"; };
state_dir = "$tmp/state";
EOF
	chmod 0644 "$tmp/stsproxy.conf"
}

start_proxy() { # start_proxy redirect|tproxy
	local caps=()
	write_conf "$1"
	# Unprivileged like the systemd unit; TPROXY (IP_TRANSPARENT) needs
	# CAP_NET_ADMIN, REDIRECT nothing.
	[ "$1" = tproxy ] && caps=(--inh-caps=+net_admin --ambient-caps=+net_admin)
	# not through inr: $! must be the proxy itself, not a subshell
	ip netns exec "$nsr" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"${caps[@]}" "$bin" -c "$tmp/stsproxy.conf" >"$tmp/proxy.log" 2>&1 &
	proxy_pid=$!
	# listening, or dead (then stop waiting at once)
	wait_for 10 sh -c "ip netns exec $nsr ss -Hltn 'sport = :$port' | grep -q . ||
		! kill -0 $proxy_pid"
	inr ss -Hltn "sport = :$port" | grep -q .
}

stop_proxy() {
	[ -n "$proxy_pid" ] || return 0
	kill -TERM "$proxy_pid" 2>/dev/null
	wait_for 10 sh -c "! kill -0 $proxy_pid" || kill -KILL "$proxy_pid" 2>/dev/null
	wait "$proxy_pid" 2>/dev/null
	proxy_pid=
}

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
	local label=$1 dest=$2 via=$3 token
	token="t_gateway-$label-$$-$RANDOM"
	if ! ip netns exec "$nsc" timeout 30 "$py" "$tmp/client.py" "$dest" "$token" \
		>"$tmp/client.log" 2>&1; then
		not_ok "$label: client could not send to $dest: $(tail -1 "$tmp/client.log")"
		return
	fi
	if ! wait_for 10 grep -q "$token" "$tmp/received.jsonl"; then
		not_ok "$label: message accepted by someone but not received by the server"
		return
	fi
	local peer
	peer=$("$py" -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if sys.argv[2] in r["data"]: print(r["peer"])' "$tmp/received.jsonl" "$token")
	if [ "$peer" = "$via" ]; then
		ok "$label: delivered through stsproxy (server saw $peer)"
	else
		not_ok "$label: delivered but not through the router's proxy (server saw $peer, want $via)"
	fi
}

variant() { # variant nft|iptables redirect|tproxy
	local backend=$1 method=$2 name="$1/$2" args=()
	[ "$backend" = iptables ] && args+=(--iptables)
	[ "$method" = tproxy ] && args+=(--tproxy)
	log "--- $name"
	snapshot >"$tmp/before"

	if ! inr "$setup" up "${args[@]}" >"$tmp/setup.log" 2>&1; then
		not_ok "$name: gateway-setup.sh up failed: $(tail -3 "$tmp/setup.log")"
	fi
	snapshot >"$tmp/up1"
	inr "$setup" up "${args[@]}" >>"$tmp/setup.log" 2>&1
	snapshot >"$tmp/up2"
	if cmp -s "$tmp/before" "$tmp/up1"; then
		not_ok "$name: up changed nothing"
	elif cmp -s "$tmp/up1" "$tmp/up2"; then
		ok "$name: up installs rules and is idempotent"
	else
		not_ok "$name: a second up changed the ruleset"
		diff "$tmp/up1" "$tmp/up2" | head -20
	fi

	if start_proxy "$method"; then
		send_and_check "$name IPv4" 198.51.100.25 198.51.100.1
		send_and_check "$name IPv6" 2001:db8:2::25 2001:db8:2::1
	else
		not_ok "$name: stsproxy ($bin) not listening on port $port within 10 s"
		not_ok "$name: no delivery possible without the proxy"
	fi
	stop_proxy
	if [ -n "${STSPROXY_TEST_VERBOSE:-}" ]; then
		sed 's/^/  | /' "$tmp/proxy.log"
	elif [ "$fail" -gt 0 ] && [ -s "$tmp/proxy.log" ]; then
		echo "  stsproxy log (last 15 lines):"
		tail -15 "$tmp/proxy.log" | sed 's/^/  | /'
	fi

	inr "$setup" down >>"$tmp/setup.log" 2>&1 || not_ok "$name: gateway-setup.sh down failed"
	snapshot >"$tmp/after"
	if cmp -s "$tmp/before" "$tmp/after"; then
		ok "$name: down restores the ruleset exactly"
	else
		not_ok "$name: down left the ruleset changed:"
		diff "$tmp/before" "$tmp/after" | head -30
	fi
}

# --- main -----------------------------------------------------------------------------
if [ ! -x "$bin" ]; then
	log "FAIL: no stsproxy binary at $bin (build it, or set STSPROXY_BIN);"
	log "      the ruleset checks run anyway, every delivery check fails"
fi
build_net || { log "FAIL: cannot build the namespaces"; exit 1; }
write_peers
start_server || { log "FAIL: SMTP server did not start: $(tail -3 "$tmp/server.log")"; exit 1; }

for backend in nft iptables; do
	for method in redirect tproxy; do
		variant "$backend" "$method"
	done
done

kill "$server_pid" 2>/dev/null
echo "t_gateway: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
