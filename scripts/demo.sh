#!/usr/bin/env bash
# demo.sh: watch a STARTTLS-stripping attacker read a legacy MTA's mail, then
# watch stsproxy take that away. Debian 12, as root.
#
# Builds four network namespaces (the integration-test harness,
# tests/integration/lib.sh):
#
#   legacy Postfix --- router --- attacker --- mail server (Postfix + DNS)
#   192.0.2.2          (stsproxy)  strips       mx1.example.test 203.0.113.10
#                                  STARTTLS
#
# Act 1 sends a mail without stsproxy and prints what the attacker captured.
# Act 2 starts stsproxy on the router and sends the same mail again.
# Everything is torn down at the end, also on Ctrl-C.
#
# Needs the peers of tests/integration/install-peers.sh (installed here if
# missing) and build/stsproxy (built here with CMake if missing, after
# scripts/install-deps.sh --build: compilers, libraries, mbed TLS 3.6).
# STSPROXY_BIN overrides the binary. Exit status 0 when both acts showed
# what they should.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
export STSPROXY_BIN=${STSPROXY_BIN:-$here/build/stsproxy}

B='' N=''
if [ -t 1 ]; then
	B=$(tput bold 2>/dev/null || true)
	N=$(tput sgr0 2>/dev/null || true)
fi
banner() { printf '\n%s==== %s ====%s\n' "$B" "$*" "$N"; }
tell() { printf '%s\n' "$*" | fold -s -w 78 | sed 's/^/  /'; }

if [ "$(id -u)" != 0 ]; then
	echo "demo: needs root (it creates network namespaces)" >&2
	exit 1
fi
for cmd in postfix nsd openssl iptables; do
	if ! command -v "$cmd" >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import dnslib' 2>/dev/null; then
		banner "installing the demo's peers (tests/integration/install-peers.sh)"
		bash "$here/tests/integration/install-peers.sh" || exit 1
		break
	fi
done
if [ ! -x "$STSPROXY_BIN" ]; then
	banner "building stsproxy"
	bash "$here/scripts/install-deps.sh" --build || exit 1
	(cd "$here" && cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)") || {
		echo "demo: build failed" >&2
		exit 1
	}
fi

# shellcheck source=tests/integration/lib.sh
. "$here/tests/integration/lib.sh"
it_init 240
ok=0

# show_capture: what the attacker read, as a transcript.
show_capture() {
	local lines
	lines=$(sed -n -e 's/^[0-9.]* #[0-9]* C> /  client  >> /p' \
		-e 's/^[0-9.]* #[0-9]* S> /  server  << /p' \
		-e 's/^[0-9.]* #[0-9]* \*\* \(.*blind relay.*\)/  (\1)/p' \
		-e 's/^[0-9.]* #[0-9]* \*\* \(stripped .*\)/  [ATTACKER \1]/p' "$T/mitm.log" |
		grep -v -e 'server  << 250-[A-Z0-9 ]*$' -e '^  (closed')
	printf '%s\n' "$lines" | head -n 40
	[ "$(printf '%s\n' "$lines" | wc -l)" -gt 40 ] && echo "  ..."
	local c
	c=$(grep -o 'blind relay bytes c2s=[1-9][0-9]* s2c=[0-9]*' "$T/mitm.log" | tail -n 1)
	[ -n "$c" ] && echo "  (after STARTTLS only ciphertext passed: ${c#blind relay bytes })"
	return 0
}

MSG=$T/demo-body.txt
cat >"$MSG" <<'EOF'
Hi Bob,

the merger closes on Friday. Wire the deposit to account DE89 3704 0044 0532 0130 00.
This is SECRET-BODY-demo: please do not forward.

Alice
EOF

banner "building the lab"
tell "Four network namespaces: a legacy Postfix sender (opportunistic TLS, \"may\"), a router, an on-path attacker, and the receiving Postfix for example.test with a certificate from a test CA, plus an authoritative DNS server. Nothing outside these namespaces is touched."
peers_up mx may ipv4

banner "ACT 1: no stsproxy, the attacker strips STARTTLS"
tell "The attacker deletes the STARTTLS line from the mail server's EHLO reply. Postfix thinks the server cannot do TLS and, as opportunistic TLS allows, sends in plaintext."
mitm_start strip
sender_send "$RCPT" "Merger (act 1)" "$MSG"
if mx_wait_mail 1 30; then
	echo
	tell "The mail server received it:"
	echo "  Received: $(mx_received "Merger (act 1)" | cut -c1-150)"
	echo
	tell "${B}What the attacker captured:${N}"
	show_capture
	if mx_received_plain "Merger (act 1)" && mitm_saw_plaintext 'SECRET-BODY-demo'; then
		echo
		tell "=> Envelope, headers and body were read in plaintext, and the sender logged nothing unusual: $(grep -o 'status=sent.*' "$T/client/maillog" | tail -n 1)"
		ok=$((ok + 1))
	fi
else
	tell "act 1: the mail did not arrive (see the logs below)"
	it_diagnostics
fi

banner "ACT 2: the same, with stsproxy on the router"
tell "The router now REDIRECTs outbound TCP/25 to stsproxy (mode upgrade, static policy: example.test requires verified TLS). The legacy sender is unchanged and the attacker keeps stripping STARTTLS."
router_redirect on
proxy_start "$(proxy_config upgrade redirect verify)" >/dev/null
echo "  stsproxy config:"
sed 's/^/    /' "$T/proxy.conf"
mitm_start strip
sender_send "$RCPT" "Merger (act 2)" "$MSG"
if mx_wait_mail 2 30; then
	echo
	tell "The mail server received it:"
	echo "  Received: $(mx_received "Merger (act 2)" | cut -c1-200)"
	echo
	tell "${B}What the attacker captured:${N}"
	show_capture
	echo
	tell "stsproxy's session record:"
	proxy_sessions | tail -n 1 | "$PY" -c '
import json, sys
r = json.loads(sys.stdin.read())
for k in ("client", "dest", "mx", "starttls_advertised", "tls", "tls_version", "tls_cipher",
          "tls_verify", "domains", "messages", "result"):
    if k in r:
        print("    %-20s %s" % (k, r[k]))
' 2>/dev/null || proxy_sessions | tail -n 1 | sed 's/^/    /'
	if mx_received_tls "Merger (act 2)" && ! mitm_saw_plaintext 'SECRET-BODY-demo|^MAIL FROM|^RCPT TO'; then
		echo
		tell "=> stsproxy sent STARTTLS although it was stripped, verified the certificate of mx1.example.test and delivered over TLS. The attacker saw EHLO and STARTTLS, then ciphertext only."
		ok=$((ok + 1))
	fi
else
	tell "act 2: the mail did not arrive through stsproxy (see the logs below)"
	it_diagnostics
fi

banner "tearing down"
if [ "$ok" -eq 2 ]; then
	tell "Demo complete: both acts behaved as described."
	exit 0
fi
tell "Demo incomplete: $ok of 2 acts behaved as described."
exit 1
