#!/usr/bin/env bash
# Harness self-test of every mitm.py attack mode, no stsproxy: a Postfix
# sender with opportunistic TLS (level may) sends one mail per mode straight
# through the attacker. Each mode must leave its evidence in the attacker's
# log, and the outcome documents what a legacy "may" sender suffers:
#   garble, garble-cmd, refuse, refuse-ehlo -> plaintext, envelope read
#   swap-cert  -> TLS to the attacker (untrusted cert accepted), envelope read
#   mask-banner -> Postfix enables its Cisco PIX workarounds: HELO, plaintext
#   inject     -> Postfix discards the injected plaintext, TLS end to end
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 150

peers_up mx may ipv4
n=0

# deliver MODE: send one mail through the attacker in MODE; waits for it.
deliver() {
	mitm_start "$1"
	n=$((n + 1))
	sender_send "$RCPT" "mode-$1"
	check "[$1] mail arrives at the mx" mx_wait_mail "$n" 30
}

step "garble: STARTTLS overwritten in the EHLO reply"
deliver garble
check "[garble] attacker garbled STARTTLS" mitm_event 'garbled STARTTLS to XXXXXXXA'
check "[garble] arrived in plaintext" mx_received_plain mode-garble
check "[garble] attacker read the envelope" mitm_saw_plaintext "^MAIL FROM:<$FROM>"

step "garble-cmd: the client's STARTTLS command rewritten"
deliver garble-cmd
check "[garble-cmd] attacker rewrote the command" mitm_event 'garbled STARTTLS command'
check "[garble-cmd] the server rejected XXXXXXXX" mitm_log_grep '#[0-9]+ S> 5[0-9][0-9] '
check "[garble-cmd] attacker read the envelope" mitm_saw_plaintext "^MAIL FROM:<$FROM>"

step "refuse: the attacker answers STARTTLS with 454"
deliver refuse
check "[refuse] attacker answered 454 itself" mitm_event 'answered STARTTLS with 454'
check "[refuse] attacker read the envelope" mitm_saw_plaintext "^MAIL FROM:<$FROM>"

step "refuse-ehlo: EHLO refused, the client falls back to HELO"
deliver refuse-ehlo
check "[refuse-ehlo] attacker answered EHLO with 502" mitm_event 'answered EHLO with 502'
check "[refuse-ehlo] the client used HELO" mitm_saw_plaintext '^HELO '
check "[refuse-ehlo] arrived without TLS" mx_received_plain mode-refuse-ehlo
check "[refuse-ehlo] attacker read the envelope" mitm_saw_plaintext "^MAIL FROM:<$FROM>"

step "swap-cert: the attacker terminates TLS with a wrong-name certificate"
deliver swap-cert
check "[swap-cert] the client accepted the attacker's certificate" mitm_event 'client accepted our certificate'
check "[swap-cert] attacker read the envelope inside 'TLS'" mitm_saw_plaintext "^MAIL FROM:<$FROM>"
check "[swap-cert] attacker read the body" mitm_saw_plaintext 'SECRET-BODY-mode-swap-cert'
check "[swap-cert] the server got it in plaintext from the attacker" mx_received_plain mode-swap-cert

step "mask-banner: greeting text replaced by asterisks"
deliver mask-banner
check "[mask-banner] attacker masked the greeting" mitm_event 'masked the greeting'
check "[mask-banner] Postfix enabled its PIX workarounds" sender_log_grep 'enabling PIX workarounds'
check "[mask-banner] the client used HELO" mitm_saw_plaintext '^HELO '
check "[mask-banner] arrived without TLS" mx_received_plain mode-mask-banner
check "[mask-banner] attacker read the envelope" mitm_saw_plaintext "^MAIL FROM:<$FROM>"

step "inject: plaintext appended to the 220 reply to STARTTLS"
deliver inject
check "[inject] attacker injected after the 220" mitm_event "injected '250 injected'"
check "[inject] Postfix discarded it and completed TLS" mx_received_tls mode-inject
check_not "[inject] attacker did not read the envelope" mitm_saw_plaintext '^MAIL FROM'

step "pass again: the attacker relays a clean session"
deliver pass
check "[pass] TLS end to end" mx_received_tls mode-pass
check_not "nothing bounced" sender_log_grep 'status=bounced'
check "sender queue is empty" _sender_queue_is 0

finish
