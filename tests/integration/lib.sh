# shellcheck shell=bash disable=SC2034,SC2015
# (SC2034: variables are for the tests that source this; SC2015: "a && b || it_abort" is meant)
# lib.sh: integration-test harness for stsproxy. Source it from a t_*.sh test.
#
# Builds four network namespaces with real peers (see README.md):
#
#   client (legacy Postfix) -- router (stsproxy) -- mitm (attacker) -- mx (Postfix + nsd)
#
# Everything a test makes is named after the test's PID (prefix "st$$"),
# lives in one temp dir and is removed by topo_down, which runs from the
# EXIT/INT/TERM traps even when the test fails or times out. Every wait is
# bounded (wait_for), every test has a watchdog (it_init TIMEOUT).
#
# Stand-alone tests (t_gateway, t_docker) build small topologies of their own
# from the ns_* pieces and use an aiosmtpd sink instead (last section); they
# have no watchdog (CTest's TIMEOUT bounds them).
#
# Contract for tests: exit 0 pass, 1 fail, 77 skip (not root, peer missing).
# Each assertion prints one "PASS: ..." or "FAIL: ..." line.
#
# Debugging: IT_KEEP=1 keeps the temp dir; IT_HOLD=SECONDS keeps the whole
# topology up that long before tearing it down (ip netns exec into it);
# IT_VERBOSE=1 traces commands.

IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${STSPROXY_SRC:-$(cd "$IT_DIR/../.." && pwd)}
STSPROXY_BIN=${STSPROXY_BIN:-$REPO/build/stsproxy}
PY=/usr/bin/python3 # the system python: python3-dnslib lives there, not in a pyenv
MITM_PY=$IT_DIR/mitm.py

# ---- names (unique per run; interface names stay <= 15 chars) ---------------
P=st$$
NS_CLIENT=$P-client
NS_ROUTER=$P-router
NS_MITM=$P-mitm
NS_MX=$P-mx
IF_C=${P}c0  # client  -> router
IF_RC=${P}r0 # router  -> client
IF_RM=${P}r1 # router  -> mitm
IF_MR=${P}m0 # mitm    -> router
IF_MX=${P}m1 # mitm    -> mx
IF_X=${P}x0  # mx      -> mitm

# ---- addresses: documentation ranges only -----------------------------------
CLIENT4=192.0.2.2 ROUTER4_C=192.0.2.1 ROUTER4_M=198.51.100.1 MITM4_R=198.51.100.2
MITM4_X=203.0.113.1 MX1_4=203.0.113.10 MX2_4=203.0.113.11 DNS4=203.0.113.53
CLIENT6=2001:db8:2::2 ROUTER6_C=2001:db8:2::1 ROUTER6_M=2001:db8:51::1 MITM6_R=2001:db8:51::2
MITM6_X=2001:db8:113::1 MX1_6=2001:db8:113::10 MX2_6=2001:db8:113::11 DNS6=2001:db8:113::53
PROXY_PORT=10025
MITM_PORT=10026
MAIL_DOMAIN=example.test
RCPT=user@example.test
FROM=alice@client.test

# stsproxy's records (README "Logs", docs/events.md): one JSON line
# {"type":"session",...} per session, {"type":"event","event":NAME,...} per finding.
PROXY_SESSION_RE='"type": *"session"'

T=
IT_FAILS=0
IT_PASSES=0
IT_START_US=${EPOCHREALTIME/[.,]/}
IT_TOPO=0
IT_WATCHDOG=
IT_DOWN=0
PROXY_PID='' MITM_PID='' NSD_PID='' NGINX_PID='' SINK_PID=''

# ---- messages and assertions -------------------------------------------------
_now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$((10#$t))"; }
_elapsed() {
	local d=$(($(_now_us) - IT_START_US))
	printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000))
}
say() { printf '[%6ss] %s\n' "$(_elapsed)" "$*"; }
step() { printf '\n[%6ss] == %s\n' "$(_elapsed)" "$*"; }
pass() { IT_PASSES=$((IT_PASSES + 1)); printf '[%6ss] PASS: %s\n' "$(_elapsed)" "$*"; }
fail() { IT_FAILS=$((IT_FAILS + 1)); printf '[%6ss] FAIL: %s\n' "$(_elapsed)" "$*"; }

# check DESC CMD...      PASS when CMD succeeds
check() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; return 0; fi
	fail "$desc"
	return 1
}
# check_not DESC CMD...  PASS when CMD fails
check_not() {
	local desc=$1
	shift
	if "$@"; then fail "$desc"; return 1; fi
	pass "$desc"
	return 0
}
# require DESC CMD...    like check, but a failure ends the test (exit 1)
require() {
	check "$@" && return 0
	it_abort "a required step failed: $1"
}
it_abort() {
	say "ABORT: $*"
	it_diagnostics
	printf 'RESULT: FAIL (%d passed, %d failed; aborted)\n' "$IT_PASSES" "$IT_FAILS"
	exit 1
}
it_skip() {
	echo "SKIP: $*"
	exit 77
}
# finish: print the result line and exit 0/1
finish() {
	if [ "$IT_FAILS" -gt 0 ]; then
		it_diagnostics
		printf '\nRESULT: FAIL (%d passed, %d failed)\n' "$IT_PASSES" "$IT_FAILS"
		exit 1
	fi
	printf '\nRESULT: PASS (%d assertions)\n' "$IT_PASSES"
	exit 0
}

# Tail of every log we have, for a failing test.
it_diagnostics() {
	[ -n "$T" ] && [ -d "$T" ] || return 0
	local f
	for f in "$T/client/maillog" "$T/mx/maillog" "$T/mitm.log" "$T/proxy.out" "$T/proxy.log" \
		"$T/dns/nsd.log" "$T/receiver.log"; do
		[ -s "$f" ] || continue
		echo "---- last lines of ${f#"$T"/} ----"
		tail -n 30 "$f" | cut -c1-400
	done
	echo "---- end of logs (IT_KEEP=1 keeps $T) ----"
}

# wait_for SECONDS DESC CMD...: poll CMD every 0.2 s until it succeeds.
# Bounded by wall time (SECONDS, may have a fraction) and by a count of tries.
# Returns 1 (and says so) when the deadline passes.
wait_for() {
	local secs=$1 desc=$2 i max end
	shift 2
	max=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 5 + 1 }')
	end=$(($(_now_us) + $(awk -v s="$secs" 'BEGIN { printf "%d", s * 1000000 }')))
	for ((i = 0; i <= max; i++)); do
		"$@" && return 0
		[ "$(_now_us)" -ge "$end" ] && break
		sleep 0.2
	done
	say "timed out after ${secs}s waiting for: $desc"
	return 1
}

# nsx NS CMD...: run CMD in namespace NS. Never background nsx itself ($! would
# be a subshell): use "ip netns exec NS CMD &" for daemons we must kill by pid.
nsx() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# ---- set-up and tear-down ----------------------------------------------------
# it_init [TIMEOUT_SECONDS]: skip unless root with the peers installed; make the
# temp dir, the traps and the watchdog that ends a hung test.
it_init() {
	local timeout=${1:-${IT_TIMEOUT:-90}} cmd
	[ "${IT_VERBOSE:-0}" = 1 ] && set -x
	[ "$(id -u)" = 0 ] || it_skip "needs root (network namespaces)"
	for cmd in ip iptables ip6tables postfix postconf postqueue sendmail nsd openssl ss awk; do
		command -v "$cmd" >/dev/null 2>&1 || it_skip "$cmd missing: run tests/integration/install-peers.sh"
	done
	[ -x "$PY" ] || it_skip "$PY missing: run tests/integration/install-peers.sh"
	"$PY" -c 'import dnslib' 2>/dev/null || it_skip "python3-dnslib missing: run tests/integration/install-peers.sh"
	ip netns add "$P-probe" 2>/dev/null || it_skip "cannot create network namespaces here"
	ip netns del "$P-probe"
	set -o pipefail
	T=$(mktemp -d /tmp/stsproxy-it.XXXXXX) || it_abort "mktemp failed"
	chmod 755 "$T" # the postfix and nobody users traverse it
	IT_HOST_FW=$(_host_firewall)
	trap 'topo_down' EXIT
	trap 'trap - INT; it_abort "interrupted"' INT
	trap 'trap - TERM; it_abort "terminated (watchdog timeout or signal)"' TERM
	_watchdog "$timeout"
	say "test $(basename "$0"): prefix $P, temp dir $T, timeout ${timeout}s"
}

_host_firewall() {
	{
		iptables-save 2>/dev/null | grep -v '^#'
		ip6tables-save 2>/dev/null | grep -v '^#'
		nft list ruleset 2>/dev/null
	} | md5sum
}

# The watchdog TERMs the test after TIMEOUT seconds (the TERM trap cleans up)
# and KILLs it if cleanup itself hangs for 30 s more.
_watchdog() {
	local secs=$1 main=$$
	(
		trap 'kill "$sp" 2>/dev/null; exit 0' TERM
		sleep "$secs" &
		sp=$!
		wait "$sp"
		echo "WATCHDOG: test exceeded ${secs}s, terminating it" >&2
		kill -TERM "$main" 2>/dev/null
		# the main shell acts on TERM only after its foreground command ends
		for c in $(ps -o pid= --ppid "$main" 2>/dev/null); do
			[ "$c" = "$BASHPID" ] || kill -TERM "$c" 2>/dev/null
		done
		sleep 30 &
		sp=$!
		wait "$sp"
		kill -KILL "$main" 2>/dev/null
	) &
	IT_WATCHDOG=$!
}

# ---- namespaces: the building blocks of topo_up and of the stand-alone tests ----
# ns_up NS...: add each namespace (it must not exist yet) with its loopback up.
ns_up() {
	local ns
	for ns; do
		[ -e "/var/run/netns/$ns" ] && it_abort "namespace $ns already exists"
		ip netns add "$ns" || it_abort "ip netns add $ns failed"
		IT_TOPO=1
		ip -n "$ns" link set lo up
	done
}

# ns_veth NS_A IF_A NS_B IF_B: a veth pair, IF_A in NS_A and IF_B in NS_B.
ns_veth() {
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" ||
		it_abort "cannot create the veth pair $2 ($1) -- $4 ($3)"
}

# ns_addr NS IF ADDR/LEN...: add the addresses (IPv6 without duplicate address
# detection) and set the link up.
ns_addr() {
	local ns=$1 ifn=$2 a
	shift 2
	for a; do
		case $a in
		*:*) ip -n "$ns" -6 addr add "$a" dev "$ifn" nodad ;;
		*) ip -n "$ns" addr add "$a" dev "$ifn" ;;
		esac || it_abort "ip addr add $a dev $ifn in $ns failed"
	done
	ip -n "$ns" link set "$ifn" up
}

# ns_down NS...: kill every process in the namespaces (_ns_kill, bounded) and
# delete them. Idempotent, for EXIT traps.
ns_down() {
	local ns
	for ns; do
		_ns_kill "$ns"
	done
	for ns; do
		[ -e "/var/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null
	done
	return 0
}

# topo_up: the four namespaces, their links, addresses and routes.
topo_up() {
	local ns
	ns_up "$NS_CLIENT" "$NS_ROUTER" "$NS_MITM" "$NS_MX"
	for ns in "$NS_CLIENT" "$NS_ROUTER" "$NS_MITM" "$NS_MX"; do
		mkdir -p "/etc/netns/$ns"
		printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$DNS4" >"/etc/netns/$ns/resolv.conf"
		nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 >/dev/null
	done
	ns_veth "$NS_CLIENT" "$IF_C" "$NS_ROUTER" "$IF_RC"
	ns_veth "$NS_ROUTER" "$IF_RM" "$NS_MITM" "$IF_MR"
	ns_veth "$NS_MITM" "$IF_MX" "$NS_MX" "$IF_X"
	ns_addr "$NS_CLIENT" "$IF_C" "$CLIENT4/24" "$CLIENT6/64"
	ns_addr "$NS_ROUTER" "$IF_RC" "$ROUTER4_C/24" "$ROUTER6_C/64"
	ns_addr "$NS_ROUTER" "$IF_RM" "$ROUTER4_M/24" "$ROUTER6_M/64"
	ns_addr "$NS_MITM" "$IF_MR" "$MITM4_R/24" "$MITM6_R/64"
	ns_addr "$NS_MITM" "$IF_MX" "$MITM4_X/24" "$MITM6_X/64"
	ns_addr "$NS_MX" "$IF_X" "$MX1_4/24" "$MX2_4/24" "$DNS4/24" "$MX1_6/64" "$MX2_6/64" "$DNS6/64"

	ip -n "$NS_CLIENT" route add default via "$ROUTER4_C" &&
		ip -n "$NS_CLIENT" -6 route add default via "$ROUTER6_C" &&
		ip -n "$NS_ROUTER" route add default via "$MITM4_R" &&
		ip -n "$NS_ROUTER" -6 route add default via "$MITM6_R" &&
		ip -n "$NS_MITM" route add 192.0.2.0/24 via "$ROUTER4_M" &&
		ip -n "$NS_MITM" -6 route add 2001:db8:2::/64 via "$ROUTER6_M" &&
		ip -n "$NS_MX" route add default via "$MITM4_X" &&
		ip -n "$NS_MX" -6 route add default via "$MITM6_X" ||
		it_abort "cannot add routes"
	for ns in "$NS_ROUTER" "$NS_MITM"; do
		nsx "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null ||
			it_abort "cannot enable forwarding in $ns"
	done
	wait_for 5 "client reaches mx over IPv4 and IPv6" _topo_ping || it_abort "topology is not connected"
	say "topology up: $NS_CLIENT -- $NS_ROUTER -- $NS_MITM -- $NS_MX"
}

# _topo_ping: a TCP connect from the client to a closed port of the mx must be
# refused (RST), which proves routing both ways (no ping binary needed).
_topo_ping() {
	nsx "$NS_CLIENT" "$PY" - "$MX1_4" "$MX1_6" <<'EOF'
import socket, sys
for a in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET)
    s.settimeout(1)
    try:
        s.connect((a, 9))
    except ConnectionRefusedError:
        continue
    except OSError:
        sys.exit(1)
    sys.exit(1)
EOF
}

# _ns_kill NS: TERM then KILL every process in the namespace, bounded.
_ns_kill() {
	local ns=$1 pids i
	[ -e "/var/run/netns/$ns" ] || return 0
	pids=$(ip netns pids "$ns" 2>/dev/null)
	[ -z "$pids" ] && return 0
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null
	for ((i = 0; i < 25; i++)); do
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -z "$pids" ] && return 0
		sleep 0.2
	done
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null
	for ((i = 0; i < 25; i++)); do
		[ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && return 0
		sleep 0.2
	done
	say "WARNING: processes left in $ns: $(ip netns pids "$ns" | tr '\n' ' ')"
}

# topo_down: kill everything we started, delete namespaces, /etc/netns dirs and
# the temp dir. Idempotent; runs from the EXIT trap.
topo_down() {
	local rc=$? ns hold=${IT_HOLD:-0}
	[ "$IT_DOWN" = 1 ] && return "$rc"
	IT_DOWN=1
	trap - INT TERM
	# the watchdog goes first (IT_HOLD may outlast it); every step below is bounded
	if [ -n "$IT_WATCHDOG" ]; then
		kill -TERM "$IT_WATCHDOG" 2>/dev/null
		wait "$IT_WATCHDOG" 2>/dev/null
	fi
	if [ "$hold" -gt 0 ] 2>/dev/null && [ "$IT_TOPO" = 1 ]; then
		say "IT_HOLD: topology kept for ${hold}s; e.g. ip netns exec $NS_ROUTER bash; temp dir $T"
		sleep "$hold"
	fi
	ns_down "$NS_CLIENT" "$NS_ROUTER" "$NS_MITM" "$NS_MX"
	for ns in "$NS_CLIENT" "$NS_ROUTER" "$NS_MITM" "$NS_MX"; do
		rm -rf "/etc/netns/$ns"
	done
	it_rmtemp
	# A warning only: another job on the host may change its rules meanwhile;
	# everything this harness adds lives inside the namespaces.
	if [ -n "${IT_HOST_FW:-}" ] && [ "$(_host_firewall)" != "$IT_HOST_FW" ]; then
		say "WARNING: the host's firewall rules changed while the test ran"
	fi
	return "$rc"
}

# it_rmtemp: remove the temp dir $T, or with IT_KEEP=1 say where it is kept.
it_rmtemp() {
	[ -n "$T" ] && [ -d "$T" ] || return 0
	if [ "${IT_KEEP:-0}" = 1 ]; then
		say "IT_KEEP: logs and configs kept in $T"
	else
		rm -rf "$T"
	fi
}

# ---- test PKI ----------------------------------------------------------------
# ca_make: a test CA and ECDSA P-256 server certificates in $T/pki:
#   ca.pem, mx.{pem,key} (SAN mx1+mx2), mx1.*, mx2.*, wrong.* (wrong.example.org),
#   expired.* (SAN mx1+mx2, expired 8 days ago).
ca_make() {
	local d=$T/pki n
	mkdir -p "$d"
	# the CA's validity starts 30 days back so that it covers the expired leaf
	local back=""
	command -v faketime >/dev/null && back="faketime -f -30d"
	$back openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
		-keyout "$d/ca.key" -out "$d/ca.pem" -days 60 -subj "/CN=stsproxy integration test CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		>/dev/null 2>&1 || it_abort "CA creation failed"
	_cert mx "DNS:mx1.example.test,DNS:mx2.example.test" "mx1.example.test"
	_cert mx1 "DNS:mx1.example.test" "mx1.example.test"
	_cert mx2 "DNS:mx2.example.test" "mx2.example.test"
	_cert wrong "DNS:wrong.example.org" "wrong.example.org"
	# expired: issued "10 days ago" for 2 days (faketime moves openssl's clock)
	if command -v faketime >/dev/null; then
		_cert expired "DNS:mx1.example.test,DNS:mx2.example.test" "mx1.example.test" 2 "faketime -f -10d"
	fi
	for n in mx mx1 mx2 wrong; do
		[ -s "$d/$n.pem" ] || it_abort "certificate $n missing"
	done
	chmod 644 "$d"/*.pem
}

_cert() { # name san cn [days] [prefix-command]
	local d=$T/pki name=$1 san=$2 cn=$3 days=${4:-30} pre=${5:-}
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
		-keyout "$d/$name.key" -out "$d/$name.csr" -subj "/CN=$cn" >/dev/null 2>&1 &&
		printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
			"$san" >"$d/$name.ext" &&
		$pre openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
			-CAcreateserial -days "$days" -sha256 -extfile "$d/$name.ext" -out "$d/$name.pem" \
			>/dev/null 2>&1 || it_abort "certificate $name failed"
}

# ---- DNS: nsd in the mx namespace ---------------------------------------------
# dns_start: nsd on 203.0.113.53 / 2001:db8:113::53 with the example.test zone
# (dns_mail_zone, unless a test wrote its own) plus every zone added with
# dns_zone_add.
dns_start() {
	mkdir -p "$T/dns"
	[ -f "$T/dns/zones/$MAIL_DOMAIN.zone" ] || dns_mail_zone "" norestart
	_dns_conf
	nsd-checkconf "$T/dns/nsd.conf" || it_abort "nsd.conf invalid"
	ip netns exec "$NS_MX" nsd -d -c "$T/dns/nsd.conf" >>"$T/dns/nsd.out" 2>&1 &
	NSD_PID=$!
	wait_for 10 "nsd answers" dns_query "$MAIL_DOMAIN" MX >/dev/null ||
		it_abort "nsd did not start: $(tail -n 5 "$T/dns/nsd.log" "$T/dns/nsd.out" 2>/dev/null)"
}

dns_stop() {
	[ -n "$NSD_PID" ] || return 0
	kill -TERM "$NSD_PID" 2>/dev/null
	wait_for 5 "nsd exit" _not_running "$NSD_PID"
	wait "$NSD_PID" 2>/dev/null
	NSD_PID=
}

dns_restart() {
	dns_stop
	dns_start
}

_not_running() { ! kill -0 "$1" 2>/dev/null; }

# _pid_stop SECONDS NAME PID: TERM our child PID, KILL it if it has not exited
# within SECONDS, and reap it.
_pid_stop() {
	kill -TERM "$3" 2>/dev/null
	wait_for "$1" "$2 exit" _not_running "$3" || kill -KILL "$3" 2>/dev/null
	wait "$3" 2>/dev/null
}

_dns_conf() {
	local z
	{
		cat <<EOF
server:
	ip-address: $DNS4
	ip-address: $DNS6
	port: 53
	username: ""
	chroot: ""
	zonesdir: "$T/dns/zones"
	database: ""
	zonelistfile: "$T/dns/zone.list"
	xfrdfile: "$T/dns/xfrd.state"
	xfrdir: "$T/dns"
	pidfile: "$T/dns/nsd.pid"
	logfile: "$T/dns/nsd.log"
	server-count: 1
	verbosity: 1
	hide-version: yes
	refuse-any: yes
remote-control:
	control-enable: no
EOF
		for z in "$T"/dns/zones/*.zone; do
			z=$(basename "$z" .zone)
			printf 'zone:\n\tname: "%s"\n\tzonefile: "%s.zone"\n' "$z" "$z"
		done
	} >"$T/dns/nsd.conf"
}

# dns_zone_add NAME "RECORDS" [norestart]: write zone NAME (SOA and NS added
# here; RECORDS are zone-file lines relative to NAME.) and restart nsd if it
# runs. Replaces an existing zone of that name.
dns_zone_add() {
	local name=$1 records=$2
	mkdir -p "$T/dns/zones"
	cat >"$T/dns/zones/$name.zone" <<EOF
\$ORIGIN $name.
\$TTL 30
@	IN SOA ns.$MAIL_DOMAIN. hostmaster.$MAIL_DOMAIN. $(date +%s) 3600 600 86400 30
@	IN NS ns.$MAIL_DOMAIN.
$([ "$name" = "$MAIL_DOMAIN" ] && printf 'ns\tIN A %s\nns\tIN AAAA %s\n' "$DNS4" "$DNS6")
$records
EOF
	if [ "${3:-}" != norestart ] && [ -n "$NSD_PID" ]; then
		dns_restart
	fi
}

# dns_mail_zone [RECORDS] [norestart]: (re)write the example.test zone: MX 10
# mx1, A/AAAA for mx1, mx2 and ns, then RECORDS (zone-file lines).
dns_mail_zone() {
	dns_zone_add "$MAIL_DOMAIN" "
@	IN MX 10 mx1.example.test.
mx1	IN A $MX1_4
mx1	IN AAAA $MX1_6
mx2	IN A $MX2_4
mx2	IN AAAA $MX2_6${1:+
$1}" "${2:-}"
}

# dns_mail_zone_sts ID: the example.test zone with MTA-STS: the TXT record
# "v=STSv1; id=ID" and mta-sts.example.test on mx1's address (nginx_start).
# Written before dns_start (nsd is not restarted).
dns_mail_zone_sts() {
	dns_mail_zone "_mta-sts	IN TXT \"v=STSv1; id=$1\"
mta-sts	IN A $MX1_4" norestart
}

# dns_query NAME TYPE: ask nsd from the client namespace; prints the answer.
dns_query() {
	nsx "$NS_CLIENT" "$PY" - "$1" "$2" "$DNS4" <<'EOF'
import sys
from dnslib import DNSRecord, RCODE
q = DNSRecord.question(sys.argv[1], sys.argv[2])
r = DNSRecord.parse(q.send(sys.argv[3], 53, timeout=1))
if r.header.rcode != RCODE.NOERROR or not r.rr:
    sys.exit(1)
for rr in r.rr:
    print(rr.toZone())
EOF
}

# ---- MTA-STS policy hosts: nginx in the mx namespace --------------------------------
# HTTPS on $MX1_4:443 with the certificate $T/pki/sts.{pem,key} (the test
# makes it with _cert sts, after ca_make) and one policy file per site.

# nginx_require: skip (77) unless nginx is installed.
nginx_require() {
	command -v /usr/sbin/nginx >/dev/null || it_skip "nginx missing: run tests/integration/install-peers.sh"
}

# nginx_policy SITE TEXT: $T/www/SITE/.well-known/mta-sts.txt holds TEXT
# (printf %b: \n, \r\n). A site's document root is $T/www/SITE.
nginx_policy() {
	mkdir -p "$T/www/$1/.well-known"
	printf '%b' "$2" >"$T/www/$1/.well-known/mta-sts.txt"
}

# nginx_conf SERVERS: $T/nginx/nginx.conf, one process in the foreground with
# its pid, logs and temp files in $T/nginx, the sts certificate by default, and
# SERVERS (nginx "server { ... }" blocks) in its http block.
nginx_conf() {
	mkdir -p "$T/nginx/tmp"
	cat >"$T/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 128; }
http {
	access_log $T/nginx/access.log;
	client_body_temp_path $T/nginx/tmp;
	proxy_temp_path $T/nginx/tmp;
	fastcgi_temp_path $T/nginx/tmp;
	uwsgi_temp_path $T/nginx/tmp;
	scgi_temp_path $T/nginx/tmp;
	types { }
	default_type text/plain;
	ssl_certificate $T/pki/sts.pem;
	ssl_certificate_key $T/pki/sts.key;
$1
}
EOF
}

# nginx_start: run nginx (nginx_conf) in the mx namespace and wait until it
# listens on $MX1_4:443.
nginx_start() {
	ip netns exec "$NS_MX" /usr/sbin/nginx -p "$T/nginx/" -c "$T/nginx/nginx.conf" -e stderr \
		>>"$T/nginx/out.log" 2>&1 &
	NGINX_PID=$!
	wait_for 10 "nginx listening on $MX1_4:443" _listening "$NS_MX" "$MX1_4" 443 ||
		it_abort "nginx did not start: $(tail -n 5 "$T/nginx/out.log" "$T/nginx/error.log" 2>/dev/null)"
	say "nginx: policy hosts up on $MX1_4:443"
}

nginx_stop() {
	[ -n "$NGINX_PID" ] || return 0
	_pid_stop 5 nginx "$NGINX_PID"
	NGINX_PID=
}

# ---- Postfix instances ---------------------------------------------------------
# _pf_master DIR: master.cf without chroot; postlogd for maillog_file.
_pf_master() {
	mkdir -p "$1"
	cat >"$1/master.cf" <<'EOF'
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

_pf_common() { # DIR (config in DIR/conf, queue in DIR/spool)
	cat <<EOF
compatibility_level = 3.6
queue_directory = $1/spool
data_directory = $1/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $1/maillog
maillog_file_prefixes = $T
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
mydestination =
mynetworks = 127.0.0.0/8, [::1]/128
smtputf8_enable = no
EOF
}

# _pf_mkqueue DIR: the queue directories "postfix check" would create, made
# directly (its shell scripts take seconds on a loaded 2-core machine); the
# quick-start file tells postfix-script to skip its checks.
_pf_mkqueue() {
	local q=$1/spool sub
	mkdir -p "$q/pid" "$1/data"
	for sub in active bounce corrupt defer deferred flush hold incoming private saved trace; do
		mkdir -p "$q/$sub"
		chown postfix:root "$q/$sub"
		chmod 700 "$q/$sub"
	done
	mkdir -p "$q/maildrop" "$q/public"
	chown postfix:postdrop "$q/maildrop" "$q/public"
	chmod 1730 "$q/maildrop"
	chmod 2710 "$q/public"
	chown postfix "$1/data"
	: >"$q/quick-start"
}

_pf_start() { # NS DIR
	local ns=$1 d=$2
	_pf_mkqueue "$d"
	: >"$d/maillog"
	nsx "$ns" timeout 30 postfix -c "$d/conf" start >"$d/start.out" 2>&1 ||
		it_abort "postfix in $ns did not start: $(tail -n 5 "$d/start.out" "$d/maillog")"
	wait_for 10 "postfix master in $ns" nsx "$ns" postfix -c "$d/conf" status >/dev/null 2>&1 ||
		it_abort "postfix master in $ns not running"
}

_pf_stop() { # NS DIR
	local ns=$1 d=$2
	[ -f "$d/conf/main.cf" ] || return 0
	nsx "$ns" timeout 20 postfix -c "$d/conf" stop >/dev/null 2>&1
	wait_for 10 "postfix in $ns stopped" _pf_stopped "$ns" "$d"
}

_pf_stopped() { ! nsx "$1" postfix -c "$2/conf" status >/dev/null 2>&1; }

# ---- receiving MTA (mx namespace) ------------------------------------------------
# mx_start [CERT]: Postfix on mx1/mx2 (v4+v6) port 25, delivering example.test
# into $T/mx/mail/Maildir. CERT: mx (default, SAN mx1+mx2), mx1, mx2, wrong,
# expired, or none (no STARTTLS offered).
mx_start() {
	local cert=${1:-mx} d=$T/mx
	mkdir -p "$d/mail"
	chown nobody:nogroup "$d/mail"
	_pf_master "$d/conf"
	{
		_pf_common "$d"
		cat <<EOF
myhostname = mx1.example.test
mydomain = example.test
myorigin = \$myhostname
inet_interfaces = $MX1_4, $MX2_4, [$MX1_6], [$MX2_6]
inet_protocols = all
smtpd_banner = \$myhostname ESMTP
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = $MAIL_DOMAIN
virtual_mailbox_base = $d/mail
virtual_mailbox_maps = static:Maildir/
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
EOF
		if [ "$cert" = none ]; then
			echo "smtpd_tls_security_level = none"
		else
			[ -s "$T/pki/$cert.pem" ] || it_abort "mx_start: no certificate '$cert' (ca_make?)"
			printf 'smtpd_tls_security_level = may\nsmtpd_tls_chain_files = %s, %s\n' \
				"$T/pki/$cert.key" "$T/pki/$cert.pem"
		fi
	} >"$d/conf/main.cf"
	_pf_start "$NS_MX" "$d"
	wait_for 10 "mx smtpd listening" _listening "$NS_MX" "$MX1_4" 25 ||
		it_abort "mx postfix not listening on $MX1_4:25"
	say "mx: Postfix up on $MX1_4/$MX2_4 (certificate: $cert)"
}

mx_stop() { _pf_stop "$NS_MX" "$T/mx"; }

_listening() { # NS ADDR PORT
	nsx "$1" ss -Hltn "sport = :$3" 2>/dev/null | grep -qF "$2:$3"
}

_maildir_files() { ls "$T"/mx/mail/Maildir/new/* "$T"/mx/mail/Maildir/cur/* 2>/dev/null; }
mx_mail_count() { _maildir_files | wc -l; }
_mx_has() { [ "$(mx_mail_count)" -ge "$1" ]; }

# mx_wait_mail N [SECONDS]: wait until the Maildir holds at least N messages.
mx_wait_mail() {
	wait_for "${2:-30}" "$1 message(s) at the mx" _mx_has "$1"
}

# _mx_file SUBJECT: the message whose Subject is exactly SUBJECT.
_mx_file() {
	local f
	for f in $(_maildir_files); do
		grep -qxF "Subject: $1" <(sed -n '/^$/q; s/\r$//; p' "$f") && { echo "$f"; return 0; }
	done
	return 1
}

# mx_mail_header SUBJECT HEADER [N]: the Nth (default first) HEADER of the
# message with that Subject, unfolded to one line, without the "Header: ".
mx_mail_header() {
	local f
	f=$(_mx_file "$1") || return 1
	awk -v h="$2" -v want="${3:-1}" '
		/^\r?$/ { exit }
		{ sub(/\r$/, "") }
		/^[ \t]/ { if (cur != "") cur = cur " " substr($0, match($0, /[^ \t]/)); next }
		{ if (cur != "") { if (tolower(name) == tolower(h) && ++n == want) { print cur; found = 1; exit } }
		  name = $0; sub(/:.*/, "", name); cur = $0; sub(/^[^:]*: ?/, "", cur) }
		END { if (!found && cur != "" && tolower(name) == tolower(h) && ++n == want) print cur }
	' "$f"
}

# mx_received SUBJECT: the topmost Received header (the one the mx added).
mx_received() { mx_mail_header "$1" Received 1; }
# mx_received_tls SUBJECT: true when the mx received it over TLS (ESMTPS).
mx_received_tls() { mx_received "$1" | grep -qE 'with E?SMTPS'; }
# mx_received_plain SUBJECT: true when it arrived, and without TLS.
mx_received_plain() { mx_received "$1" | grep -qE 'with E?SMTP( |;|$)'; }
mx_body_has() { # SUBJECT FIXED-STRING
	local f
	f=$(_mx_file "$1") || return 1
	grep -qF -- "$2" "$f"
}
mx_log_grep() { grep -qE -- "$1" "$T/mx/maillog"; }

# ---- legacy sender (client namespace) ----------------------------------------------
# sender_start [TLS_LEVEL] [INET_PROTOCOLS]: Postfix relaying by MX lookup.
# TLS_LEVEL none (default: the legacy client) or may; protocols ipv4 (default),
# ipv6 or all.
sender_start() {
	local level=${1:-none} proto=${2:-ipv4} d=$T/client
	_pf_master "$d/conf"
	{
		_pf_common "$d"
		cat <<EOF
myhostname = legacy.client.test
mydomain = client.test
myorigin = \$mydomain
inet_interfaces = loopback-only
inet_protocols = $proto
relayhost =
smtp_tls_security_level = $level
smtp_tls_loglevel = 1
smtp_connection_cache_on_demand = no
minimal_backoff_time = 2s
maximal_backoff_time = 4s
queue_run_delay = 2s
maximal_queue_lifetime = 1d
bounce_queue_lifetime = 1d
delay_warning_time = 0
smtp_connect_timeout = 10s
smtp_helo_timeout = 20s
smtp_mail_timeout = 20s
smtp_rcpt_timeout = 20s
smtp_data_init_timeout = 20s
smtp_data_xfer_timeout = 20s
smtp_data_done_timeout = 20s
smtp_starttls_timeout = 20s
smtp_quit_timeout = 10s
EOF
	} >"$d/conf/main.cf"
	_pf_start "$NS_CLIENT" "$d"
	say "client: legacy Postfix up (smtp_tls_security_level=$level, inet_protocols=$proto)"
}

sender_stop() { _pf_stop "$NS_CLIENT" "$T/client"; }

# sender_send TO SUBJECT [BODYFILE]: submit one message with sendmail. The
# default body carries the token "SECRET-BODY-<subject>" for leak checks.
sender_send() {
	local to=$1 subj=$2 body=${3:-} m
	m=$(mktemp "$T/msg.XXXXXX")
	{
		printf 'From: Alice <%s>\nTo: <%s>\nSubject: %s\nMessage-ID: <%s.%s@client.test>\nDate: %s\n\n' \
			"$FROM" "$to" "$subj" "$(date +%s%N)" "$$" "$(date -R)"
		if [ -n "$body" ]; then cat "$body"; else printf 'SECRET-BODY-%s\nsecond line\n' "$subj"; fi
	} >"$m"
	nsx "$NS_CLIENT" timeout 20 sendmail -C "$T/client/conf" -f "$FROM" -i -- "$to" <"$m" ||
		it_abort "sendmail failed for '$subj'"
	say "client: submitted '$subj' to $to"
}

# sender_queue_count: messages still queued at the sender.
sender_queue_count() {
	find "$T/client/spool/maildrop" "$T/client/spool/incoming" "$T/client/spool/active" \
		"$T/client/spool/deferred" "$T/client/spool/hold" -type f 2>/dev/null | wc -l
}
_sender_queue_is() { [ "$(sender_queue_count)" -eq "$1" ]; }
sender_log_grep() { grep -qE -- "$1" "$T/client/maillog"; }
# sender_log_count PATTERN: how many sender log lines match.
sender_log_count() { grep -cE -- "$1" "$T/client/maillog"; }
_sender_log_count_ge() { [ "$(sender_log_count "$1")" -ge "$2" ]; }
# sender_wait_log PATTERN [SECONDS]
sender_wait_log() { wait_for "${2:-30}" "sender log: $1" sender_log_grep "$1"; }
sender_flush() { nsx "$NS_CLIENT" timeout 10 postqueue -c "$T/client/conf" -f >/dev/null 2>&1; }
sender_status_lines() { grep -oE 'status=[a-z]+ \(.*' "$T/client/maillog" | cut -c1-300; }

# ---- attacker (mitm namespace) -------------------------------------------------------
# mitm_start MODE [CERT]: run mitm.py and REDIRECT tcp/25 from the router side
# to it. The TLS-terminating modes (swap-cert, old-tls) present
# $T/pki/CERT.pem / CERT.key (default: wrong). Each start begins a fresh
# $T/mitm.log (earlier ones are kept as mitm.log.N), so the mitm_* assertions
# see only the current phase.
mitm_start() {
	local mode=$1 cert=${2:-wrong}
	mitm_stop
	mitm_reset_log
	ip netns exec "$NS_MITM" "$PY" "$MITM_PY" --mode "$mode" --port "$MITM_PORT" --log "$T/mitm.log" \
		--cert "$T/pki/$cert.pem" --key "$T/pki/$cert.key" --max-runtime 600 \
		>>"$T/mitm.out" 2>&1 &
	MITM_PID=$!
	wait_for 10 "mitm.py listening" _listening "$NS_MITM" "0.0.0.0" "$MITM_PORT" ||
		it_abort "mitm.py did not start: $(tail -n 5 "$T/mitm.out")"
	mitm_redirect on
	say "mitm: attacker active, mode $mode, certificate $cert"
}

mitm_stop() {
	mitm_redirect off
	[ -n "$MITM_PID" ] || return 0
	kill -TERM "$MITM_PID" 2>/dev/null
	wait_for 5 "mitm.py exit" _not_running "$MITM_PID"
	wait "$MITM_PID" 2>/dev/null
	MITM_PID=
}

# mitm_redirect on|off: the REDIRECT of tcp/25 arriving from the router.
mitm_redirect() {
	local t a=-D
	[ "$1" = on ] && a=-A
	for t in iptables ip6tables; do
		if [ "$a" = -D ]; then
			while nsx "$NS_MITM" "$t" -t nat -D PREROUTING -i "$IF_MR" -p tcp --dport 25 \
				-j REDIRECT --to-ports "$MITM_PORT" 2>/dev/null; do :; done
		else
			nsx "$NS_MITM" "$t" -t nat -A PREROUTING -i "$IF_MR" -p tcp --dport 25 \
				-j REDIRECT --to-ports "$MITM_PORT" || it_abort "$t REDIRECT in mitm failed"
		fi
	done
}

# The plaintext lines the attacker saw, both directions, without prefixes.
mitm_plaintext() { sed -n 's/^[0-9.]* #[0-9]* [CS]> //p' "$T/mitm.log" 2>/dev/null; }
# mitm_saw_plaintext ERE: did the attacker see a matching line (case-insensitive)?
mitm_saw_plaintext() { mitm_plaintext | grep -qiE -- "$1"; }
# mitm_event ERE: an attack event ("** ..." lines), e.g. "stripped STARTTLS".
mitm_event() { grep -E '^[0-9.]* #[0-9]* \*\* ' "$T/mitm.log" 2>/dev/null | grep -qiE -- "$1"; }
mitm_log_grep() { grep -qiE -- "$1" "$T/mitm.log" 2>/dev/null; }
mitm_reset_log() {
	local n=1
	if [ -s "$T/mitm.log" ]; then
		while [ -e "$T/mitm.log.$n" ]; do n=$((n + 1)); done
		mv "$T/mitm.log" "$T/mitm.log.$n"
	fi
	: >"$T/mitm.log"
}

# ---- router: REDIRECT / TPROXY toward stsproxy ----------------------------------------
# router_redirect on|off: nat PREROUTING REDIRECT tcp/25 from the client side
# to $PROXY_PORT (v4 and v6).
router_redirect() {
	local t
	for t in iptables ip6tables; do
		while nsx "$NS_ROUTER" "$t" -t nat -D PREROUTING -i "$IF_RC" -p tcp --dport 25 \
			-j REDIRECT --to-ports "$PROXY_PORT" 2>/dev/null; do :; done
		if [ "$1" = on ]; then
			nsx "$NS_ROUTER" "$t" -t nat -A PREROUTING -i "$IF_RC" -p tcp --dport 25 \
				-j REDIRECT --to-ports "$PROXY_PORT" || it_abort "$t REDIRECT in router failed"
		fi
	done
}

# router_tproxy on|off: mangle PREROUTING TPROXY tcp/25 from the client side to
# $PROXY_PORT with mark 1, and "fwmark 1 -> table 100 -> local" policy routing.
router_tproxy() {
	local t f
	for t in iptables ip6tables; do
		while nsx "$NS_ROUTER" "$t" -t mangle -D PREROUTING -i "$IF_RC" -p tcp --dport 25 \
			-j TPROXY --on-port "$PROXY_PORT" --tproxy-mark 1 2>/dev/null; do :; done
	done
	for f in -4 -6; do
		while ip -n "$NS_ROUTER" "$f" rule del fwmark 1 lookup 100 2>/dev/null; do :; done
		ip -n "$NS_ROUTER" "$f" route flush table 100 2>/dev/null
	done
	[ "$1" = on ] || return 0
	for t in iptables ip6tables; do
		nsx "$NS_ROUTER" "$t" -t mangle -A PREROUTING -i "$IF_RC" -p tcp --dport 25 \
			-j TPROXY --on-port "$PROXY_PORT" --tproxy-mark 1 || it_abort "$t TPROXY failed"
	done
	ip -n "$NS_ROUTER" -4 rule add fwmark 1 lookup 100 &&
		ip -n "$NS_ROUTER" -4 route add local 0.0.0.0/0 dev lo table 100 &&
		ip -n "$NS_ROUTER" -6 rule add fwmark 1 lookup 100 &&
		ip -n "$NS_ROUTER" -6 route add local ::/0 dev lo table 100 ||
		it_abort "TPROXY policy routing failed"
}

# ---- stsproxy (router namespace) -------------------------------------------------------
# proxy_require: FAIL the test (exit 1) unless the stsproxy binary exists.
proxy_require() {
	[ -x "$STSPROXY_BIN" ] && return 0
	fail "stsproxy binary $STSPROXY_BIN missing (build: cmake -S . -B build && cmake --build build)"
	printf 'RESULT: FAIL (stsproxy not built)\n'
	exit 1
}

# proxy_config [MODE] [LISTEN_KIND] [STATIC_LEVEL] [DEFAULT_LEVEL]: print a
# config. LISTEN_KIND redirect (default) or tproxy; STATIC_LEVEL empty for no
# static policy, else the level for example.test (mx "*.example.test").
proxy_config() {
	local mode=${1:-upgrade} kind=${2:-redirect} level=${3:-} def=${4:-may} static=""
	[ -n "$level" ] &&
		static="static = ( { domain = \"$MAIL_DOMAIN\"; level = \"$level\"; mx = [\"*.$MAIL_DOMAIN\"]; } );"
	cat <<EOF
mode = "$mode";
listen = ( { kind = "$kind"; address = "0.0.0.0"; port = $PROXY_PORT; },
           { kind = "$kind"; address = "::"; port = $PROXY_PORT; } );
dns = { servers = ["$DNS4"]; timeout = 2.0; tries = 2; };
tls = { ca_file = "$T/pki/ca.pem"; };
policy = { default_level = "$def"; $static };
log = { format = "json"; file = "$T/proxy.log"; level = "debug"; };
EOF
}

# proxy_start CONFIG_TEXT: write the config, run stsproxy in the router
# namespace (extra args from $STSPROXY_ARGS), wait until it listens.
proxy_start() {
	proxy_require
	printf '%s\n' "$1" >"$T/proxy.conf"
	: >>"$T/proxy.log"
	# shellcheck disable=SC2086
	ip netns exec "$NS_ROUTER" "$STSPROXY_BIN" -c "$T/proxy.conf" ${STSPROXY_ARGS:-} >>"$T/proxy.out" 2>&1 &
	PROXY_PID=$!
	if ! wait_for 10 "stsproxy listening on port $PROXY_PORT" _proxy_up; then
		local why="still running but not listening"
		_not_running "$PROXY_PID" && { wait "$PROXY_PID"; why="exited with status $?"; }
		fail "stsproxy starts and listens on port $PROXY_PORT ($why)"
		PROXY_PID=
		it_abort "stsproxy did not come up; config in $T/proxy.conf"
	fi
	pass "stsproxy started and listens on port $PROXY_PORT"
}

_proxy_up() {
	_not_running "$PROXY_PID" && return 1
	nsx "$NS_ROUTER" ss -Hltn "sport = :$PROXY_PORT" 2>/dev/null | grep -q .
}

# router_tproxy_hits: packets that matched the router's TPROXY rule (v4+v6).
router_tproxy_hits() {
	local t n=0 c
	for t in iptables ip6tables; do
		c=$(nsx "$NS_ROUTER" "$t" -t mangle -L PREROUTING -v -n -x 2>/dev/null |
			awk '/TPROXY/ { s += $1 } END { print s + 0 }')
		n=$((n + c))
	done
	echo "$n"
}

proxy_stop() {
	[ -n "$PROXY_PID" ] || return 0
	_pid_stop 10 stsproxy "$PROXY_PID"
	PROXY_PID=
}

# proxy_alive: stsproxy is still running (did not crash during the test).
proxy_alive() { [ -n "$PROXY_PID" ] && ! _not_running "$PROXY_PID"; }
proxy_log_grep() { cat "$T/proxy.log" "$T/proxy.out" 2>/dev/null | grep -qE -- "$1"; }
# proxy_sessions: the session records, one JSON object a line.
proxy_sessions() { cat "$T/proxy.log" "$T/proxy.out" 2>/dev/null | grep -E -- "$PROXY_SESSION_RE"; }
# proxy_session_logged DEST [ERE...]: one session record that contains DEST
# (the mx address, as a fixed string) and matches every ERE, e.g.
# '"tls": *true' '"result": *"ok"'.
proxy_session_logged() {
	local lines s
	lines=$(proxy_sessions | grep -F -- "${1:-$MX1_4}") || return 1
	shift
	for s; do
		lines=$(printf '%s\n' "$lines" | grep -E -- "$s") || return 1
	done
	return 0
}
# Common record expectations.
SESSION_OK='"result": *"ok"'
SESSION_TLS='"tls": *true'
SESSION_VERIFIED='"tls_verify": *"ok"'
SESSION_PLAIN='"tls": *false'

# proxy_event NAME: stsproxy logged a security event of that name.
proxy_event() {
	cat "$T/proxy.log" "$T/proxy.out" 2>/dev/null | grep -E '"type": *"event"' |
		grep -qE -- "\"event\": *\"$1\""
}

# ---- common scenario pieces --------------------------------------------------------------
# peers_up [MX_CERT] [SENDER_TLS] [SENDER_PROTOCOLS]: topology, CA, DNS, mx, sender.
peers_up() {
	step "building topology and peers"
	topo_up
	ca_make
	dns_start
	mx_start "${1:-mx}"
	sender_start "${2:-none}" "${3:-ipv4}"
}

# assert_no_leak SUBJECT: the attacker never saw this message's envelope or body.
assert_no_leak() {
	check_not "attacker never saw MAIL FROM in plaintext" mitm_saw_plaintext '^MAIL FROM'
	check_not "attacker never saw RCPT TO in plaintext" mitm_saw_plaintext '^RCPT TO'
	check_not "attacker never saw the body of '$1' in plaintext" mitm_saw_plaintext "SECRET-BODY-$1"
}

# ---- detection tests: t_detect_*, t_probe, t_monitor_transparent, t_zz_events_documented ----
# Every test that runs stsproxy can record the event names it observed in a
# shared file, which t_zz_events_documented.sh checks against docs/events.md.
# Lines: "<binary id> <test> <event> <severity>"; the binary id (a hash of
# $STSPROXY_BIN) keeps records of an older build from counting.
EVENTS_SEEN=${STSPROXY_EVENTS_SEEN:-/tmp/stsproxy-events-seen}

# events_binary_id: the first 16 hex digits of the SHA-256 of $STSPROXY_BIN.
events_binary_id() { sha256sum "$STSPROXY_BIN" 2>/dev/null | cut -c1-16; }

# proxy_log_rotate: start a fresh $T/proxy.log and $T/proxy.out (the old ones
# are kept as proxy.log.N / proxy.out.N), so the proxy_* assertions see only
# the current phase. Call it while stsproxy is stopped.
proxy_log_rotate() {
	local n=1 f
	while [ -e "$T/proxy.log.$n" ] || [ -e "$T/proxy.out.$n" ]; do n=$((n + 1)); done
	for f in proxy.log proxy.out; do
		[ -e "$T/$f" ] && mv "$T/$f" "$T/$f.$n"
		: >"$T/$f"
	done
}

# proxy_stop_checked: stop stsproxy (TERM) and check that it exited 0 and that
# no sanitizer report reached its stderr (an ASan build reports at exit).
proxy_stop_checked() {
	local rc=0
	[ -n "$PROXY_PID" ] || return 0
	if _not_running "$PROXY_PID"; then
		wait "$PROXY_PID" 2>/dev/null
		rc=$?
		fail "stsproxy was still running until the end of the phase (it exited with $rc)"
	else
		kill -TERM "$PROXY_PID" 2>/dev/null
		if wait_for 15 "stsproxy exit" _not_running "$PROXY_PID"; then
			wait "$PROXY_PID" 2>/dev/null
			rc=$?
		else
			kill -KILL "$PROXY_PID" 2>/dev/null
			wait "$PROXY_PID" 2>/dev/null
			rc=timeout
		fi
		check "stsproxy exits 0 on SIGTERM (status $rc)" [ "$rc" = 0 ]
	fi
	PROXY_PID=
	check_not "no sanitizer report in stsproxy's output" \
		grep -qE 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$T/proxy.out"
}

# proxy_events_tsv [FILE...]: the event records of FILE (default
# $T/proxy.log), one a line: "event<TAB>severity<TAB>session<TAB>json".
proxy_events_tsv() {
	[ $# -gt 0 ] || set -- "$T/proxy.log"
	"$PY" - "$@" <<'EOF'
import json, sys
for path in sys.argv[1:]:
    try:
        fp = open(path, encoding="utf-8", errors="replace")
    except OSError:
        continue
    for line in fp:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("type") == "event":
            print("%s\t%s\t%s\t%s" % (r.get("event"), r.get("severity"), r.get("session", "-"),
                                      json.dumps(r, sort_keys=True)))
EOF
}

# proxy_ev NAME SEVERITY [FIELD=ERE...]: an event record NAME with that
# severity ("*" for any) whose fields match every FIELD=ERE (Python re.search
# on the JSON value: strings as they are, true/false, numbers in decimal).
proxy_ev() {
	"$PY" - "$T/proxy.log" "$@" <<'EOF'
import json, re, sys
path, name, sev, conds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
try:
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
except OSError:
    sys.exit(1)
for line in lines:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("type") != "event" or r.get("event") != name:
        continue
    if sev != "*" and r.get("severity") != sev:
        continue
    ok = True
    for c in conds:
        k, _, pat = c.partition("=")
        if k not in r or not re.search(pat, val(r[k])):
            ok = False
            break
    if ok:
        sys.exit(0)
sys.exit(1)
EOF
}

# proxy_event_summary: "name/severity" of every event in $T/proxy.log, sorted,
# with repeats counted, on one line (for messages).
proxy_event_summary() {
	proxy_events_tsv | awk -F '\t' '{ print $1 "/" $2 }' | sort | uniq -c |
		awk '{ printf "%s%s%s", sep, $2, ($1 > 1 ? "x" $1 : ""); sep = " " } END { if (!sep) printf "(none)" }'
}

# events_seen_record TEST: append the events in every $T/proxy.log* to
# $EVENTS_SEEN for t_zz_events_documented.sh.
events_seen_record() {
	local id f
	id=$(events_binary_id)
	[ -n "$id" ] && [ -n "$T" ] || return 0
	for f in "$T"/proxy.log "$T"/proxy.log.*; do
		[ -s "$f" ] || continue
		proxy_events_tsv "$f"
	done | awk -F '\t' -v id="$id" -v t="$1" '{ print id, t, $1, $2 }' | sort -u >>"$EVENTS_SEEN"
	say "events seen by $1 recorded in $EVENTS_SEEN"
}

# sender_clear: delete every message queued at the sender (deferred ones
# would otherwise be retried into the next phase).
sender_clear() {
	nsx "$NS_CLIENT" timeout 10 postsuper -c "$T/client/conf" -d ALL >/dev/null 2>&1
}

# sender_postconf NAME=VALUE...: change the sender's main.cf and reload it.
sender_postconf() {
	nsx "$NS_CLIENT" postconf -c "$T/client/conf" -e "$@" >/dev/null ||
		it_abort "postconf -e $* failed"
	nsx "$NS_CLIENT" timeout 20 postfix -c "$T/client/conf" reload >/dev/null 2>&1 ||
		it_abort "postfix reload failed"
}

# ---- one detection case: attacker + stsproxy restarted, one mail, assertions ----
# dcase_run TAG SUBJECT PROXY_CONFIG MITM_MODE [MITM_CERT]: restart the
# attacker (mitm_start, with MITM_CERT when given) and
# stsproxy (fresh logs, empty in-memory TOFU), send one mail from the legacy
# sender and assert, from these globals:
#   VERDICT     tls | plain (delivered; how the mx received it) | deferred (4xx)
#   LEAK        yes (the attacker must have read MAIL FROM) | no (must not)
#   EVENTS      "name:severity[:field=ERE...] ..." events that must be logged (an
#               ERE cannot contain ":" or blanks: write \x3a, \x20)
#               (proxy_ev); no other event of warning or alert level may be,
#               except names in DCASE_EXTRA_OK at notice level or below
#   SESSION_RE  "ERE|ERE..." a session record for $MX1_4 must match (or empty)
# DCASE_TOLERATE: names not counted as unexpected, at any level.
# Set DCASE_KEEP_PROXY=1 to keep the running stsproxy (and its TOFU memory).
DCASE_EXTRA_OK='mx_rerouted'

_dcase_sev_rank() {
	case $1 in info) echo 0 ;; notice) echo 1 ;; warning) echo 2 ;; alert) echo 3 ;; *) echo 9 ;; esac
}
# sender_status_since LINE: the status lines of the sender's maillog after LINE
sender_status_since() { tail -n +"$(($1 + 1))" "$T/client/maillog" | grep -E 'status=[a-z]+' | cut -c1-400; }
_sender_has_status_since() { sender_status_since "$1" | grep -q .; }
_proxy_has_session() { proxy_sessions | grep -q .; }

dcase_run() {
	local tag=$1 subj=$2 conf=$3 amode=$4 cert=${5:-} mark st e name sev rest extra
	local conds=() res=()
	step "$tag"
	if [ "${DCASE_KEEP_PROXY:-0}" != 1 ] || [ -z "$PROXY_PID" ]; then
		proxy_stop_checked
		proxy_log_rotate
	fi
	sender_clear
	mitm_start "$amode" "$cert"
	[ -n "$PROXY_PID" ] || proxy_start "$conf"
	mark=$(wc -l <"$T/client/maillog")
	sender_send "$RCPT" "$subj"
	wait_for 45 "$tag the sender's verdict" _sender_has_status_since "$mark" ||
		fail "$tag the sender logged a delivery status within 45s"
	st=$(sender_status_since "$mark")
	sender_clear # no retries into the rest of this case or the next one
	say "$tag sender: $(printf '%s\n' "$st" | grep -oE 'status=.*' | head -n 1)"
	check_not "$tag nothing bounced" grep -q 'status=bounced' <<<"$st"
	case $VERDICT in
	tls | plain)
		check "$tag the sender delivered it (status=sent)" grep -q 'status=sent' <<<"$st"
		check "$tag the mail is at the mx" wait_for 10 "$subj at the mx" _mx_file "$subj"
		if [ "$VERDICT" = tls ]; then
			check "$tag the mx received it over TLS: $(mx_received "$subj")" mx_received_tls "$subj"
		else
			check "$tag the mx received it in plaintext: $(mx_received "$subj")" mx_received_plain "$subj"
		fi
		;;
	deferred)
		check "$tag the sender deferred it with a 4xx" grep -qE 'status=deferred \(.*[^0-9]4[0-9][0-9][ -]' <<<"$st"
		check_not "$tag the sender never delivered it" grep -q 'status=sent' <<<"$st"
		check_not "$tag the mail is not at the mx" _mx_file "$subj"
		;;
	*) fail "$tag unknown VERDICT '$VERDICT'" ;;
	esac
	if [ "$LEAK" = yes ]; then
		check "$tag the attacker read the envelope (expected in this combination)" \
			mitm_saw_plaintext "^MAIL FROM:<$FROM>"
	else
		check_not "$tag the attacker never saw MAIL FROM in plaintext" mitm_saw_plaintext '^MAIL FROM'
		check_not "$tag the attacker never saw the body" mitm_saw_plaintext "SECRET-BODY-$subj"
	fi
	# the session record is written when the session ends (after a reroute
	# its dest is the address the session moved to)
	wait_for 10 "$tag session record" _proxy_has_session >/dev/null
	if [ -n "$SESSION_RE" ]; then
		IFS='|' read -r -a res <<<"$SESSION_RE"
		check "$tag a session record for $MX1_4 with ${SESSION_RE//|/, }" \
			proxy_session_logged "$MX1_4" "${res[@]}"
	fi
	say "$tag events: $(proxy_event_summary)"
	for e in $EVENTS; do
		IFS=: read -r name sev rest <<<"$e"
		conds=()
		[ -n "$rest" ] && IFS=: read -r -a conds <<<"$rest"
		check "$tag event $name, severity $sev${rest:+, $rest}" proxy_ev "$name" "$sev" "${conds[@]}"
		# alert level: also one human line on stderr (README "Alerts")
		[ "$sev" = alert ] &&
			check "$tag the human alert line for $name on stderr" grep -q "^stsproxy ALERT: $name " "$T/proxy.out"
	done
	extra=$(proxy_events_tsv | while IFS=$'\t' read -r name sev _ _; do
		case " $EVENTS " in *" $name:$sev:"* | *" $name:$sev "*) continue ;; esac
		case " $DCASE_EXTRA_OK " in *" $name "*) [ "$(_dcase_sev_rank "$sev")" -le 1 ] && continue ;; esac
		case " ${DCASE_TOLERATE:-} " in *" $name "*) continue ;; esac
		[ "$(_dcase_sev_rank "$sev")" -ge 2 ] && echo "$name/$sev"
	done | sort -u | tr '\n' ' ')
	check "$tag no unexpected warning or alert event${extra:+ (got: $extra)}" [ -z "$extra" ]
	check "$tag stsproxy is still running" proxy_alive
}

# ca_make_extra: more certificates for the attacker, in $T/pki (after ca_make):
#   self.*  self-signed for mx1.example.test (not from the test CA)
#   eku.*   from the test CA for mx1.example.test, but for TLS clients only
#           (extendedKeyUsage clientAuth): verification fails as "invalid"
ca_make_extra() {
	local d=$T/pki
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 30 \
		-keyout "$d/self.key" -out "$d/self.pem" -subj "/CN=mx1.example.test" \
		-addext "subjectAltName=DNS:mx1.example.test" >/dev/null 2>&1 ||
		it_abort "self-signed certificate failed"
	printf 'subjectAltName=DNS:mx1.example.test\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
		>"$d/eku.ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
		-keyout "$d/eku.key" -out "$d/eku.csr" -subj "/CN=mx1.example.test" >/dev/null 2>&1 &&
		openssl x509 -req -in "$d/eku.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
			-days 30 -sha256 -extfile "$d/eku.ext" -out "$d/eku.pem" >/dev/null 2>&1 ||
		it_abort "clientAuth-only certificate failed"
	chmod 644 "$d"/*.pem "$d"/*.key
}

# ---- stand-alone tests: t_gateway, t_docker --------------------------------------------
# Tests that need none of the Postfix/nsd peers build a small topology of their
# own (ns_up, ns_veth, ns_addr; ns_down from their EXIT trap, then it_rmtemp),
# make $T themselves and report with pass/fail/step/finish. Their mail goes to
# an aiosmtpd sink that records each message with the address it came from.

# sink_require: skip (77) unless python3 has aiosmtpd.
sink_require() {
	[ -x "$PY" ] && "$PY" -c 'import aiosmtpd' 2>/dev/null ||
		it_skip "python3-aiosmtpd not installed (apt-get install python3-aiosmtpd)"
}

# sink_start NS ADDR...: an SMTP server on port 25 of every ADDR in NS that
# accepts any message and appends it to $T/sink.jsonl, one JSON line each:
# "peer" (the SMTP client's address), "from", "rcpt", "data". Waits until it
# listens on the first ADDR (SINK_PID).
sink_start() {
	local ns=$1
	shift
	cat >"$T/sink.py" <<'PYEOF'
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
PYEOF
	: >"$T/sink.jsonl"
	ip netns exec "$ns" "$PY" "$T/sink.py" "$T/sink.jsonl" "$@" >"$T/sink.log" 2>&1 &
	SINK_PID=$!
	wait_for 10 "SMTP sink listening on $1:25" _listening "$ns" "$1" 25 ||
		it_abort "the SMTP sink did not start: $(tail -n 3 "$T/sink.log")"
}

sink_stop() {
	[ -n "$SINK_PID" ] || return 0
	_pid_stop 5 "SMTP sink" "$SINK_PID"
	SINK_PID=
}

# sink_has TEXT: a message containing TEXT arrived.
sink_has() { grep -qF -- "$1" "$T/sink.jsonl" 2>/dev/null; }

# sink_peer TEXT: the SMTP peer address of each message whose data contains TEXT.
sink_peer() {
	"$PY" -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if sys.argv[2] in r["data"]: print(r["peer"])' "$T/sink.jsonl" "$1"
}
