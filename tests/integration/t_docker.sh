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
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
uid=10025
port=10025
DL_TAG=t_docker
# shellcheck source-path=SCRIPTDIR source=docker-lib.sh
. "$IT_DIR/docker-lib.sh"

dl_usable || it_skip "podman cannot run here (see above)"
sink_require

tag=stsdk$$
nsa=$tag-app
nss=$tag-srv
# not in /tmp: a shared /tmp gets swept by other people's clean-ups
mkdir -p "$DL_CACHE"
T=$(mktemp -d "$DL_CACHE/t_docker.XXXXXX")
chmod 0755 "$T"
image=${STSPROXY_DOCKER_IMAGE:-localhost/stsproxy:t_docker-$$}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
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
	ns_down "$nsa" "$nss"
	it_rmtemp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- image ---------------------------------------------------------------------------
dl_setup
say "podman storage $DL_RUN ($DL_DRIVER), nofile $DL_NOFILE, nproc $DL_NPROC"
if [ -n "${STSPROXY_DOCKER_IMAGE:-}" ]; then
	dl_podman image exists "$image" || it_abort "no image $image"
else
	dl_base_image || it_abort "no base image"
	say "building $image from $REPO (a cold build takes minutes)"
	start=$(date +%s)
	if ! dl_podman build --pull=never --isolation=chroot --network=host --format docker \
		--ulimit "nofile=$DL_NOFILE:$DL_NOFILE" --ulimit "nproc=$DL_NPROC:$DL_NPROC" \
		--build-arg "REVISION=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
		--build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		-f "$REPO/docker/Dockerfile" -t "$image" "$REPO" >"$T/build.log" 2>&1; then
		tail -25 "$T/build.log"
		it_abort "image build failed (log above)"
	fi
	say "built in $(($(date +%s) - start)) s"
fi
size=$(dl_podman image inspect --format '{{.Size}}' "$image")
say "image size $((size / 1000000)) MB"

meta=$(dl_podman image inspect --format \
	'{{.Config.User}}|{{.Config.StopSignal}}|{{index .Config.Labels "org.opencontainers.image.title"}}|{{if .HealthCheck}}health{{end}}' \
	"$image")
case "$meta" in
"|SIGTERM|stsproxy|health") pass "image metadata: STOPSIGNAL, OCI labels, HEALTHCHECK ($meta)" ;;
*) fail "image metadata unexpected: $meta (want |SIGTERM|stsproxy|health)" ;;
esac

# --- namespaces ----------------------------------------------------------------------
build_net() {
	ns_up "$nsa" "$nss"
	ns_veth "$nsa" "${tag}a" "$nss" "${tag}s"
	ns_addr "$nsa" "${tag}a" 203.0.113.10/24 2001:db8:3::10/64
	ns_addr "$nss" "${tag}s" 203.0.113.25/24 2001:db8:3::25/64
	# The guard: after the nat OUTPUT redirect a diverted connection goes to
	# lo; anything else to port 25 that leaves APP must be the proxy's.
	nsx "$nsa" nft -f - <<EOF || it_abort "cannot install the guard table in $nsa"
table inet t_docker_guard {
	chain out {
		type filter hook output priority 0; policy accept;
		oifname != "lo" tcp dport 25 meta skuid != $uid counter reject with tcp reset
	}
}
EOF
}

# The legacy client: plain SMTP over bash's /dev/tcp, run as root in a
# second container in the same network namespace.
cat >"$T/client.sh" <<'EOF'
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
		--network "ns:/run/netns/$nsa" -v "$T/client.sh:/client.sh:ro" \
		"$image" bash /client.sh "$dest" "$token" >"$T/client.log" 2>&1; then
		fail "$label: client failed: $(grep -v '^C:' "$T/client.log" | tail -2 | tr '\n' ' ')"
		return 1
	fi
	if ! wait_for 10 "$label at the server" sink_has "$token"; then
		fail "$label: the client's message did not reach the server"
		return 1
	fi
	pass "$label: message delivered through the sidecar to $dest"
}

# shellcheck disable=SC2317 # called through wait_for
_proxy_healthy() { dl_podman healthcheck run "$tag-proxy" >/dev/null 2>&1; }
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
	step "$label"
	if ! dl_podman run -d --pull=never --name "$tag-proxy" --network "ns:/run/netns/$nsa" \
		--cap-add NET_ADMIN -e "STSPROXY_FIREWALL=$fw" "$@" "$image" >/dev/null 2>"$T/run.err"; then
		fail "$label: podman run failed: $(tail -2 "$T/run.err")"
		return
	fi
	if wait_for 20 "$label healthy" _proxy_healthy; then
		pass "$label: container healthy (HEALTHCHECK: listening, rules installed)"
	else
		fail "$label: container not healthy within 20 s"
		proxy_logs
	fi
	if rules_present "$fw"; then
		pass "$label: REDIRECT rules in the shared namespace ($fw)"
	else
		fail "$label: no $fw REDIRECT rules in the shared namespace"
	fi
	local pid user
	pid=$(dl_podman inspect --format '{{.State.Pid}}' "$tag-proxy" 2>/dev/null)
	user=$(ps -o uid= --ppid "$pid" 2>/dev/null | tr -d ' ')
	if [ "$user" = "$uid" ]; then
		pass "$label: stsproxy runs as uid $uid"
	else
		fail "$label: stsproxy child of the entrypoint runs as '$user', want $uid"
	fi

	send_and_check "$label IPv4" 203.0.113.25 || proxy_logs
	send_and_check "$label IPv6" 2001:db8:3::25 || proxy_logs

	dl_podman stop -t 20 "$tag-proxy" >/dev/null 2>&1
	rc=$(dl_podman inspect --format '{{.State.ExitCode}}' "$tag-proxy" 2>/dev/null)
	if [ "$rc" = 0 ]; then
		pass "$label: SIGTERM drains and exits 0"
	else
		fail "$label: exit status after podman stop: $rc"
		proxy_logs
	fi
	if rules_present "$fw"; then
		fail "$label: REDIRECT rules left behind after stop"
	else
		pass "$label: rules removed on exit"
	fi
	[ -n "${STSPROXY_TEST_VERBOSE:-}" ] && proxy_logs 100
	dl_podman rm -f -t 0 "$tag-proxy" >/dev/null 2>&1
}

build_net
sink_start "$nss" 203.0.113.25 2001:db8:3::25

# 1. generated config from environment variables, nftables
scenario "env/nft" nft -e STSPROXY_MODE=monitor -e STSPROXY_RESOLVER=203.0.113.25 \
	-e STSPROXY_LOG_FORMAT=json -e STSPROXY_LOG_LEVEL=debug

# 2. mounted config file, iptables
cat >"$T/stsproxy.conf" <<EOF
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
chmod 0644 "$T/stsproxy.conf"
mkdir -p "$T/state"
scenario "file/iptables" iptables -v "$T/stsproxy.conf:/etc/stsproxy/stsproxy.conf:ro" \
	-v "$T/state:/var/lib/stsproxy"

# 3. without NET_ADMIN: refuse, clearly, before running anything
step "no NET_ADMIN"
out=$(dl_podman_t 60 run --rm --pull=never --name "$tag-nocap" \
	--network "ns:/run/netns/$nsa" "$image" 2>&1)
rc=$?
if [ "$rc" != 0 ] && printf '%s' "$out" | grep -q 'needs CAP_NET_ADMIN'; then
	pass "without NET_ADMIN: refuses to start (exit $rc) and says why"
else
	fail "without NET_ADMIN: exit $rc, output: $(printf '%s' "$out" | tail -3)"
fi

# 4. the test's own premise: with no sidecar, the guard stops direct mail
step "no sidecar (control)"
if dl_podman_t 60 run --rm --pull=never --name "$tag-client" --network "ns:/run/netns/$nsa" \
	-v "$T/client.sh:/client.sh:ro" "$image" bash /client.sh 203.0.113.25 control \
	>"$T/client.log" 2>&1; then
	fail "control: mail left without the sidecar: the guard does not work"
else
	pass "control: without the sidecar the guard blocks direct delivery"
fi

# 5. optional (STSPROXY_TEST_MAILER=1, a second image build): the compose
# example's Postfix mailer (docker/mailer) with the sidecar joining its
# namespace (--network container:, as network_mode: service:mailer does).
mailer_scenario() {
	local mimg=localhost/stsproxy-example-mailer:t_docker-$$ token
	step "compose mailer (Postfix) + sidecar"
	if ! dl_podman build --pull=never --isolation=chroot --network=host --format docker \
		--ulimit "nofile=$DL_NOFILE:$DL_NOFILE" --ulimit "nproc=$DL_NPROC:$DL_NPROC" \
		-t "$mimg" "$REPO/docker/mailer" >"$T/mbuild.log" 2>&1; then
		fail "mailer: image build failed: $(tail -3 "$T/mbuild.log")"
		return
	fi
	dl_podman run -d --pull=never --name "$tag-mailer" --network "ns:/run/netns/$nsa" \
		-e 'RELAYHOST=[203.0.113.25]:25' "$mimg" >/dev/null 2>"$T/run.err"
	dl_podman run -d --pull=never --name "$tag-proxy" --network "container:$tag-mailer" \
		--cap-add NET_ADMIN -e STSPROXY_MODE=upgrade -e STSPROXY_RESOLVER=203.0.113.25 \
		"$image" >/dev/null 2>>"$T/run.err"
	if ! wait_for 30 "Postfix listening" nsx "$nsa" sh -c 'ss -Hltn "sport = :25" | grep -q .' ||
		! wait_for 20 "mailer sidecar healthy" _proxy_healthy; then
		fail "mailer: Postfix or the sidecar did not come up: $(tail -2 "$T/run.err")"
	else
		token="t_docker-postfix-$$-$RANDOM"
		# submit over loopback (in Postfix's mynetworks); Postfix relays
		# to the smarthost on port 25, which the sidecar intercepts
		ip netns exec "$nsa" "$PY" -c 'import smtplib, sys
with smtplib.SMTP("127.0.0.1", 25, timeout=20) as s:
    s.sendmail("app@mailer.example.com", ["user@mx.example.net"],
               "Subject: %s\r\n\r\n%s\r\n" % (sys.argv[1], sys.argv[1]))' "$token" \
			>"$T/submit.log" 2>&1
		if wait_for 30 "Postfix's mail at the server" sink_has "$token" &&
			dl_podman logs "$tag-proxy" 2>&1 | grep -q '"type":"session"'; then
			pass "mailer: Postfix's relayed mail went through the sidecar"
		else
			fail "mailer: Postfix's mail did not arrive through the sidecar"
			dl_podman logs "$tag-mailer" 2>&1 | tail -5 | sed 's/^/  | /'
			proxy_logs
		fi
	fi
	dl_podman rm -f -t 0 "$tag-proxy" >/dev/null 2>&1
	dl_podman rm -f -t 0 "$tag-mailer" >/dev/null 2>&1
	dl_podman rmi -f "$mimg" >/dev/null 2>&1
}
[ "${STSPROXY_TEST_MAILER:-0}" = 1 ] && mailer_scenario

sink_stop
finish
