#!/usr/bin/env bash
# t_docker: the stsproxy image as a sidecar, built and run with podman.
#
#   netns APP (203.0.113.10 / 2001:db8:3::10), shared by two containers:
#     stsproxy container (--cap-add NET_ADMIN): entrypoint installs the
#       REDIRECT of outbound TCP/25 and runs stsproxy as uid 10025
#     client container: a legacy SMTP client (bash /dev/tcp), no TLS
#      |  veth
#   netns SRV (203.0.113.25 / 2001:db8:3::25): aiosmtpd on port 25
#
# A test-only nft table in APP rejects any TCP/25 packet leaving APP that is
# not the proxy's (skuid 10025): a message can only arrive by going through
# stsproxy. Checked for the generated config (env, nftables) and a mounted
# config file (iptables); the rules must be gone after `podman stop`; a
# container without NET_ADMIN must refuse to start with a clear message.
#
# Containers only ever use --network=ns:/run/netns/... or none, never
# podman's bridge (that would change the host's NAT and forwarding).
#
# Needs root, podman, runc, debootstrap (or the cached base tarball), python3
# with aiosmtpd: exits 77 without them. The base image tarball is cached in
# $STSPROXY_CI_CACHE (default /var/cache/stsproxy-ci); everything else this
# run makes (storage, containers, images, namespaces) is removed at the end
# unless STSPROXY_CI_KEEP=1 (keeps one storage with the build cache).
# STSPROXY_TEST_MAILER=1 adds the compose example's Postfix mailer image
# (docker/mailer) relaying through the sidecar (one more image build).
# STSPROXY_DOCKER_IMAGE=NAME skips the build and uses that image (with
# STSPROXY_CI_KEEP=1). A cold run takes several minutes (apt in the build).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${STSPROXY_SRC:-$(cd "$here/../.." && pwd)}
py=/usr/bin/python3
uid=10025
port=10025
DL_TAG=t_docker
# shellcheck source=tests/integration/docker-lib.sh
. "$here/docker-lib.sh"

skip() { echo "t_docker: SKIP: $*"; exit 77; }
dl_usable || skip "podman cannot run here (see above)"
if ! [ -x "$py" ] || ! "$py" -c 'import aiosmtpd' 2>/dev/null; then
	skip "python3-aiosmtpd not installed (apt-get install python3-aiosmtpd)"
fi

tag=stsdk$$
nsa=$tag-app
nss=$tag-srv
# not in /tmp: a shared /tmp gets swept by other people's clean-ups
mkdir -p "$DL_CACHE"
tmp=$(mktemp -d "$DL_CACHE/t_docker.XXXXXX")
chmod 0755 "$tmp"
image=${STSPROXY_DOCKER_IMAGE:-localhost/stsproxy:t_docker-$$}
pass=0
fail=0
server_pid=

log() { echo "t_docker: $*"; }
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
not_ok() { fail=$((fail + 1)); echo "FAIL - $*"; }

cleanup() {
	local ns p
	if [ -n "${DL_RUN:-}" ]; then
		dl_podman rm -f -t 0 "$tag-proxy" "$tag-client" "$tag-nocap" >/dev/null 2>&1
		dl_podman rm -f -t 0 "$tag-mailer" >/dev/null 2>&1
		if [ "${STSPROXY_CI_KEEP:-0}" = 1 ]; then
			[ -z "${STSPROXY_DOCKER_IMAGE:-}" ] && dl_podman tag "$image" localhost/stsproxy:latest >/dev/null 2>&1
			dl_podman rmi -f "localhost/stsproxy:t_docker-$$" >/dev/null 2>&1
		else
			dl_teardown
		fi
	fi
	for ns in "$nsa" "$nss"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # wait_for SECONDS CMD...: poll every 0.2 s, bounded
	local n=$(($1 * 5))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		n=$((n - 1))
	done
	return 1
}

# --- image ---------------------------------------------------------------------------
dl_setup
log "podman storage $DL_RUN ($DL_DRIVER), nofile $DL_NOFILE, nproc $DL_NPROC"
if [ -n "${STSPROXY_DOCKER_IMAGE:-}" ]; then
	dl_podman image exists "$image" || { log "FAIL: no image $image"; exit 1; }
else
	dl_base_image || { log "FAIL: no base image"; exit 1; }
	log "building $image from $src (a cold build takes minutes)"
	start=$(date +%s)
	if ! dl_podman build --pull=never --isolation=chroot --network=host --format docker \
		--ulimit "nofile=$DL_NOFILE:$DL_NOFILE" --ulimit "nproc=$DL_NPROC:$DL_NPROC" \
		--build-arg "REVISION=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
		--build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		-f "$src/docker/Dockerfile" -t "$image" "$src" >"$tmp/build.log" 2>&1; then
		tail -25 "$tmp/build.log"
		log "FAIL: image build failed (log above)"
		echo "t_docker: 0 passed, 1 failed"
		exit 1
	fi
	log "built in $(($(date +%s) - start)) s"
fi
size=$(dl_podman image inspect --format '{{.Size}}' "$image")
log "image size $((size / 1000000)) MB"

meta=$(dl_podman image inspect --format \
	'{{.Config.User}}|{{.Config.StopSignal}}|{{index .Config.Labels "org.opencontainers.image.title"}}|{{if .HealthCheck}}health{{end}}' \
	"$image")
case "$meta" in
"|SIGTERM|stsproxy|health") ok "image metadata: STOPSIGNAL, OCI labels, HEALTHCHECK ($meta)" ;;
*) not_ok "image metadata unexpected: $meta (want |SIGTERM|stsproxy|health)" ;;
esac

# --- namespaces ----------------------------------------------------------------------
build_net() {
	ip netns add "$nsa" && ip netns add "$nss" || return 1
	ip -n "$nsa" link set lo up
	ip -n "$nss" link set lo up
	ip link add "${tag}a" netns "$nsa" type veth peer name "${tag}s" netns "$nss" || return 1
	ip -n "$nsa" addr add 203.0.113.10/24 dev "${tag}a"
	ip -n "$nsa" addr add 2001:db8:3::10/64 dev "${tag}a" nodad
	ip -n "$nss" addr add 203.0.113.25/24 dev "${tag}s"
	ip -n "$nss" addr add 2001:db8:3::25/64 dev "${tag}s" nodad
	ip -n "$nsa" link set "${tag}a" up
	ip -n "$nss" link set "${tag}s" up
	# The guard: after the nat OUTPUT redirect a diverted connection goes to
	# lo; anything else to port 25 that leaves APP must be the proxy's.
	ip netns exec "$nsa" nft -f - <<EOF
table inet t_docker_guard {
	chain out {
		type filter hook output priority 0; policy accept;
		oifname != "lo" tcp dport 25 meta skuid != $uid counter reject with tcp reset
	}
}
EOF
}

start_server() {
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
	: >"$tmp/received.jsonl"
	ip netns exec "$nss" "$py" "$tmp/server.py" "$tmp/received.jsonl" \
		203.0.113.25 2001:db8:3::25 >"$tmp/server.log" 2>&1 &
	server_pid=$!
	wait_for 10 ip netns exec "$nss" sh -c 'ss -Hltn "sport = :25" | grep -q 203.0.113.25'
}

# The legacy client: plain SMTP over bash's /dev/tcp, run as root in a
# second container in the same network namespace.
cat >"$tmp/client.sh" <<'EOF'
set -e
exec 3<>"/dev/tcp/$1/25"
expect() {
	local line
	while IFS= read -r -t 20 line <&3; do
		line=${line%$'\r'}
		echo "S: $line" >&2
		case "$line" in "$1"-*) continue ;; "$1 "*) return 0 ;; *) return 1 ;; esac
	done
	return 1
}
send() { printf '%s\r\n' "$1" >&3; echo "C: $1" >&2; }
expect 220
send "EHLO client.example"; expect 250
send "MAIL FROM:<legacy@client.example>"; expect 250
send "RCPT TO:<user@mx.example.net>"; expect 250
send "DATA"; expect 354
send "Subject: $2"; send ""; send "body $2"; send "."; expect 250
send "QUIT"; expect 221
EOF

send_and_check() { # send_and_check label dest
	local label=$1 dest=$2 token
	token="t_docker-$$-$RANDOM$RANDOM"
	if ! dl_podman_t 60 run --rm --pull=never --name "$tag-client" \
		--network "ns:/run/netns/$nsa" -v "$tmp/client.sh:/client.sh:ro" \
		"$image" bash /client.sh "$dest" "$token" >"$tmp/client.log" 2>&1; then
		not_ok "$label: client failed: $(grep -v '^C:' "$tmp/client.log" | tail -2 | tr '\n' ' ')"
		return 1
	fi
	if ! wait_for 10 grep -q "$token" "$tmp/received.jsonl"; then
		not_ok "$label: the client's message did not reach the server"
		return 1
	fi
	ok "$label: message delivered through the sidecar to $dest"
}

proxy_logs() { dl_podman logs "$tag-proxy" 2>&1 | tail -"${1:-15}" | sed 's/^/  | /'; }

rules_present() { # rules_present nft|iptables
	if [ "$1" = nft ]; then
		ip netns exec "$nsa" nft list table inet stsproxy >/dev/null 2>&1
	else
		ip netns exec "$nsa" iptables-save -t nat 2>/dev/null | grep -q STSPROXY
	fi
}

scenario() { # scenario label nft|iptables podman-run-args...
	local label=$1 fw=$2 rc
	shift 2
	log "--- $label"
	if ! dl_podman run -d --pull=never --name "$tag-proxy" --network "ns:/run/netns/$nsa" \
		--cap-add NET_ADMIN -e "STSPROXY_FIREWALL=$fw" "$@" "$image" >/dev/null 2>"$tmp/run.err"; then
		not_ok "$label: podman run failed: $(tail -2 "$tmp/run.err")"
		return
	fi
	if wait_for 20 dl_podman healthcheck run "$tag-proxy"; then
		ok "$label: container healthy (HEALTHCHECK: listening, rules installed)"
	else
		not_ok "$label: container not healthy within 20 s"
		proxy_logs
	fi
	if rules_present "$fw"; then
		ok "$label: REDIRECT rules in the shared namespace ($fw)"
	else
		not_ok "$label: no $fw REDIRECT rules in the shared namespace"
	fi
	local pid user
	pid=$(dl_podman inspect --format '{{.State.Pid}}' "$tag-proxy" 2>/dev/null)
	user=$(ps -o uid= --ppid "$pid" 2>/dev/null | tr -d ' ')
	if [ "$user" = "$uid" ]; then
		ok "$label: stsproxy runs as uid $uid"
	else
		not_ok "$label: stsproxy child of the entrypoint runs as '$user', want $uid"
	fi

	send_and_check "$label IPv4" 203.0.113.25 || proxy_logs
	send_and_check "$label IPv6" 2001:db8:3::25 || proxy_logs

	dl_podman stop -t 20 "$tag-proxy" >/dev/null 2>&1
	rc=$(dl_podman inspect --format '{{.State.ExitCode}}' "$tag-proxy" 2>/dev/null)
	if [ "$rc" = 0 ]; then
		ok "$label: SIGTERM drains and exits 0"
	else
		not_ok "$label: exit status after podman stop: $rc"
		proxy_logs
	fi
	if rules_present "$fw"; then
		not_ok "$label: REDIRECT rules left behind after stop"
	else
		ok "$label: rules removed on exit"
	fi
	[ -n "${STSPROXY_TEST_VERBOSE:-}" ] && proxy_logs 100
	dl_podman rm -f -t 0 "$tag-proxy" >/dev/null 2>&1
}

build_net || { log "FAIL: cannot build the namespaces"; exit 1; }
start_server || { log "FAIL: SMTP server did not start: $(tail -3 "$tmp/server.log")"; exit 1; }

# 1. generated config from environment variables, nftables
scenario "env/nft" nft -e STSPROXY_MODE=monitor -e STSPROXY_RESOLVER=203.0.113.25 \
	-e STSPROXY_LOG_FORMAT=json -e STSPROXY_LOG_LEVEL=debug

# 2. mounted config file, iptables
cat >"$tmp/stsproxy.conf" <<EOF
# t_docker: a mounted configuration
mode = "monitor";
listen = (
  { kind = "redirect"; address = "127.0.0.1"; port = $port; },
  { kind = "redirect"; address = "::1"; port = $port; }
);
dns = { servers = [ "203.0.113.25" ]; timeout = 1.0; tries = 1; };
log = { format = "text"; file = "-"; level = "info"; };
state_dir = "/var/lib/stsproxy";
EOF
chmod 0644 "$tmp/stsproxy.conf"
mkdir -p "$tmp/state"
scenario "file/iptables" iptables -v "$tmp/stsproxy.conf:/etc/stsproxy/stsproxy.conf:ro" \
	-v "$tmp/state:/var/lib/stsproxy"

# 3. without NET_ADMIN: refuse, clearly, before running anything
log "--- no NET_ADMIN"
out=$(dl_podman_t 60 run --rm --pull=never --name "$tag-nocap" \
	--network "ns:/run/netns/$nsa" "$image" 2>&1)
rc=$?
if [ "$rc" != 0 ] && printf '%s' "$out" | grep -q 'needs CAP_NET_ADMIN'; then
	ok "without NET_ADMIN: refuses to start (exit $rc) and says why"
else
	not_ok "without NET_ADMIN: exit $rc, output: $(printf '%s' "$out" | tail -3)"
fi

# 4. the test's own premise: with no sidecar, the guard stops direct mail
log "--- no sidecar (control)"
if dl_podman_t 60 run --rm --pull=never --name "$tag-client" --network "ns:/run/netns/$nsa" \
	-v "$tmp/client.sh:/client.sh:ro" "$image" bash /client.sh 203.0.113.25 control \
	>"$tmp/client.log" 2>&1; then
	not_ok "control: mail left without the sidecar: the guard does not work"
else
	ok "control: without the sidecar the guard blocks direct delivery"
fi

# 5. optional (STSPROXY_TEST_MAILER=1, a second image build): the compose
# example's Postfix mailer (docker/mailer) with the sidecar joining its
# namespace (--network container:, as network_mode: service:mailer does).
mailer_scenario() {
	local mimg=localhost/stsproxy-example-mailer:t_docker-$$ token
	log "--- compose mailer (Postfix) + sidecar"
	if ! dl_podman build --pull=never --isolation=chroot --network=host --format docker \
		--ulimit "nofile=$DL_NOFILE:$DL_NOFILE" --ulimit "nproc=$DL_NPROC:$DL_NPROC" \
		-t "$mimg" "$src/docker/mailer" >"$tmp/mbuild.log" 2>&1; then
		not_ok "mailer: image build failed: $(tail -3 "$tmp/mbuild.log")"
		return
	fi
	dl_podman run -d --pull=never --name "$tag-mailer" --network "ns:/run/netns/$nsa" \
		-e 'RELAYHOST=[203.0.113.25]:25' "$mimg" >/dev/null 2>"$tmp/run.err"
	dl_podman run -d --pull=never --name "$tag-proxy" --network "container:$tag-mailer" \
		--cap-add NET_ADMIN -e STSPROXY_MODE=upgrade -e STSPROXY_RESOLVER=203.0.113.25 \
		"$image" >/dev/null 2>>"$tmp/run.err"
	if ! wait_for 30 ip netns exec "$nsa" sh -c 'ss -Hltn "sport = :25" | grep -q .' ||
		! wait_for 20 dl_podman healthcheck run "$tag-proxy"; then
		not_ok "mailer: Postfix or the sidecar did not come up: $(tail -2 "$tmp/run.err")"
	else
		token="t_docker-postfix-$$-$RANDOM"
		# submit over loopback (in Postfix's mynetworks); Postfix relays
		# to the smarthost on port 25, which the sidecar intercepts
		ip netns exec "$nsa" "$py" -c 'import smtplib, sys
with smtplib.SMTP("127.0.0.1", 25, timeout=20) as s:
    s.sendmail("app@mailer.example.com", ["user@mx.example.net"],
               "Subject: %s\r\n\r\n%s\r\n" % (sys.argv[1], sys.argv[1]))' "$token" \
			>"$tmp/submit.log" 2>&1
		if wait_for 30 grep -q "$token" "$tmp/received.jsonl" &&
			dl_podman logs "$tag-proxy" 2>&1 | grep -q '"type":"session"'; then
			ok "mailer: Postfix's relayed mail went through the sidecar"
		else
			not_ok "mailer: Postfix's mail did not arrive through the sidecar"
			dl_podman logs "$tag-mailer" 2>&1 | tail -5 | sed 's/^/  | /'
			proxy_logs
		fi
	fi
	dl_podman rm -f -t 0 "$tag-proxy" >/dev/null 2>&1
	dl_podman rm -f -t 0 "$tag-mailer" >/dev/null 2>&1
	dl_podman rmi -f "$mimg" >/dev/null 2>&1
}
[ "${STSPROXY_TEST_MAILER:-0}" = 1 ] && mailer_scenario

kill "$server_pid" 2>/dev/null
echo "t_docker: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
