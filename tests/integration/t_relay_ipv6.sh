#!/usr/bin/env bash
# One delivery over IPv6 end to end: the sender uses only IPv6 (AAAA of
# mx1.example.test), the router REDIRECTs with ip6tables to stsproxy's "::"
# listener, and stsproxy reaches the mx over IPv6 with TLS.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 90
proxy_require

peers_up mx none ipv6
mitm_start pass
router_redirect on
proxy_start "$(proxy_config upgrade redirect verify)"

step "legacy sender -> stsproxy -> mx, all over IPv6"
sender_send "$RCPT" relay-ipv6
check "mail arrives at the mx" mx_wait_mail 1 30
check "the sender connected to the mx's IPv6 address" sender_log_grep "relay=mx1\.example\.test\[$MX1_6\]:25"
check "mx received it over TLS (with ESMTPS): $(mx_received relay-ipv6)" mx_received_tls relay-ipv6
check "mx saw an IPv6 client" mx_log_grep 'connect from [^ ]*\[2001:db8:'
check "the upstream session went over IPv6 through the on-path host" \
	mitm_event "connection from 2001:db8:[0-9a-f:]* to $MX1_6 port 25"
assert_no_leak relay-ipv6
check "sender queue is empty" _sender_queue_is 0
check_not "nothing bounced" sender_log_grep 'status=bounced'
check "stsproxy logged a successful session record for $MX1_6" \
	proxy_session_logged "$MX1_6" "$SESSION_OK" "$SESSION_TLS" "$SESSION_VERIFIED"
check "stsproxy is still running" proxy_alive

finish
