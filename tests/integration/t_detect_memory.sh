#!/usr/bin/env bash
# Downgrade detection with memory (TOFU, docs/events.md "Escalation" and
# "TOFU memory"): stsproxy keeps per MX whether it offered STARTTLS, whether
# the last TLS session worked and its certificate, in $state_dir/tofu.db,
# across restarts. One mail per step through legacy Postfix -> stsproxy
# (restarted every step, so the memory must come from the file) -> attacker
# -> receiving Postfix:
#   pass       learn: STARTTLS offered, TLS verified, fingerprint stored
#   strip      starttls_not_advertised raised to alert by memory, and
#              starttls_downgrade_vs_memory (alert)
#   drop-tls   tls_handshake_failed raised warning -> alert
#   refuse     starttls_rejected_after_advertised raised warning -> alert
#   defer      detect.tofu = "defer": the same refusal defers the mail (4xx,
#              tofu_plaintext_refused) instead of sending it in plaintext
#   swap-cert  tls_cert_name_mismatch raised notice -> warning, and
#              tls_cert_changed raised to alert by the failing certificate
#   monitor    the same memory in monitor mode (keyed by address): the
#              sender's own STARTTLS, then a strip, gives the downgrade alert
# A "pass" between the failure steps makes the last TLS session a success
# again, which the escalation of TLS failures needs.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 300
proxy_require

peers_up mx may ipv4
sender_postconf default_destination_concurrency_failed_cohort_limit=1000
router_redirect on
mkdir -p "$T/state"

conf() { # MODE TOFU
	proxy_config "$1" redirect "" may
	printf 'state_dir = "%s";\ndetect = { tofu = "%s"; };\n' "$T/state" "$2"
}
tofu_line() { grep -E "^$1 " "$T/state/tofu.db" 2>/dev/null; }
ALERT=$(conf upgrade alert)
DEFER=$(conf upgrade defer)
RFC3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}\x3a[0-9]{2}\x3a[0-9]{2}Z$' # no ':' in EVENTS patterns

# 1. learn
LEAK=no VERDICT=tls EVENTS='' SESSION_RE='"tls": *true|"tls_verify": *"ok"'
dcase_run "[memory/pass] first contact: nothing to report" mem-pass1 "$ALERT" pass
proxy_stop_checked
fp=$(openssl x509 -in "$T/pki/mx.pem" -outform DER | sha256sum | cut -d' ' -f1)
say "tofu.db: $(tofu_line mx1.example.test)"
check "tofu.db remembers mx1.example.test: offered STARTTLS, TLS ok, the mx certificate's SHA-256" \
	grep -qE "^mx1\.example\.test 1 1 [0-9]+ [0-9]+ [0-9]+ [0-9]+ $fp\$" "$T/state/tofu.db"
SESSION_RE=''

# 2. STARTTLS stripped at an MX that offered it
LEAK=no VERDICT=tls
EVENTS="starttls_not_advertised:alert:escalated_by_memory=^true$ starttls_downgrade_vs_memory:alert:remembered=$RFC3339:code=^250$ starttls_stripped:alert:code=^220$"
dcase_run "[memory/strip] STARTTLS missing where it was offered before" mem-strip "$ALERT" strip

# 3. handshake reset after TLS worked last time ("may": plaintext retry)
LEAK=yes VERDICT=plain
EVENTS='tls_handshake_failed:alert:escalated_by_memory=^true$'
dcase_run "[memory/drop-tls] handshake reset after a good TLS session" mem-drop "$ALERT" drop-tls

LEAK=no VERDICT=tls EVENTS=''
dcase_run "[memory/pass] TLS works again" mem-pass2 "$ALERT" pass

# 4. STARTTLS refused after TLS worked last time
LEAK=yes VERDICT=plain
EVENTS='starttls_rejected_after_advertised:alert:escalated_by_memory=^true$:code=^454$'
dcase_run "[memory/refuse] 454 to STARTTLS after a good TLS session" mem-refuse "$ALERT" refuse

LEAK=no VERDICT=tls EVENTS=''
dcase_run "[memory/pass] TLS works again" mem-pass3 "$ALERT" pass

# 5. the same refusal with detect.tofu = "defer": no plaintext, a 4xx
LEAK=no VERDICT=deferred
EVENTS='starttls_rejected_after_advertised:alert:escalated_by_memory=^true$ tofu_plaintext_refused:alert:domain=^example\.test$'
dcase_run "[memory/defer] detect.tofu = defer keeps the mail queued" mem-defer "$DEFER" refuse
check "[memory/defer] the sender was told why" sender_log_grep 'status=deferred .*4\.7\.5 .*detect\.tofu = defer'

LEAK=no VERDICT=tls EVENTS=''
dcase_run "[memory/pass] detect.tofu = defer lets verified TLS through" mem-pass4 "$DEFER" pass

# 6. a new certificate that also fails verification: an interception proxy
LEAK=yes VERDICT=plain
EVENTS='tls_cert_name_mismatch:warning:escalated_by_memory=^true$ tls_cert_changed:alert:escalated_by=^tls_cert_name_mismatch$'
dcase_run "[memory/swap-cert] the attacker's certificate instead of the remembered one" mem-swap "$ALERT" swap-cert

# 7. monitor mode: memory keyed by the destination address
LEAK=no VERDICT=tls EVENTS='' SESSION_RE='"tls": *true'
dcase_run "[memory/monitor-pass] the sender negotiates STARTTLS itself" mem-mon-pass "$(conf monitor alert)" pass
SESSION_RE=''
LEAK=yes VERDICT=plain
EVENTS="starttls_not_advertised:alert:escalated_by_memory=^true$ starttls_downgrade_vs_memory:alert:remembered=$RFC3339"
dcase_run "[memory/monitor-strip] stripped where it was offered before" mem-mon-strip "$(conf monitor alert)" strip
proxy_stop_checked
say "tofu.db: $(grep -v '^#' "$T/state/tofu.db" | tr '\n' ';')"
check "tofu.db also remembers $MX1_4 (monitor mode has no MX name)" tofu_line "$MX1_4"

step "tear-down"
mitm_stop
check_not "nothing bounced in the whole run" sender_log_grep 'status=bounced'
events_seen_record "$(basename "$0" .sh)"
finish
