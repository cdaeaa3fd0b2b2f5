#!/usr/bin/env bash
# bench/run.sh: stsproxy against the relays it competes with, side by side, in
# one run on this machine. Not a test: it prints a table and writes
# bench/results/latest.json; nothing here fails on a missed target.
#
# Scenarios (all on 127.0.0.1; one message of ~4 KB per SMTP session):
#   A  direct        load client -> STARTTLS sink (no relay: the floor)
#   B  haproxy       TCP mode, plaintext (the floor of any relay hop)
#   C  stunnel       client mode, "protocol = smtp" STARTTLS upstream with
#                    verifyChain + checkHost (test CA); sink refuses resumption
#   Cr stunnel       as C, sink allows resumption (stunnel resumes by default)
#   D  stsproxy      upgrade mode, fixed listener, tls.resumption = false
#   E  stsproxy      upgrade mode, tls.resumption = true (repeat MX)
#   F  stsproxy      monitor mode (plaintext relay + observation); compare B
# For each: msgs/s at 1, 10 and 100 concurrent sessions, relay CPU per
# message (utime+stime from /proc/PID/stat over the measurement window),
# client-side p50/p99 session latency, and relay RSS with 1000 idle sessions
# (after EHLO; for C and D also after RCPT, i.e. with upstream TLS up).
#
# usage: bench/run.sh [--quick] [--profile | --instr] [--no-instr] [--no-nice]
#                     [--only A,B,...] [--stsproxy PATH] [--keys ecdsa|rsa]
#                     [--keep]
#   --quick     short windows, no callgrind phase (whole run under 2 minutes)
#   --profile   instead of the benchmark: perf profiles of stsproxy (D, E, F)
#               and stunnel (C) at 10 sessions, top symbols into results/
#   --instr     only the callgrind phase: user-space instructions per message
#               of each relay (independent of other load on the machine), and
#               stsproxy's hot spots in results/instr-{D,E,F}.txt; a full run
#               ends with this phase too (--no-instr skips it)
#   --only      run a subset of scenarios (A B C Cr D E F)
#   --stsproxy  binary to test (default: build-bench/stsproxy, built with
#               CMAKE_BUILD_TYPE=Release if missing)
#   --keys      key type of the test CA and the sink's certificate: ecdsa
#               (P-256, the default) or rsa (2048 bits, what many MX hosts
#               still use; verifying RSA signatures is cheap, ECDSA is not)
#   --keep      keep the scratch directory (configs, logs, raw JSON)
#   --no-nice   do not raise the benchmark's priority (by default every
#               process of the benchmark runs at nice -10, so that other
#               users' jobs on a shared machine disturb the numbers less)
#
# Needs: gcc, libssl-dev, haproxy, stunnel4, python3 (Debian's), iproute2
# (ss), util-linux (taskset); perf for --profile. Run as root or with
# `ulimit -Hn` >= 5000 (1000 idle sessions: 2000 descriptors in the relay).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RESULTS=$HERE/results
PY=/usr/bin/python3
QUICK=0
PROFILE=0
INSTR=0
NO_INSTR=0
KEEP=0
NICE=1
ONLY="A B C Cr D E F"
STS=""
KEYS=ecdsa

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--profile) PROFILE=1 ;;
	--instr) INSTR=1 ;;
	--no-instr) NO_INSTR=1 ;;
	--keep) KEEP=1 ;;
	--no-nice) NICE=0 ;;
	--only) ONLY=$(echo "$2" | tr ',' ' '); shift ;;
	--stsproxy) STS=$2; shift ;;
	--keys) KEYS=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

if [ "$QUICK" = 1 ]; then
	WARM=0.5 WIN=2 IDLE_N=1000 IDLE_STAGES_TLS="ehlo" DO_INSTR=0
else
	WARM=2 WIN=10 IDLE_N=1000 IDLE_STAGES_TLS="ehlo rcpt" DO_INSTR=1
fi
INSTR_TLS_N=50 INSTR_PLAIN_N=200 SYSCALL_N=300
LEVELS="1 10 100"
BODY=4096

# --- processes: every one we start is recorded and killed on exit -----------
WORK=$(mktemp -d /tmp/stsproxy-bench.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	sleep 0.3
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
	done
	if [ "$KEEP" = 1 ]; then
		echo "scratch kept in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }

# Raise the descriptor limit for every process started from here.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 5000 ]; then
	say "run.sh: ulimit -n is $(ulimit -n); 1000 idle sessions need >= 5000"
	exit 1
fi

# --- pinning: relay on core 0, load client and sink on core 1 ---------------
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
	PIN_RELAY="taskset -c 0" PIN_LOAD="taskset -c 1"
	PINNING="relay on core 0; load client and sink on core 1"
else
	PIN_RELAY="" PIN_LOAD=""
	PINNING="none (1 core)"
fi
if [ "$NICE" = 1 ] && nice -n -10 true 2>/dev/null; then
	PIN_RELAY="nice -n -10 $PIN_RELAY" PIN_LOAD="nice -n -10 $PIN_LOAD"
	PINNING="$PINNING; all benchmark processes at nice -10"
fi

# --- binaries ------------------------------------------------------------------
if [ -z "$STS" ]; then
	STS=$ROOT/build-bench/stsproxy
	if [ ! -x "$STS" ]; then
		say "building $STS (Release)"
		cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
		cmake --build "$ROOT/build-bench" -j2 --target stsproxy >/dev/null
	fi
fi
[ -x "$STS" ] || { say "no stsproxy binary at $STS"; exit 1; }
gcc -O2 -Wall -o "$WORK/sink" "$HERE/sink.c" -lssl -lcrypto
gcc -O2 -Wall -o "$WORK/loadgen" "$HERE/loadgen.c" -lm
SINK=$WORK/sink
LOADGEN=$WORK/loadgen

# --- test PKI: CA and server certificate (--keys), fresh per run -------------
case "$KEYS" in
ecdsa) NEWKEY=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
rsa) NEWKEY=(-newkey rsa:2048) ;;
*) echo "run.sh: --keys must be ecdsa or rsa" >&2; exit 2 ;;
esac
PKI=$WORK/pki
mkdir -p "$PKI"
(
	cd "$PKI"
	openssl req -x509 "${NEWKEY[@]}" -nodes -sha256 -days 2 \
		-subj "/CN=stsproxy bench CA" -keyout ca.key -out ca.pem \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	openssl req -new "${NEWKEY[@]}" -nodes -sha256 \
		-subj "/CN=mx.bench.test" -keyout mx.key -out mx.csr 2>/dev/null
	printf '%s\n' "subjectAltName=DNS:mx.bench.test" "basicConstraints=CA:FALSE" \
		"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >ext.cnf
	openssl x509 -req -in mx.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-sha256 -extfile ext.cnf -out mx.pem 2>/dev/null
	openssl verify -CAfile ca.pem mx.pem >/dev/null
)

# --- ports: a free block below the ephemeral range ---------------------------
port_free() { ! ss -Htan "sport = :$1" | grep -q .; }
BASE=""
for b in $(seq 30000 20 32600); do
	if port_free "$b" && port_free $((b + 1)) && port_free $((b + 2)); then
		BASE=$b
		break
	fi
done
[ -n "$BASE" ] || { say "no free ports"; exit 1; }
SINK_PORT=$BASE
RELAY_PORT=$((BASE + 1))

wait_port() { # port pid
	local i
	for i in $(seq 1 600); do
		if ss -Htln "sport = :$1" | grep -q .; then return 0; fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

wait_gone() { # pid [seconds]
	local i n=$(( ${2:-10} * 20 ))
	for i in $(seq 1 "$n"); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -9 "$1" 2>/dev/null || true
}

stop() { # pid
	[ -n "${1:-}" ] || return 0
	kill "$1" 2>/dev/null || true
	wait_gone "$1" 10
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo null; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo null; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo null; }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# --- the sink -----------------------------------------------------------------
SINK_PID=""
start_sink() { # id resume(0|1)
	local flags=""
	[ "$2" = 1 ] && flags="-R"
	$PIN_LOAD "$SINK" -a 127.0.0.1 -p "$SINK_PORT" -c "$PKI/mx.pem" -k "$PKI/mx.key" \
		$flags -s "$WORK/$1.sinkstats" 2>>"$WORK/$1.sink.err" &
	SINK_PID=$!
	PIDS+=("$SINK_PID")
	wait_port "$SINK_PORT" "$SINK_PID" || { say "sink did not start"; exit 1; }
}

sink_snapshot() { # out-file
	local f=$WORK/$CUR.sinkstats n i
	n=$( [ -f "$f" ] && wc -l <"$f" || echo 0)
	kill -USR1 "$SINK_PID"
	for i in $(seq 1 40); do
		[ -f "$f" ] && [ "$(wc -l <"$f")" -gt "$n" ] && break
		sleep 0.05
	done
	tail -n 1 "$f" >"$1"
}

# --- the relays -----------------------------------------------------------------
RELAY_PID=""
RELAY_WRAP="" # e.g. valgrind, for --instr
start_relay() { # id
	local id=$1 conf
	case "$id" in
	A) RELAY_PID=""; return 0 ;;
	B)
		conf=$WORK/haproxy.cfg
		cat >"$conf" <<-EOF
		global
		    maxconn 8000
		    nbthread 1
		defaults
		    mode tcp
		    timeout connect 10s
		    timeout client 300s
		    timeout server 300s
		frontend smtp_in
		    bind 127.0.0.1:$RELAY_PORT
		    default_backend sink
		backend sink
		    server sink 127.0.0.1:$SINK_PORT
		EOF
		$PIN_RELAY $RELAY_WRAP haproxy -db -f "$conf" >>"$WORK/B.relay.log" 2>&1 &
		;;
	C | Cr)
		conf=$WORK/stunnel.conf
		# syslog = no: without a syslog daemon glibc's syslog() falls back
		# to /dev/console (LOG_CONS), a serial console here, which made
		# stunnel 2-3x slower; its own log file at the default level
		# (notice) stays, as stsproxy keeps its per-session record.
		cat >"$conf" <<-EOF
		foreground = quiet
		syslog = no
		pid =
		output = $WORK/$id.relay.log
		[smtp-out]
		client = yes
		accept = 127.0.0.1:$RELAY_PORT
		connect = 127.0.0.1:$SINK_PORT
		protocol = smtp
		verifyChain = yes
		CAfile = $PKI/ca.pem
		checkHost = mx.bench.test
		sni = mx.bench.test
		EOF
		$PIN_RELAY $RELAY_WRAP stunnel "$conf" >>"$WORK/$id.relay.err" 2>&1 &
		;;
	D | E | F)
		conf=$WORK/$id.conf
		local mode=upgrade resume=false
		[ "$id" = E ] && resume=true
		[ "$id" = F ] && mode=monitor
		# A static "verify" policy for the recipient domain: a failed
		# verification would defer the recipient and show up as client
		# errors, so every counted message went over verified TLS.
		# log.level = notice: the one outcome record per session.
		cat >"$conf" <<-EOF
		mode = "$mode";
		listen = ( { kind = "fixed"; address = "127.0.0.1"; port = $RELAY_PORT;
		             upstream = "127.0.0.1:$SINK_PORT"; upstream_name = "mx.bench.test"; } );
		tls = { ca_file = "$PKI/ca.pem"; resumption = $resume; };
		policy = { default_level = "may";
		           static = ( { domain = "bench.test"; level = "verify"; } ); };
		limits = { max_sessions = 5000; };
		log = { format = "json"; level = "notice"; file = "$WORK/$id.relay.log"; };
		sts = { enabled = false; };
		state_dir = "$WORK/state-$id";
		EOF
		mkdir -p "$WORK/state-$id"
		"$STS" -c "$conf" --check-config >/dev/null
		$PIN_RELAY $RELAY_WRAP "$STS" -c "$conf" 2>>"$WORK/$id.relay.err" &
		;;
	esac
	RELAY_PID=$!
	PIDS+=("$RELAY_PID")
	wait_port "$RELAY_PORT" "$RELAY_PID" || { say "$id: relay did not start"; return 1; }
}

# IDLE_N sessions taken to the end of EHLO (or RCPT) and held; RSS then.
idle_test() { # id stage label
	local id=$1 stage=$2 label=$3 rss0 fifo=$WORK/$1.idle.fifo lg line tag
	tag=$stage-$label
	rss0=$(rss_kib "$RELAY_PID")
	rm -f "$fifo"
	mkfifo "$fifo"
	$PIN_LOAD "$LOADGEN" -p "$RELAY_PORT" -I "$IDLE_N" -S "$stage" -c 50 -T 120 \
		-o "$WORK/$id.idle-$tag.json" >"$fifo" &
	lg=$!
	PIDS+=("$lg")
	line=""
	read -r -t 100 line <"$fifo" || true
	sleep 1
	local rss
	rss=$(rss_kib "$RELAY_PID")
	echo "{\"stage\":\"$stage\",\"process\":\"$label\",\"ready\":\"$line\",\"rss_before_kib\":$rss0,\"rss_kib\":$rss,\"threads\":$(threads "$RELAY_PID"),\"fds\":$(nfds "$RELAY_PID")}" \
		>"$WORK/$id.idle-$tag.rss.json"
	kill -TERM "$lg" 2>/dev/null || true
	wait "$lg" 2>/dev/null || true
	say "   idle after ${stage^^}, $label relay: $line, RSS $((rss / 1024)) MiB"
}

# --- one scenario ----------------------------------------------------------------
CUR=""
run_scenario() { # id resume idle-stages
	local id=$1 resume=$2 stages=$3 c port procs
	CUR=$id
	say "== $id"
	start_sink "$id" "$resume"
	start_relay "$id" || { echo "{\"startup_failed\":true}" >"$WORK/$id.fail.json"; stop "$SINK_PID"; return 0; }
	port=$RELAY_PORT
	[ "$id" = A ] && port=$SINK_PORT
	[ -n "$RELAY_PID" ] && echo "$(rss_kib "$RELAY_PID")" >"$WORK/$id.rss_start"
	for c in $LEVELS; do
		procs="-P sink=$SINK_PID"
		[ -n "$RELAY_PID" ] && procs="$procs -P relay=$RELAY_PID"
		sink_snapshot "$WORK/$id.c$c.sink0.json"
		$PIN_LOAD "$LOADGEN" -p "$port" -c "$c" -w "$WARM" -t "$WIN" -D 15 -l "$BODY" \
			$procs -o "$WORK/$id.c$c.json"
		sink_snapshot "$WORK/$id.c$c.sink1.json"
		if [ -n "$RELAY_PID" ]; then
			echo "$(rss_kib "$RELAY_PID") $(hwm_kib "$RELAY_PID")" >"$WORK/$id.c$c.rss"
			if ! kill -0 "$RELAY_PID" 2>/dev/null; then
				say "$id: relay died during c=$c"
				echo "{\"died_at\":$c}" >"$WORK/$id.fail.json"
				break
			fi
		fi
		$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print("   c=%-4s %8.1f msg/s  p50 %7.2f ms  p99 %7.2f ms  errors %d" % (sys.argv[2], d["msgs_per_s"], d["p50_ms"] or 0, d["p99_ms"] or 0, d["errors"]))' "$WORK/$id.c$c.json" "$c" >&2
	done
	# leak check: descriptors in the relay and connections open at the sink
	# once the load is over and has had a second to settle
	sleep 1
	sink_snapshot "$WORK/$id.settle.sink.json"
	if [ -n "$RELAY_PID" ]; then nfds "$RELAY_PID" >"$WORK/$id.fds_end"; fi
	# IDLE_N idle sessions in the relay that just served the load: its heap
	# has been used, as in a long-running daemon
	if [ -n "$RELAY_PID" ] && [ -n "$stages" ]; then
		idle_test "$id" ehlo after-load
	fi
	stop "$RELAY_PID"

	# IDLE_N idle sessions on a fresh relay process, after each stage
	if [ "$id" != A ]; then
		local stage
		for stage in $stages; do
			start_relay "$id" || continue
			sleep 0.2
			idle_test "$id" "$stage" fresh
			stop "$RELAY_PID"
		done
	fi
	stop "$SINK_PID"
}

# --- profile mode ------------------------------------------------------------------
if [ "$PROFILE" = 1 ]; then
	set +o pipefail
	command -v perf >/dev/null || { say "perf not installed"; exit 1; }
	mkdir -p "$RESULTS"
	for id in $ONLY; do
		case "$id" in C | D | E | F) ;; *) continue ;; esac
		CUR=$id
		resume=0
		[ "$id" = E ] && resume=1
		start_sink "$id" "$resume"
		start_relay "$id"
		c=10
		[ "$id" = F ] && c=100
		perf record -F 999 -g -p "$RELAY_PID" -o "$WORK/$id.perf" -- sleep 6 \
			>/dev/null 2>&1 &
		pf=$!
		PIDS+=("$pf")
		$PIN_LOAD "$LOADGEN" -p "$RELAY_PORT" -c "$c" -w 0.5 -t 5 -o "$WORK/$id.prof.json"
		wait "$pf" || true
		out=$RESULTS/profile-$id.txt
		{
			echo "# perf profile of the relay in scenario $id at $c sessions ($(date -u +%FT%TZ))"
			cat "$WORK/$id.prof.json"
			echo "# self time by DSO"
			perf report -i "$WORK/$id.perf" --no-children --sort dso --stdio -g none \
				2>/dev/null | grep -v '^#' | grep -v '^$' | head -15 || true
			echo "# self time by symbol"
			perf report -i "$WORK/$id.perf" --no-children --sort dso,symbol --stdio \
				-g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 || true
			echo "# inclusive time by symbol"
			perf report -i "$WORK/$id.perf" --children --sort symbol --stdio -g none \
				2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 || true
		} >"$out"
		say "wrote $out"
		stop "$RELAY_PID"
		stop "$SINK_PID"
	done
	exit 0
fi

# --- instruction counts under callgrind ----------------------------------------
# User-space instructions per message of each relay: independent of other
# load on the machine (kernel time is not counted: see the CPU columns).
run_instr() {
	local id resume n dump total ok per hs s0 s1 first=1 summary=$WORK/instr.json
	set +o pipefail
	echo "{" >"$summary"
	for id in $ONLY; do
		case "$id" in B | C | Cr | D | E | F) ;; *) continue ;; esac
		CUR=$id
		resume=0
		case "$id" in Cr | E) resume=1 ;; esac
		n=$INSTR_TLS_N
		case "$id" in B | F) n=$INSTR_PLAIN_N ;; esac
		start_sink "$id.instr" "$resume"
		RELAY_WRAP="valgrind -q --tool=callgrind --callgrind-out-file=$WORK/$id.cg.%p"
		if ! start_relay "$id"; then
			RELAY_WRAP=""
			stop "$SINK_PID"
			continue
		fi
		RELAY_WRAP=""
		# warm-up: start-up work, and for E/Cr a session to resume
		$PIN_LOAD "$LOADGEN" -p "$RELAY_PORT" -c 1 -n 10 -o "$WORK/$id.instr-warm.json"
		callgrind_control -z "$RELAY_PID" >/dev/null 2>&1
		CUR=$id.instr
		sink_snapshot "$WORK/$id.instr.sink0.json"
		$PIN_LOAD "$LOADGEN" -p "$RELAY_PORT" -c 1 -n "$n" -o "$WORK/$id.instr.json"
		sink_snapshot "$WORK/$id.instr.sink1.json"
		callgrind_control -d "$RELAY_PID" >/dev/null 2>&1
		sleep 0.5
		dump=$(ls -t "$WORK/$id.cg.$RELAY_PID".* 2>/dev/null | head -1)
		stop "$RELAY_PID"
		stop "$SINK_PID"
		[ -n "$dump" ] || { say "$id: no callgrind dump"; continue; }
		total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}') || true
		ok=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["sessions_ok"])' "$WORK/$id.instr.json")
		if [ "$id" = D ] || [ "$id" = E ] || [ "$id" = F ]; then
			{
				echo "# callgrind, scenario $id: $ok sessions at concurrency 1 after a warm-up of 10"
				echo "# Ir = user-space instructions; per message = total / $ok"
				echo "# inclusive"
				callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n '/file:function/,$p' | head -60
				echo "# self"
				callgrind_annotate "$dump" 2>/dev/null | sed -n '/file:function/,$p' | head -40
			} >"$RESULTS/instr-$id.txt"
		fi
		per=$($PY -c 'import sys; t,n=int(sys.argv[1] or 0),int(sys.argv[2]); print(round(t/n) if n and t else "null")' "${total:-0}" "$ok")
		s0=$WORK/$id.instr.sink0.json s1=$WORK/$id.instr.sink1.json
		hs=$($PY -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); print("%d/%d" % (b["hs_full"]-a["hs_full"], b["hs_resumed"]-a["hs_resumed"]))' "$s0" "$s1")
		[ "$first" = 1 ] || echo "," >>"$summary"
		first=0
		printf ' "%s": {"sessions": %s, "ir_total": %s, "ir_per_msg": %s, "sink_handshakes_full_resumed": "%s"}' \
			"$id" "$ok" "${total:-null}" "$per" "$hs" >>"$summary"
		say "   $id: $per user-space instructions per message ($ok sessions, handshakes full/resumed $hs)"
	done
	printf '\n}\n' >>"$summary"
	set -o pipefail
}

# System calls per message: strace -c attached to the running relay for a
# fixed number of sessions (10 in parallel). Counts are exact and do not
# depend on other load; strace's own slowdown does not matter for them.
run_syscalls() {
	local id resume out first=1 summary=$WORK/syscalls.json sp n=$SYSCALL_N
	command -v strace >/dev/null || return 0
	echo "{" >"$summary"
	for id in $ONLY; do
		case "$id" in B | C | D | E | F) ;; *) continue ;; esac
		CUR=$id.sc
		resume=0
		[ "$id" = E ] && resume=1
		start_sink "$id.sc" "$resume"
		start_relay "$id" || { stop "$SINK_PID"; continue; }
		$PIN_LOAD "$LOADGEN" -p "$RELAY_PORT" -c 10 -n 20 -o "$WORK/$id.sc-warm.json"
		out=$WORK/$id.strace
		strace -c -f -p "$RELAY_PID" -o "$out" 2>/dev/null &
		sp=$!
		PIDS+=("$sp")
		sleep 0.5
		$PIN_LOAD "$LOADGEN" -p "$RELAY_PORT" -c 10 -n "$n" -o "$WORK/$id.sc.json"
		sleep 0.3
		kill -INT "$sp" 2>/dev/null || true
		wait "$sp" 2>/dev/null || true
		stop "$RELAY_PID"
		stop "$SINK_PID"
		[ "$first" = 1 ] || echo "," >>"$summary"
		first=0
		$PY - "$out" "$WORK/$id.sc.json" "$id" >>"$summary" <<-'PYEOF'
		import json, sys
		calls, errs = {}, {}
		for line in open(sys.argv[1]):
		    f = line.split()
		    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
		        name = f[-1]
		        calls[name] = int(f[3])
		        errs[name] = int(f[4]) if len(f) == 6 else 0
		ok = json.load(open(sys.argv[2]))["sessions_ok"]
		per = {k: round(v / ok, 2) for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v / ok >= 0.5}
		print(' "%s": %s' % (sys.argv[3], json.dumps({"sessions": ok,
		      "syscalls_per_msg": round(sum(calls.values()) / ok, 1),
		      "failed_per_msg": round(sum(errs.values()) / ok, 1), "by_call": per})), end="")
		print("   %s: %.1f system calls per message (%s)" % (sys.argv[3], sum(calls.values()) / ok,
		      ", ".join("%s %.1f" % kv for kv in list(per.items())[:5])), file=sys.stderr)
		PYEOF
	done
	printf '\n}\n' >>"$summary"
}

if [ "$INSTR" = 1 ]; then
	command -v callgrind_control >/dev/null || { say "valgrind not installed"; exit 1; }
	mkdir -p "$RESULTS"
	run_instr
	run_syscalls
	cp "$WORK/instr.json" "$RESULTS/instr-latest.json"
	cp "$WORK/syscalls.json" "$RESULTS/syscalls-latest.json" 2>/dev/null || true
	say "wrote $RESULTS/instr-latest.json"
	exit 0
fi

# --- the benchmark --------------------------------------------------------------------
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "stsproxy bench: $( [ "$QUICK" = 1 ] && echo quick || echo full ) run, warm-up ${WARM}s + window ${WIN}s per level, pinning: $PINNING"
say "scratch: $WORK"
for id in $ONLY; do
	case "$id" in
	A) run_scenario A 0 "" ;;
	B) run_scenario B 0 "ehlo" ;;
	C) run_scenario C 0 "$IDLE_STAGES_TLS" ;;
	Cr) run_scenario Cr 1 "" ;;
	D) run_scenario D 0 "$IDLE_STAGES_TLS" ;;
	E) run_scenario E 1 "ehlo" ;;
	F) run_scenario F 0 "ehlo" ;;
	*) say "unknown scenario $id" ;;
	esac
done
if [ "$DO_INSTR" = 1 ] && [ "$NO_INSTR" = 0 ] && command -v callgrind_control >/dev/null; then
	say "== instructions per message under callgrind (concurrency 1)"
	mkdir -p "$RESULTS"
	run_instr
	say "== system calls per message under strace -c (concurrency 10)"
	run_syscalls
fi
T_END=$(date +%s)

# --- machine, then the table and the JSON -------------------------------------------
MBED_H=$(grep -h '^MBEDTLS_INCLUDE_DIR:' "$(dirname "$STS")/CMakeCache.txt" 2>/dev/null | cut -d= -f2)
MBED_VER=$(grep -h 'define MBEDTLS_VERSION_STRING ' "$MBED_H/mbedtls/build_info.h" 2>/dev/null |
	awk '{print $3}' | tr -d '"')
cat >"$WORK/machine.json" <<EOF
{
 "nproc": $NCPU,
 "cpu_model": $($PY -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"),
 "kernel": "$(uname -r)",
 "mbedtls": "${MBED_VER:-unknown}",
 "openssl": "$(openssl version | awk '{print $2}')",
 "haproxy": "$(haproxy -v 2>/dev/null | head -1 | awk '{print $3}')",
 "stunnel": "$(stunnel -version 2>&1 | awk '/^stunnel/ {print $2; exit}')",
 "stsproxy": "$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)",
 "pinning": "$PINNING",
 "loadavg_start": "$LOAD_START",
 "loadavg_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "mode": "$( [ "$QUICK" = 1 ] && echo quick || echo full )",
 "warmup_s": $WARM, "window_s": $WIN, "body_bytes": $BODY, "idle_sessions": $IDLE_N,
 "keys": "$KEYS",
 "started": "$(date -u -d "@$T_START" +%FT%TZ)", "seconds": $((T_END - T_START))
}
EOF
mkdir -p "$RESULTS"
$PY "$HERE/report.py" "$WORK" "$RESULTS/latest.json" "$ONLY" | tee "$RESULTS/latest.txt"
# Keep what explains a failure: the relays' non-"ok" log lines.
mkdir -p "$RESULTS/logs-latest"
rm -f "$RESULTS/logs-latest/"*
for f in "$WORK"/*.relay.log "$WORK"/*.relay.err "$WORK"/*.sink.err; do
	[ -s "$f" ] || continue
	grep -v -e '"result":"ok"' -e 'Connection closed:' -e 'accepted connection' \
		-e 's_connect: connected' -e 'connected remote server' -e 'Certificate accepted' \
		"$f" | head -n 300 >"$RESULTS/logs-latest/$(basename "$f")" || true
done
