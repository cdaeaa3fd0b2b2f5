#!/usr/bin/env bash
# A receiver without STARTTLS, upgrade mode, no policy: nothing requires TLS,
# so stsproxy must still deliver (in plaintext) rather than hold mail back.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 90
proxy_require

peers_up none none ipv4
mitm_start pass
router_redirect on
proxy_start "$(proxy_config upgrade redirect "" may)"

step "legacy sender -> stsproxy -> mx without STARTTLS"
sender_send "$RCPT" relay-notls
check "mail arrives at the mx" mx_wait_mail 1 30
check "mx received it in plaintext (with ESMTP): $(mx_received relay-notls)" mx_received_plain relay-notls
check "the body arrived intact" mx_body_has relay-notls "SECRET-BODY-relay-notls"
check "the session went through the on-path host" mitm_saw_plaintext '^EHLO'
check "sender queue is empty" _sender_queue_is 0
check_not "nothing bounced" sender_log_grep 'status=bounced'
check "stsproxy logged a successful session record for $MX1_4" \
	proxy_session_logged "$MX1_4" "$SESSION_OK" "$SESSION_PLAIN"
check "stsproxy is still running" proxy_alive

finish
