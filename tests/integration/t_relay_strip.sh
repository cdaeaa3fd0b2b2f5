#!/usr/bin/env bash
# stsproxy closes the STARTTLS-stripping leak: a legacy sender (no TLS at all)
# sends through stsproxy (mode upgrade, REDIRECT, static "verify" policy for
# example.test); an on-path attacker between router and MX deletes STARTTLS
# from the EHLO reply. stsproxy sends STARTTLS anyway, verifies the MX
# certificate against the test CA and delivers over TLS: the attacker sees
# only EHLO/STARTTLS in plaintext, never the envelope or the body.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 90
proxy_require

peers_up mx none ipv4
mitm_start strip
router_redirect on
proxy_start "$(proxy_config upgrade redirect verify)"

step "legacy sender -> stsproxy -> STARTTLS-stripping attacker -> mx"
sender_send "$RCPT" relay-strip
check "mail arrives at the mx" mx_wait_mail 1 30
check "mx received it over TLS (with ESMTPS): $(mx_received relay-strip)" mx_received_tls relay-strip
check "the body arrived intact" mx_body_has relay-strip "SECRET-BODY-relay-strip"
check "the attacker intercepted the upstream session (saw EHLO)" mitm_saw_plaintext '^EHLO'
check "the attacker stripped STARTTLS from the EHLO reply" mitm_event 'stripped STARTTLS'
check "stsproxy sent STARTTLS although it was stripped" mitm_saw_plaintext '^STARTTLS'
assert_no_leak relay-strip
check "sender queue is empty" _sender_queue_is 0
check_not "nothing bounced" sender_log_grep 'status=bounced'
check "stsproxy logged a successful session record for $MX1_4" \
	proxy_session_logged "$MX1_4" "$SESSION_OK" "$SESSION_TLS" "$SESSION_VERIFIED"
check "stsproxy is still running" proxy_alive

finish
