# shellcheck shell=bash
# docker-lib: podman plumbing for the container tests, sourced by t_docker.sh.
#
# Runs as root with podman and the runc runtime (crun refuses hybrid cgroup
# hosts), a private storage root, runroot and containers.conf made per run,
# explicit ulimits that fit the host's hard limits, and a local base image
# (debian:trixie-slim) imported from a debootstrap tree cached as a tarball.
#
# Network rule: containers run with --network=none or --network=ns:PATH only,
# never with podman's default bridge, which would change the host's NAT and
# forwarding. Builds use --network=host (apt in the build stage) or none.
#
# Also usable as a command: `bash docker-lib.sh install` installs podman and
# friends with apt (for .ci/run or tests/integration/install-peers.sh);
# `bash docker-lib.sh base` only makes the cached base tarball.

# shellcheck source-path=SCRIPTDIR source=../../scripts/apt-mirror.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/apt-mirror.sh"

DL_CACHE=${STSPROXY_CI_CACHE:-/var/cache/stsproxy-ci}
DL_SUITE=${STSPROXY_CI_SUITE:-trixie}
DL_BASE_TAR=$DL_CACHE/debian-$DL_SUITE-slim-minbase.tar.gz
DL_BASE_MAXAGE_DAYS=${STSPROXY_CI_BASE_MAXAGE:-30}
DL_PACKAGES="podman runc debootstrap uidmap fuse-overlayfs containernetworking-plugins conmon"

dl_log() { printf '%s: %s\n' "${DL_TAG:-docker-lib}" "$*" >&2; }

# The Debian mirror from the system's own apt configuration; no host name is
# ever written into the repository. STSPROXY_CI_MIRROR overrides.
dl_mirror() {
	if [ -n "${STSPROXY_CI_MIRROR:-}" ]; then
		echo "$STSPROXY_CI_MIRROR"
		return 0
	fi
	apt_mirror
}

# Install the container tooling without starting any service.
dl_install() {
	local rc=0 had_policy=0
	[ -e /usr/sbin/policy-rc.d ] && had_policy=1
	if [ "$had_policy" = 0 ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
	fi
	# shellcheck disable=SC2086  # a list of package names
	apt-get -q update >/dev/null &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			$DL_PACKAGES >/dev/null || rc=$?
	[ "$had_policy" = 0 ] && rm -f /usr/sbin/policy-rc.d
	return $rc
}

# 0 when podman can run containers here; otherwise prints why and returns 1.
dl_usable() {
	if [ "$(id -u)" != 0 ]; then
		dl_log "needs root (rootful podman with network namespaces)"
		return 1
	fi
	local t
	for t in podman runc ip nft; do
		if ! command -v "$t" >/dev/null 2>&1; then
			dl_log "$t not installed (bash tests/integration/docker-lib.sh install)"
			return 1
		fi
	done
	if [ ! -f "$DL_BASE_TAR" ] && ! command -v debootstrap >/dev/null 2>&1; then
		dl_log "debootstrap not installed and no cached base image $DL_BASE_TAR"
		return 1
	fi
	return 0
}

# min(hard limit, cap): podman's default nofile (1048576) exceeds many hosts'
# hard limits and runc then fails to start the container.
dl_limit() {
	local hard=$1 cap=$2
	if [ "$hard" = unlimited ] || [ "$hard" -gt "$cap" ]; then
		echo "$cap"
	else
		echo "$hard"
	fi
}

# Private podman state for this run: storage, runroot, tmp dir and config.
dl_setup() {
	# STSPROXY_CI_KEEP=1 keeps one storage (images, build cache) across
	# runs for quick iteration; by default each run has its own, removed at
	# the end, and only the base tarball is cached.
	if [ "${STSPROXY_CI_KEEP:-0}" = 1 ]; then
		DL_RUN=$DL_CACHE/keep
	fi
	DL_RUN=${DL_RUN:-$DL_CACHE/run.$$}
	DL_RUNROOT=/run/stsproxy-ci.$(basename "$DL_RUN")
	mkdir -p "$DL_RUN" "$DL_RUNROOT"
	DL_NOFILE=$(dl_limit "$(ulimit -Hn)" 65536)
	DL_NPROC=$(dl_limit "$(ulimit -Hu)" 4096)
	DL_DRIVER=${STSPROXY_CI_STORAGE_DRIVER:-overlay}
	dl_write_conf
	# overlay first; vfs (slow, big, but works everywhere) if the kernel or
	# the backing file system refuses overlay mounts.
	if [ "$DL_DRIVER" = overlay ] && ! dl_probe_overlay; then
		dl_log "overlay storage unusable here, falling back to vfs"
		DL_DRIVER=vfs
		dl_write_conf
	fi
}

dl_write_conf() {
	cat >"$DL_RUN/storage.conf" <<EOF
[storage]
driver = "$DL_DRIVER"
graphroot = "$DL_RUN/storage"
runroot = "$DL_RUNROOT/storage"
EOF
	cat >"$DL_RUN/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$DL_NOFILE:$DL_NOFILE", "nproc=$DL_NPROC:$DL_NPROC"]
netns = "none"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$DL_RUN/events.log"
tmp_dir = "$DL_RUNROOT/libpod"
static_dir = "$DL_RUN/storage/libpod"
volume_path = "$DL_RUN/storage/volumes"
num_locks = 128

[network]
network_config_dir = "$DL_RUN/networks"
EOF
	export CONTAINERS_STORAGE_CONF=$DL_RUN/storage.conf
	export CONTAINERS_CONF=$DL_RUN/containers.conf
}

dl_podman_opts() {
	DL_PODMAN=(podman --root "$DL_RUN/storage" --runroot "$DL_RUNROOT/storage"
		--storage-driver "$DL_DRIVER" --runtime runc --cgroup-manager cgroupfs
		--events-backend file --tmpdir "$DL_RUNROOT/libpod")
}

dl_podman() { dl_podman_opts && "${DL_PODMAN[@]}" "$@"; }

# dl_podman_t SECONDS ARGS...: the same, bounded in time.
dl_podman_t() {
	local t=$1
	shift
	dl_podman_opts && timeout "$t" "${DL_PODMAN[@]}" "$@"
}

dl_probe_overlay() {
	local d=$DL_RUN/overlay-probe
	mkdir -p "$d/l" "$d/u" "$d/w" "$d/m"
	if mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
		umount "$d/m"
		rm -rf "$d"
		return 0
	fi
	rm -rf "$d"
	return 1
}

# Make (or reuse) the cached minbase tarball. The tree is trimmed the way the
# official slim images are (no docs, man pages or locales; apt caches
# cleaned after each install) so the runtime image size is representative.
dl_base_tarball() {
	if [ -f "$DL_BASE_TAR" ] &&
		[ -z "$(find "$DL_BASE_TAR" -mtime +"$DL_BASE_MAXAGE_DAYS" 2>/dev/null)" ]; then
		return 0
	fi
	local mirror dir
	mirror=$(dl_mirror) || {
		dl_log "cannot find a Debian mirror in /etc/apt; set STSPROXY_CI_MIRROR"
		return 1
	}
	mkdir -p "$DL_CACHE"
	dir=$(mktemp -d "$DL_CACHE/rootfs.XXXXXX")
	dl_log "debootstrap --variant=minbase $DL_SUITE (once; cached as $DL_BASE_TAR)"
	if ! debootstrap --variant=minbase "$DL_SUITE" "$dir" "$mirror" >"$DL_CACHE/debootstrap.log" 2>&1; then
		tail -20 "$DL_CACHE/debootstrap.log" >&2
		rm -rf "$dir"
		return 1
	fi
	cat >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
	cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	printf 'Acquire::Languages "none";\n' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
	printf 'APT::AutoRemove::SuggestsImportant "false";\n' >"$dir/etc/apt/apt.conf.d/docker-autoremove-suggests"
	printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$DL_SUITE" "$mirror" "$DL_SUITE" \
		>"$dir/etc/apt/sources.list"
	find "$dir/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
	rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* \
		"$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin \
		"$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/*.log "$dir"/var/log/apt/*
	# A container's resolv.conf and hostname come from the engine.
	: >"$dir/etc/resolv.conf"
	: >"$dir/etc/hostname"
	tar --numeric-owner --xattrs -C "$dir" -c . | gzip -1 >"$DL_BASE_TAR.tmp" &&
		mv "$DL_BASE_TAR.tmp" "$DL_BASE_TAR"
	local rc=$?
	rm -rf "$dir"
	return $rc
}

# Import the cached tarball as debian:SUITE-slim into this run's storage.
dl_base_image() {
	dl_base_tarball || return 1
	if dl_podman image exists "localhost/debian:$DL_SUITE-slim" 2>/dev/null; then
		return 0
	fi
	gzip -dc "$DL_BASE_TAR" |
		dl_podman import --change 'CMD ["/bin/bash"]' - "debian:$DL_SUITE-slim" >/dev/null
}

# Remove every container, image and byte of storage this run made.
dl_teardown() {
	[ -n "${DL_RUN:-}" ] || return 0
	if [ -d "$DL_RUN/storage" ]; then
		# Not `podman system reset`: it also clears host-wide directories
		# (/run/containers) that are not ours.
		dl_podman rm -a -f -t 0 >/dev/null 2>&1 || true
		dl_podman rmi -a -f >/dev/null 2>&1 || true
		dl_podman volume prune -f >/dev/null 2>&1 || true
		# overlay/vfs mounts left by an interrupted run
		grep -o " ${DL_RUN}/storage[^ ]*" /proc/self/mounts 2>/dev/null | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
		grep -o " ${DL_RUNROOT}[^ ]*" /proc/self/mounts 2>/dev/null | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
	fi
	rm -rf "$DL_RUN" "$DL_RUNROOT"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	case "${1:-}" in
	install) dl_install ;;
	base) dl_base_tarball && ls -l "$DL_BASE_TAR" ;;
	*)
		echo "usage: bash $0 install|base" >&2
		exit 2
		;;
	esac
fi
