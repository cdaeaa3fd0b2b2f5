#!/usr/bin/env bash
# "stsproxy probe" (proxy/cli_probe.c), the tool an admin runs from the box
# they suspect, against the receiving Postfix through the on-path attacker
# in every mitm.py mode. From the router namespace:
#   stsproxy probe --json -c probe.conf mx1.example.test:25
# (probe.conf: tls.ca_file = the test CA, dns.servers = the test nsd), which
# probes both addresses of mx1 (IPv4 and IPv6, both intercepted). For each
# mode: the exit code (0 clean, 1 a warning/alert finding, 2 unreachable),
# and per target the exact set of findings (name:severity), their evidence,
# the STARTTLS answer and the TLS result. Also: --sni with an address,
# --domain, an unreachable port, and the human-readable table.
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2317
# (SC2317: functions called through check)
. "$(dirname "$0")/lib.sh"
it_init 300
proxy_require
command -v faketime >/dev/null || it_skip "faketime missing (the expired certificate): run tests/integration/install-peers.sh"

step "building topology and peers (no sender, no stsproxy daemon)"
topo_up
ca_make
dns_start
mx_start mx
ca_make_extra # self-signed and clientAuth-only certificates for the attacker
proxy_config upgrade redirect "" may >"$T/probe.conf"

# probe NAME ARGS...: run the probe in the router namespace; JSON lines in
# $T/probe-NAME.json, stderr in .err, exit code in PROBE_RC.
probe() {
	local name=$1
	shift
	PROBE_RC=0
	nsx "$NS_ROUTER" timeout 60 "$STSPROXY_BIN" probe -c "$T/probe.conf" --timeout 10 "$@" \
		>"$T/probe-$name.json" 2>"$T/probe-$name.err" || PROBE_RC=$?
	say "probe $*: exit $PROBE_RC"
	sed 's/^/    /' "$T/probe-$name.json" | cut -c1-400
	[ -s "$T/probe-$name.err" ] && sed 's/^/    stderr: /' "$T/probe-$name.err" | head -n 5
	return 0
}

# pcheck NAME TARGETS FINDINGS [FIELD=ERE...]: the JSON output has exactly
# TARGETS lines, and each target's findings are exactly FINDINGS (a space
# separated set of name:severity, "-" for none) and its fields match every
# FIELD=ERE (re.search on the JSON value: true/false, null, numbers as text;
# "findings~ERE": some finding line "name:severity:evidence" matches).
pcheck() {
	"$PY" - "$T/probe-$1.json" "$2" "$3" "${@:4}" <<'EOF'
import json, re, sys
path, ntargets, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conds = sys.argv[4:]
want = set() if want == "-" else set(want.split())
rows = [json.loads(l) for l in open(path) if l.strip()]
def val(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
bad = []
if len(rows) != ntargets:
    bad.append("%d targets, not %d" % (len(rows), ntargets))
for r in rows:
    got = set(":".join(f.split(":")[:2]) for f in r.get("findings", []))
    if got != want:
        bad.append("%s: findings %s, want %s" % (r.get("target"), sorted(got), sorted(want)))
    for c in conds:
        if "~" in c.split("=")[0]:
            k, _, pat = c.partition("~")
            if not any(re.search(pat, f) for f in r.get(k, [])):
                bad.append("%s: no %s matching %s" % (r.get("target"), k, pat))
            continue
        k, _, pat = c.partition("=")
        if not re.search(pat, val(r.get(k))):
            bad.append("%s: %s=%s does not match %s" % (r.get("target"), k, val(r.get(k)), pat))
for b in bad:
    print("    mismatch:", b)
sys.exit(1 if bad else 0)
EOF
}

# pmode MODE RC FINDINGS [FIELD=ERE...]: the attacker in MODE, probe mx1.
pmode() {
	local mode=$1 rc=$2 findings=$3 cert=${CERT:-}
	shift 3
	step "probe through the attacker in mode $mode${cert:+ (certificate $cert)}"
	mitm_start "$mode" "$cert"
	probe "$mode$cert" --json mx1.example.test:25
	check "[$mode${cert:+/$cert}] exit code $rc" [ "$PROBE_RC" = "$rc" ]
	check "[$mode${cert:+/$cert}] both targets (IPv4, IPv6): findings ${findings}${*:+; $*}" \
		pcheck "$mode$cert" 2 "$findings" connected=true "$@"
	check "[$mode${cert:+/$cert}] the attacker intercepted the probe" mitm_log_grep '#1 \*\* connection from'
}

# ---- the eight attacks of the issue, and a clean path ----------------------------------
pmode pass 0 - tls=true certificate='^ok$' starttls_advertised=true starttls_code='^220$' \
	tls_version='^TLSv1\.[23]$' fingerprint='^[0-9a-f]{64}$' error=null
pmode strip 1 'starttls_not_advertised:alert starttls_stripped:alert' starttls_advertised=false tls=true certificate='^ok$'
pmode garble 1 'starttls_garbled:alert starttls_not_advertised:alert starttls_stripped:alert' \
	'findings~^starttls_garbled:alert:250-XXXXXXXA$' tls=true
pmode garble-cmd 1 'starttls_rejected_after_advertised:warning' starttls_code='^5[0-9][0-9]$' tls=false
pmode refuse 1 'starttls_rejected_after_advertised:warning' starttls_code='^454$' tls=false \
	'findings~^starttls_rejected_after_advertised:warning:454 4\.7\.0'
pmode inject 1 'starttls_reply_pipelined:alert' starttls_code='^220$' tls=false error='inject'
pmode mask-banner 0 'banner_masked:notice' greeting='^220 \*+$' tls=true certificate='^ok$'
pmode refuse-ehlo 0 'ehlo_refused:notice starttls_not_advertised:info' tls=true certificate='^ok$'
pmode swap-cert 0 'tls_cert_name_mismatch:notice' tls=true certificate='^name-mismatch$'

# ---- the rest of the catalogue ----------------------------------------------------------
pmode empty-line 1 'ehlo_empty_line:notice starttls_not_advertised:alert starttls_stripped:alert' tls=true
pmode malformed 1 'ehlo_malformed_line:notice starttls_not_advertised:alert starttls_stripped:alert' \
	'findings~^ehlo_malformed_line:notice:250-(%01){8}$'
pmode ehlo-noop 1 'ehlo_command_rewritten:warning starttls_not_advertised:alert starttls_stripped:alert' tls=true
pmode starttls-first-line 1 'ehlo_starttls_in_greeting_line:notice starttls_not_advertised:alert starttls_stripped:alert' \
	starttls_advertised=false tls=true
pmode mask-keyword 0 'ehlo_keyword_masked:notice' starttls_advertised=true tls=true
pmode no-tls 0 'starttls_not_advertised:info starttls_refused:info' starttls_code='^502$' tls=false
pmode drop-tls 1 'tls_handshake_failed:warning' tls=false
# a TLS 1.0/1.1-only server (docs/events.md: tls_version_too_low)
CERT=mx1 pmode old-tls 1 'tls_version_too_low:warning' tls=false
CERT=self pmode swap-cert 0 'tls_cert_untrusted:notice' tls=true certificate='^untrusted$'
CERT=expired pmode swap-cert 0 'tls_cert_expired:notice' tls=true certificate='^expired$'
CERT=eku pmode swap-cert 0 'tls_cert_invalid:notice' tls=true certificate='^invalid$'

# ---- options and the other exit codes ----------------------------------------------------
step "options: --sni, --domain, the text table, an unreachable port"
mitm_start pass
probe sni --json --sni mx1.example.test "$MX1_4:25"
check "[--sni] an address with --sni mx1.example.test: exit 0, verified" [ "$PROBE_RC" = 0 ]
check "[--sni] one target, name from --sni, certificate ok" \
	pcheck sni 1 - name='^mx1\.example\.test$' certificate='^ok$' target="^${MX1_4//./\\.}:25\$"
probe sniwrong --json --sni wrong.example.org "$MX1_4:25"
check "[--sni] --sni wrong.example.org: name mismatch reported (a notice: exit 0)" \
	pcheck sniwrong 1 'tls_cert_name_mismatch:notice' certificate='^name-mismatch$'
probe domain --json --domain "$MAIL_DOMAIN"
check "[--domain] --domain example.test: exit 0" [ "$PROBE_RC" = 0 ]
check "[--domain] the MX set: mx1 over IPv4 and IPv6, clean" pcheck domain 2 - name='^mx1\.example\.test$' tls=true
mitm_start garble
probe text mx1.example.test:25
check "[text] the table names the alert and its evidence" \
	grep -qE '^ +alert +starttls_garbled: 250-XXXXXXXA$' "$T/probe-text.json"
check "[text] and says STARTTLS was NOT advertised" grep -q 'NOT advertised' "$T/probe-text.json"
check "[text] exit code 1" [ "$PROBE_RC" = 1 ]
mitm_stop
probe closed --json "mx1.example.test:26"
check "[unreachable] a closed port: exit 2" [ "$PROBE_RC" = 2 ]
check "[unreachable] connected false with the reason" pcheck closed 2 - connected=false error='refused'
probe nxdomain --json nosuchhost.example.test:25
check "[unreachable] an unknown host name: exit 2" [ "$PROBE_RC" = 2 ]

step "tear-down"
finish
