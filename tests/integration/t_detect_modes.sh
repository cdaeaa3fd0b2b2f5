#!/usr/bin/env bash
# Downgrade detection, end to end (issue 4): every attacker mode of mitm.py
# against every stsproxy mode. For each pair a legacy Postfix with
# opportunistic TLS (smtp_tls_security_level = may, so in monitor mode the
# sender itself tries STARTTLS) sends one mail through stsproxy and the
# attacker to the receiving Postfix, and the test asserts
#   - the events stsproxy logged, with their severities and evidence
#     (docs/events.md), and that nothing else of warning/alert level was
#     logged (no crying wolf);
#   - what the sender saw: delivered, or deferred with a 4xx (never bounced);
#   - where the mail went: at the mx, over TLS (ESMTPS) or not;
#   - whether the attacker read the envelope;
#   - that stsproxy survived, exits 0 and its sanitizers stayed quiet.
# stsproxy modes: monitor, upgrade (default level "may"), enforce (static
# "verify" policy for example.test). One topology for the whole file; only
# the attacker and stsproxy are restarted between cases (stsproxy with an
# empty TOFU memory each time, so no severity is raised by memory here:
# t_detect_memory.sh covers that; t_detect_signals.sh the rest of the
# catalogue, t_monitor_transparent.sh byte transparency, t_probe.sh the probe).
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2317
# (SC2317: functions called through check)
. "$(dirname "$0")/lib.sh"
it_init 420
proxy_require

ATTACKS=${DETECT_ATTACKS:-strip garble mask-banner refuse-ehlo garble-cmd refuse inject swap-cert}
PMODES=${DETECT_PMODES:-monitor upgrade enforce}

peers_up mx may ipv4
# A 421 from stsproxy must not make the sender's queue manager suspend the
# destination for the next cases (qmgr's dead-destination throttling).
sender_postconf default_destination_concurrency_failed_cohort_limit=1000
router_redirect on

proxy_conf_for() {
	case $1 in
	monitor) proxy_config monitor redirect "" may ;;
	upgrade) proxy_config upgrade redirect "" may ;;
	enforce) proxy_config enforce redirect verify may ;;
	esac
}

# expectations PMODE ATTACK: sets VERDICT (tls|plain|deferred), LEAK (yes|no),
# EVENTS (name:severity[:field=ERE...] ...) and SESSION_RE (EREs the session
# record must match, |-separated).
expectations() {
	local p=$1 a=$2
	LEAK=no
	SESSION_RE=''
	case $p/$a in
	# ---- monitor: bytes unchanged, the sender negotiates (or not) itself
	monitor/strip)
		VERDICT=plain LEAK=yes
		EVENTS='starttls_not_advertised:info:code=^250$'
		SESSION_RE='"starttls_advertised": *false|"tls": *false' ;;
	monitor/garble)
		VERDICT=plain LEAK=yes
		EVENTS='starttls_garbled:alert:evidence=^250-XXXXXXXA$ starttls_not_advertised:alert:escalated_by=^starttls_garbled$' ;;
	monitor/mask-banner)
		# Postfix sees the mask and turns on its PIX workarounds: HELO, so
		# no EHLO reply to classify
		VERDICT=plain LEAK=yes
		EVENTS='banner_masked:notice:evidence=^220\x20\*{8}:code=^220$' ;;
	monitor/refuse-ehlo)
		VERDICT=plain LEAK=yes
		EVENTS='ehlo_refused:notice:code=^502$ starttls_not_advertised:info:code=^502$' ;;
	monitor/garble-cmd)
		# the sender's STARTTLS reached the server as XXXXXXXX
		VERDICT=plain LEAK=yes
		EVENTS='starttls_rejected_after_advertised:warning:code=^5[0-9][0-9]$' ;;
	monitor/refuse)
		VERDICT=plain LEAK=yes
		EVENTS='starttls_rejected_after_advertised:warning:code=^454$:evidence=^454' ;;
	monitor/inject)
		# the sender (Postfix) discards the injected bytes and completes TLS
		VERDICT=tls
		EVENTS='starttls_reply_pipelined:alert:direction=^server$:bytes=^14$'
		SESSION_RE='"tls": *true' ;;
	monitor/swap-cert)
		# the sender accepts the attacker's certificate ("may" does not
		# verify); the certificate travels inside TLS 1.3, where a passive
		# observer cannot read it: nothing to report
		VERDICT=plain LEAK=yes
		EVENTS=''
		SESSION_RE='"tls": *true' ;;
	# ---- upgrade: stsproxy always tries STARTTLS; "may" lets plaintext go
	upgrade/strip | enforce/strip)
		# stsproxy's STARTTLS is accepted although the EHLO reply did
		# not offer it: the strip caught in the act
		VERDICT=tls
		EVENTS='starttls_not_advertised:info starttls_stripped:alert:code=^220$'
		SESSION_RE='"starttls_advertised": *false|"tls": *true|"tls_verify": *"ok"' ;;
	upgrade/garble | enforce/garble)
		VERDICT=tls
		EVENTS='starttls_garbled:alert:evidence=^250-XXXXXXXA$:code=^250$ starttls_not_advertised:alert:escalated_by=^starttls_garbled$ starttls_stripped:alert:code=^220$'
		SESSION_RE='"tls": *true|"tls_verify": *"ok"' ;;
	upgrade/mask-banner | enforce/mask-banner)
		VERDICT=tls
		EVENTS='banner_masked:notice:evidence=^220\x20\*{8}'
		SESSION_RE='"tls": *true' ;;
	upgrade/refuse-ehlo | enforce/refuse-ehlo)
		VERDICT=tls
		EVENTS='ehlo_refused:notice:code=^502$ starttls_not_advertised:info'
		SESSION_RE='"tls": *true' ;;
	upgrade/garble-cmd)
		VERDICT=plain LEAK=yes
		EVENTS='starttls_rejected_after_advertised:warning:code=^5[0-9][0-9]$'
		SESSION_RE='"tls": *false' ;;
	upgrade/refuse)
		VERDICT=plain LEAK=yes
		EVENTS='starttls_rejected_after_advertised:warning:code=^454$'
		SESSION_RE='"tls": *false' ;;
	upgrade/inject | enforce/inject)
		VERDICT=deferred
		EVENTS='starttls_reply_pipelined:alert:direction=^server$:bytes=^14$'
		SESSION_RE='"result": *"injection"' ;;
	upgrade/swap-cert)
		# TLS to the attacker, who relays in plaintext: "may" allows it
		VERDICT=plain LEAK=yes
		EVENTS='tls_cert_name_mismatch:notice'
		SESSION_RE='"tls": *true|"tls_verify": *"name-mismatch"' ;;
	# ---- enforce with a static "verify" policy: nothing leaves unverified
	enforce/garble-cmd)
		VERDICT=deferred
		EVENTS='starttls_rejected_after_advertised:warning policy_failure:alert:domain=^example\.test$' ;;
	enforce/refuse)
		VERDICT=deferred
		EVENTS='starttls_rejected_after_advertised:warning:code=^454$ policy_failure:alert:domain=^example\.test$' ;;
	enforce/swap-cert)
		VERDICT=deferred
		EVENTS='tls_cert_name_mismatch:notice policy_failure:alert:domain=^example\.test$' ;;
	*) it_abort "no expectations for $p/$a" ;;
	esac
}

# monitor_bytes_equal: every session record with result "ok" says stsproxy
# wrote to the server exactly as many bytes as it read from the client
# (t_monitor_transparent.sh compares the bytes themselves). Sessions ending
# otherwise are listed: a client's TLS close_notify arriving after the
# server's FIN is read but not relayed, and such a session ends as "error"
# (timing-dependent, so not asserted here; t_monitor_transparent.sh's
# half-close session shows the cause deterministically).
monitor_bytes_equal() {
	proxy_sessions | "$PY" -c '
import json, sys
rs = [json.loads(l) for l in sys.stdin]
ok = [r for r in rs if r["result"] == "ok"]
for r in rs:
    if r["result"] != "ok":
        print("    note: session %s ended as %s (reason %s), %d bytes read from the client, %d written "
              "to the server" % (r["session"], r["result"], r["reason"], r["bytes_from_client"],
                                 r["bytes_to_server"]))
sys.exit(0 if all(r["mode"] == "monitor" and r["bytes_from_client"] == r["bytes_to_server"]
                  for r in ok) else 1)'
}

for p in $PMODES; do
	for a in $ATTACKS; do
		expectations "$p" "$a"
		dcase_run "[$p/$a]" "dm-$p-$a" "$(proxy_conf_for "$p")" "$a"
		[ "$p" = monitor ] &&
			check "[$p/$a] stsproxy relayed every byte the sender sent (records of sessions that ended ok)" monitor_bytes_equal
	done
done

step "tear-down"
proxy_stop_checked
mitm_stop
check_not "nothing bounced in the whole run" sender_log_grep 'status=bounced'
events_seen_record "$(basename "$0" .sh)"
finish
