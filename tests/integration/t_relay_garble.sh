#!/usr/bin/env bash
# As t_relay_strip, but the attacker garbles STARTTLS to XXXXXXXA in the EHLO
# reply, and stsproxy has no static policy (default level "may"): upgrade
# mode still tries STARTTLS and delivers over TLS.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 90
proxy_require

peers_up mx none ipv4
mitm_start garble
router_redirect on
proxy_start "$(proxy_config upgrade redirect "" may)"

step "legacy sender -> stsproxy -> STARTTLS-garbling attacker -> mx"
sender_send "$RCPT" relay-garble
check "mail arrives at the mx" mx_wait_mail 1 30
check "mx received it over TLS (with ESMTPS): $(mx_received relay-garble)" mx_received_tls relay-garble
check "the attacker intercepted the upstream session (saw EHLO)" mitm_saw_plaintext '^EHLO'
check "the attacker garbled STARTTLS in the EHLO reply" mitm_event 'garbled STARTTLS to XXXXXXXA'
check "stsproxy sent STARTTLS although it was garbled" mitm_saw_plaintext '^STARTTLS'
assert_no_leak relay-garble
check "sender queue is empty" _sender_queue_is 0
check_not "nothing bounced" sender_log_grep 'status=bounced'
check "stsproxy logged a successful session record for $MX1_4" \
	proxy_session_logged "$MX1_4" "$SESSION_OK" "$SESSION_TLS"
check "stsproxy is still running" proxy_alive

finish
