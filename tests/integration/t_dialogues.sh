#!/usr/bin/env bash
# Scripted SMTP dialogues against stsproxy on loopback: no namespaces, no
# root, no network. stsproxy runs with a "fixed" listener on 127.0.0.1 in
# front of a scripted fake server; scripted fake clients talk to it. The
# engine is dialogue.py, the scenarios are scenarios/sNN_*.py (one file per
# behaviour). Each asserts what the client saw, what the server received and
# what stsproxy logged; each stsproxy must still be running at the end of its
# scenario and exit 0 on SIGTERM without a sanitizer report.
#
# Environment: STSPROXY_BIN (set by CTest), DIALOGUE_ONLY="s05 s11" to run a
# subset, IT_KEEP=1 to keep the temp dir (configs, logs, certificates).
# Exit: 0 pass, 1 fail, 77 skip.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=${STSPROXY_SRC:-$(cd "$here/../.." && pwd)}
bin=${STSPROXY_BIN:-$repo/build/stsproxy}
py=/usr/bin/python3 # the system python: the pyenv python3 on PATH is not the one CI provisions

if [ ! -x "$bin" ]; then
	echo "SKIP: stsproxy binary not found: $bin"
	exit 77
fi
if [ ! -x "$py" ] || ! command -v openssl >/dev/null 2>&1; then
	echo "SKIP: needs $py and openssl"
	exit 77
fi

args=(--bin "$bin")
for s in ${DIALOGUE_ONLY:-}; do args+=(--only "$s"); done
[ -n "${IT_KEEP:-}" ] && args+=(--keep)

# The engine kills what it started in its own finally/atexit (also on
# SIGTERM); timeout(1) bounds the whole run even if it wedges (the file is
# meant to take well under 3 minutes).
limit=${DIALOGUE_TIMEOUT:-240}
timeout -k 10 "$limit" "$py" "$here/dialogue.py" "${args[@]}" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 1' INT TERM
wait "$pid"
rc=$?
case $rc in
0 | 77) exit $rc ;;
124 | 137) echo "FAIL: the dialogue tests exceeded ${limit}s and were stopped" ;;
esac
exit 1
