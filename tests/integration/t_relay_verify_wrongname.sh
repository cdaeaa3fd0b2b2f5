#!/usr/bin/env bash
# Static "verify" policy for example.test, but the MX presents a certificate
# for wrong.example.org (valid chain, wrong name). stsproxy must not deliver:
# the sender keeps the mail queued with a 4.7.x temporary failure, nothing
# bounces, nothing reaches the mx, and no envelope or body crosses the wire in
# plaintext (the on-path host passes traffic through and records it).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 90
proxy_require

peers_up wrong none ipv4
mitm_start pass
router_redirect on
proxy_start "$(proxy_config upgrade redirect verify)"

step "legacy sender -> stsproxy (verify) -> mx with a wrong-name certificate"
sender_send "$RCPT" relay-wrongname
check "the sender defers the mail" sender_wait_log 'status=deferred' 30
check "the deferral carries a 4.7.x code: $(sender_status_lines | tail -n 1)" \
	sender_log_grep 'status=deferred .*4\.7\.[0-9]'

step "the next attempt is deferred again, never bounced"
sender_flush
wait_for 20 "a second delivery attempt" _sender_log_count_ge 'status=(deferred|sent|bounced)' 2
check "a second attempt is deferred too: $(sender_status_lines | tail -n 1 | cut -c1-120)" \
	_sender_log_count_ge 'status=deferred' 2
check "the mail is still queued at the sender" _sender_queue_is 1
check_not "nothing was bounced or sent" sender_log_grep 'status=(bounced|sent)'
check "nothing arrived at the mx" [ "$(mx_mail_count)" -eq 0 ]
check_not "the mx never accepted a MAIL FROM" mx_log_grep ': client=|from=<'
check "stsproxy reached the mx (the on-path host saw its EHLO)" mitm_saw_plaintext '^EHLO'
assert_no_leak relay-wrongname
check "stsproxy logged the name mismatch (event tls_cert_name_mismatch)" proxy_event tls_cert_name_mismatch
check "stsproxy logged the policy failure (event policy_failure)" proxy_event policy_failure
check_not "no session record claims a verified certificate" \
	proxy_session_logged "$MX1_4" "$SESSION_VERIFIED"
if proxy_session_logged "$MX1_4" "$SESSION_VERIFIED" '"tls_session_offered": *true'; then
	say "NOTE: a session that resumed a TLS session was taken as verified: the name check must not be skipped on resumption"
fi
check "stsproxy is still running" proxy_alive

finish
