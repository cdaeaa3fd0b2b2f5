#!/usr/bin/env bash
# gateway-setup: divert mail (TCP/25) that a gateway forwards into stsproxy.
#
#   gateway-setup.sh up   [options]   install (or refresh) the interception
#   gateway-setup.sh down [options]   remove it; the ruleset is as before `up`
#   gateway-setup.sh status           show what is installed
#
# Options:
#   --iptables        use iptables/ip6tables (default: nftables)
#   --tproxy          TPROXY instead of REDIRECT (stsproxy listen kind "tproxy",
#                     needs CAP_NET_ADMIN for IP_TRANSPARENT); adds a policy
#                     route: fwmark MARK -> table TABLE -> local delivery
#   --port N          stsproxy's listen port (default 10025)
#   --iface IF        intercept only mail arriving on IF (repeatable; default all)
#   --no-ipv6         IPv4 only (automatic when the kernel has no IPv6)
#   --mark M          TPROXY fwmark (default 0x19)
#   --table T         TPROXY routing table (default 25)
#   --priority P      TPROXY ip rule priority (default 2525)
#   --state FILE      where `up` notes what it created for `down`
#                     (default /run/stsproxy-gateway/net<netns inode>.state)
#
# Everything lives in objects of our own: nft table "inet stsproxy"; iptables
# chains STSPROXY (+ STSPROXY_DIVERT for TPROXY) with one jump from PREROUTING
# per interface; ip rules and routes tagged "proto 25". `up` is idempotent
# (it replaces our objects) and `down` removes exactly them. iptables-nft
# creates its nat/mangle tables on first use; `up` records whether they
# existed and `down` deletes them again when it made them and they are empty.
#
# Mail to the gateway's own addresses is never diverted, and stsproxy's own
# outbound connections leave through OUTPUT, which is not touched, so the
# proxy cannot loop into itself.
set -euo pipefail

prog=gateway-setup
die() { echo "$prog: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
	exit "${1:-2}"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in up | down | status) ;; -h | --help) usage 0 ;; *) usage ;; esac

backend=nft
method=redirect
port=10025
ifaces=()
ipv6=1
mark=0x19
table=25
prio=2525
rtproto=25
state=

while [ $# -gt 0 ]; do
	case "$1" in
	--iptables) backend=iptables ;;
	--nft | --nftables) backend=nft ;;
	--tproxy) method=tproxy ;;
	--redirect) method=redirect ;;
	--port) port=${2:?--port needs a value}; shift ;;
	--iface) ifaces+=("${2:?--iface needs a value}"); shift ;;
	--no-ipv6) ipv6=0 ;;
	--mark) mark=${2:?--mark needs a value}; shift ;;
	--table) table=${2:?--table needs a value}; shift ;;
	--priority) prio=${2:?--priority needs a value}; shift ;;
	--state) state=${2:?--state needs a value}; shift ;;
	-h | --help) usage 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done

# Values end up in firewall commands: accept only what they can be.
in_range() { [[ $1 =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
in_range "$port" 1 65535 || die "bad --port $port"
in_range "$table" 1 252 || die "bad --table $table (1-252)"
in_range "$prio" 1 32765 || die "bad --priority $prio"
[[ $mark =~ ^(0x[0-9a-fA-F]{1,8}|[0-9]{1,10})$ ]] || die "bad --mark $mark"
[ $((mark)) -ne 0 ] || die "bad --mark $mark"
for i in "${ifaces[@]}"; do
	[[ $i =~ ^[A-Za-z0-9_.@:+-]{1,15}$ ]] || die "bad --iface $i"
done
[ -d /proc/sys/net/ipv6 ] || ipv6=0
[ "$(id -u)" = 0 ] || die "must run as root (needs CAP_NET_ADMIN)"

# Per network namespace, so that `ip netns exec` users do not share it.
if [ -z "$state" ]; then
	ns=$(readlink /proc/self/ns/net 2>/dev/null | tr -cd '0-9')
	state=/run/stsproxy-gateway/net${ns:-0}.state
fi

families() {
	echo 4
	[ "$ipv6" = 1 ] && echo 6
	return 0
}

# --- state: what `up` made that `down` cannot recognise by name -------------------
# Lines: "route MARK TABLE PRIORITY" (TPROXY policy routing, so that `down`
# needs no options), "created-table FAMILY TABLE" and "tables-noted"
# (iptables-nft tables that did not exist before the first `up`).
state_get() { if [ -f "$state" ]; then grep "^$1 " "$state" || true; fi; }
state_has() { [ -f "$state" ] && grep -q "^$1\$" "$state"; }
state_put() {
	mkdir -p "$(dirname "$state")"
	echo "$*" >>"$state"
}
state_drop() { # state_drop REGEX: remove matching lines; the file when empty
	[ -f "$state" ] || return 0
	grep -vE "$1" "$state" >"$state.tmp" || true
	if [ -s "$state.tmp" ]; then
		mv "$state.tmp" "$state"
	else
		rm -f "$state.tmp" "$state"
		rmdir "$(dirname "$state")" 2>/dev/null || true
	fi
}

# --- policy routing for TPROXY ----------------------------------------------------
route_up() {
	local f any
	route_down
	for f in $(families); do
		[ "$f" = 4 ] && any=0.0.0.0/0 || any=::/0
		ip -"$f" rule add fwmark "$mark" lookup "$table" priority "$prio" protocol "$rtproto"
		ip -"$f" route replace local "$any" dev lo table "$table" proto "$rtproto"
	done
	state_put route "$mark" "$table" "$prio"
}

route_down() {
	local f m t p
	{
		echo "$mark $table $prio"
		state_get route | cut -d' ' -f2-
	} | sort -u | while read -r m t p; do
		for f in 4 6; do
			[ "$f" = 6 ] && [ ! -d /proc/sys/net/ipv6 ] && continue
			# Only rules tagged with our protocol match (the kernel compares it).
			for _ in 1 2 3 4 5 6 7 8; do
				ip -"$f" rule del fwmark "$m" lookup "$t" priority "$p" \
					protocol "$rtproto" 2>/dev/null || break
			done
			ip -"$f" route flush table "$t" proto "$rtproto" 2>/dev/null || true
		done
	done
	state_drop '^route '
}

# --- nftables -------------------------------------------------------------------
nft_iifmatch() {
	[ ${#ifaces[@]} -eq 0 ] && return 0
	local i set=""
	for i in "${ifaces[@]}"; do set="$set${set:+, }\"$i\""; done
	printf 'iifname { %s } ' "$set"
}

nft_up() {
	local iif
	iif=$(nft_iifmatch)
	local l3=""
	[ "$ipv6" = 0 ] && l3="meta nfproto ipv4 "
	{
		# add + delete + define in one transaction: atomic and idempotent.
		echo "table inet stsproxy {}"
		echo "delete table inet stsproxy"
		echo "table inet stsproxy {"
		if [ "$method" = redirect ]; then
			echo " chain prerouting {"
			echo "  type nat hook prerouting priority -100; policy accept;"
			echo "  ${iif}${l3}tcp dport 25 jump divert"
			echo " }"
			echo " chain divert {"
			echo "  fib daddr type local return"
			echo "  meta l4proto tcp redirect to :$port"
			echo " }"
		else
			echo " chain prerouting {"
			echo "  type filter hook prerouting priority -150; policy accept;"
			echo "  ${iif}${l3}tcp dport 25 jump divert"
			echo " }"
			echo " chain divert {"
			echo "  fib daddr type local return"
			echo "  meta l4proto tcp socket transparent 1 meta mark set $mark accept"
			echo "  meta l4proto tcp tproxy to :$port meta mark set $mark accept"
			echo " }"
		fi
		echo "}"
	} | nft -f -
}

nft_down() {
	if nft list table inet stsproxy >/dev/null 2>&1; then
		nft delete table inet stsproxy
	fi
}

# --- iptables -----------------------------------------------------------------
ipt() { # ipt 4|6 args...
	local f=$1
	shift
	if [ "$f" = 4 ]; then iptables -w "$@"; else ip6tables -w "$@"; fi
}

ipt_is_nft() { iptables -V 2>/dev/null | grep -q nf_tables; }

# iptables-nft makes "ip nat" etc. in nftables on first use; note which of
# the tables we are about to touch did not exist yet.
ipt_note_tables() {
	local f t fam
	ipt_is_nft || return 0
	command -v nft >/dev/null 2>&1 || return 0
	state_has tables-noted && return 0 # keep the record of the first `up`
	for f in $(families); do
		[ "$f" = 4 ] && fam=ip || fam=ip6
		for t in nat mangle; do
			if ! nft list table "$fam" "$t" >/dev/null 2>&1; then
				state_put created-table "$fam" "$t"
			fi
		done
	done
	state_put tables-noted
}

ipt_jumps() { # ipt_jumps 4|6 table -A|-D
	local f=$1 t=$2 op=$3 i
	if [ ${#ifaces[@]} -eq 0 ]; then
		ipt_jump "$f" "$t" "$op"
	else
		for i in "${ifaces[@]}"; do ipt_jump "$f" "$t" "$op" -i "$i"; done
	fi
}

ipt_jump() { # ipt_jump 4|6 table -A|-D [-i IF]
	local f=$1 t=$2 op=$3
	shift 3
	if [ "$op" = -A ]; then
		ipt "$f" -t "$t" -C PREROUTING "$@" -p tcp --dport 25 -j STSPROXY 2>/dev/null ||
			ipt "$f" -t "$t" -I PREROUTING 1 "$@" -p tcp --dport 25 -j STSPROXY
	else
		while ipt "$f" -t "$t" -D PREROUTING "$@" -p tcp --dport 25 -j STSPROXY 2>/dev/null; do :; done
	fi
}

ipt_chain() { # ipt_chain 4|6 table chain: create or flush
	ipt "$1" -t "$2" -N "$3" 2>/dev/null || ipt "$1" -t "$2" -F "$3"
}

ipt_up() {
	local f
	ipt_note_tables
	for f in $(families); do
		if [ "$method" = redirect ]; then
			ipt_chain "$f" nat STSPROXY
			ipt "$f" -t nat -A STSPROXY -m addrtype --dst-type LOCAL -j RETURN
			ipt "$f" -t nat -A STSPROXY -p tcp -j REDIRECT --to-ports "$port"
			ipt_jumps "$f" nat -A
		else
			ipt_chain "$f" mangle STSPROXY_DIVERT
			ipt "$f" -t mangle -A STSPROXY_DIVERT -j MARK --set-mark "$mark"
			ipt "$f" -t mangle -A STSPROXY_DIVERT -j ACCEPT
			ipt_chain "$f" mangle STSPROXY
			ipt "$f" -t mangle -A STSPROXY -m addrtype --dst-type LOCAL -j RETURN
			ipt "$f" -t mangle -A STSPROXY -p tcp -m socket --transparent -j STSPROXY_DIVERT
			ipt "$f" -t mangle -A STSPROXY -p tcp -j TPROXY --on-port "$port" \
				--tproxy-mark "$mark"
			ipt_jumps "$f" mangle -A
		fi
	done
}

# Remove our chains from both tables (a previous `up` may have used the
# other method) for both families.
ipt_down() {
	local f t c i
	for f in 4 6; do
		[ "$f" = 6 ] && [ ! -d /proc/sys/net/ipv6 ] && continue
		command -v "$([ "$f" = 4 ] && echo iptables || echo ip6tables)" >/dev/null || continue
		for t in nat mangle; do
			ipt "$f" -t "$t" -S STSPROXY >/dev/null 2>&1 || continue
			# every jump into our chain, whatever interface it names
			ipt "$f" -t "$t" -S PREROUTING | grep -- '-j STSPROXY$' |
				sed 's/^-A /-D /' | while read -r i; do
				# shellcheck disable=SC2086  # word splitting intended
				ipt "$f" -t "$t" $i
			done
			for c in STSPROXY STSPROXY_DIVERT; do
				ipt "$f" -t "$t" -F "$c" 2>/dev/null || true
			done
			for c in STSPROXY STSPROXY_DIVERT; do
				ipt "$f" -t "$t" -X "$c" 2>/dev/null || true
			done
		done
	done
	ipt_drop_tables
}

# Delete the iptables-nft tables that `up` created, if nothing else is in
# them now (only empty base chains with policy accept, counters aside).
ipt_drop_tables() {
	local fam t rest
	state_get created-table | while read -r _ fam t; do
		nft list table "$fam" "$t" >/dev/null 2>&1 || continue
		rest=$(nft list table "$fam" "$t" | grep -vE \
			'^\s*(table |chain |type .* hook .* policy accept;|}|$)' || true)
		if [ -z "$rest" ]; then
			nft delete table "$fam" "$t"
		else
			note "leaving table $fam $t: it holds rules that are not ours"
		fi
	done
	state_drop '^(created-table |tables-noted$)'
}

# --- main ---------------------------------------------------------------------
check_tools() {
	if [ "$backend" = nft ]; then
		command -v nft >/dev/null || die "nft not found (apt-get install nftables)"
	else
		command -v iptables >/dev/null || die "iptables not found (apt-get install iptables)"
		if [ "$ipv6" = 1 ]; then command -v ip6tables >/dev/null || die "ip6tables not found"; fi
	fi
	command -v ip >/dev/null || die "ip not found (apt-get install iproute2)"
}

warn_forwarding() {
	[ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" = 1 ] ||
		note "warning: net.ipv4.ip_forward is 0: this host does not route"
}

case "$cmd" in
up)
	check_tools
	warn_forwarding
	if [ "$backend" = nft ]; then
		# a previous `up --iptables` must not stay behind
		command -v iptables >/dev/null 2>&1 && ipt_down
		nft_up
	else
		command -v nft >/dev/null 2>&1 && nft_down
		ipt_up
	fi
	if [ "$method" = tproxy ]; then route_up; else route_down; fi
	note "up: $backend $method -> port $port${ifaces[*]:+ on ${ifaces[*]}}$([ "$ipv6" = 1 ] || echo ', IPv4 only')"
	;;
down)
	# Remove whatever backend and method a previous `up` used.
	command -v nft >/dev/null 2>&1 && nft_down
	command -v iptables >/dev/null 2>&1 && ipt_down
	route_down
	note "down"
	;;
status)
	if command -v nft >/dev/null 2>&1 && nft list table inet stsproxy 2>/dev/null; then :; fi
	if command -v iptables >/dev/null 2>&1; then
		for t in nat mangle; do
			iptables -w -t "$t" -S 2>/dev/null | grep STSPROXY || true
			ip6tables -w -t "$t" -S 2>/dev/null | grep STSPROXY || true
		done
	fi
	ip -4 rule show priority "$prio" 2>/dev/null || true
	ip -6 rule show priority "$prio" 2>/dev/null || true
	;;
esac
