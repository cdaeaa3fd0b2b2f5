#!/usr/bin/env bash
# One delivery through a TPROXY listener (mangle TPROXY + "fwmark 1 -> local"
# policy routing instead of REDIRECT). The sender has no TLS; the mail must
# arrive over TLS, which only stsproxy can have done.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 90
proxy_require

peers_up mx none ipv4
mitm_start pass
router_tproxy on
proxy_start "$(proxy_config upgrade tproxy verify)"

step "legacy sender -> TPROXY -> stsproxy -> mx"
sender_send "$RCPT" relay-tproxy
check "mail arrives at the mx" mx_wait_mail 1 30
check "mx received it over TLS (with ESMTPS): $(mx_received relay-tproxy)" mx_received_tls relay-tproxy
check "the client's connection matched the TPROXY rule ($(router_tproxy_hits) packets)" \
	[ "$(router_tproxy_hits)" -gt 0 ]
check "the session went through the on-path host" mitm_saw_plaintext '^EHLO'
assert_no_leak relay-tproxy
check "sender queue is empty" _sender_queue_is 0
check_not "nothing bounced" sender_log_grep 'status=bounced'
check "stsproxy logged a successful session record for $MX1_4" \
	proxy_session_logged "$MX1_4" "$SESSION_OK" "$SESSION_TLS" "$SESSION_VERIFIED" '"listener": *"tproxy"'
check "stsproxy is still running" proxy_alive

finish
