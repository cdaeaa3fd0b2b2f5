#!/usr/bin/env bash
# A large message (about 1 MiB, long and dot-stuffed lines included) through
# stsproxy over verified TLS, with no attacker on the path: exercises the
# streamed DATA path and backpressure between the plaintext client leg and
# the TLS server leg. Arrives exactly once, intact.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 100
proxy_require

peers_up mx none ipv4
router_redirect on
proxy_start "$(proxy_config upgrade redirect verify)"

step "legacy sender -> stsproxy -> mx, 1 MiB body"
body=$T/body.txt
{
	for i in $(seq 1 12000); do
		printf 'line %05d SECRET-BODY-relay-large xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n' "$i"
		[ $((i % 1000)) -eq 0 ] && printf '.a line that starts with a dot %d\n' "$i"
	done
	printf 'the last line\n'
} >"$body"
say "body: $(wc -c <"$body") bytes"
sender_send "$RCPT" relay-large "$body"
check "mail arrives at the mx" mx_wait_mail 1 45
check "mx received it over TLS (with ESMTPS)" mx_received_tls relay-large
check "the last line arrived" mx_body_has relay-large "the last line"
check "dot-stuffed lines arrived unstuffed" mx_body_has relay-large ".a line that starts with a dot 12000"
check "every line arrived" [ "$(grep -c 'SECRET-BODY-relay-large' "$(_mx_file relay-large)")" -eq 12000 ]
check "sender queue is empty" _sender_queue_is 0
check_not "the sender never had to retry" sender_log_grep 'status=deferred'
check "stsproxy logged a successful session record for $MX1_4" \
	proxy_session_logged "$MX1_4" "$SESSION_OK" "$SESSION_TLS" "$SESSION_VERIFIED"
check "stsproxy is still running" proxy_alive

finish
