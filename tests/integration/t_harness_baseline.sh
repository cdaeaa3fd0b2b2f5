#!/usr/bin/env bash
# Harness baseline, no stsproxy: a Postfix sender with opportunistic TLS
# (level may) through a passive on-path host delivers with TLS; through a
# STARTTLS-stripping attacker it silently falls back to plaintext and the
# attacker reads the envelope and the body. This is the leak stsproxy exists
# to close, and it proves every peer of the harness works.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 90

peers_up mx may ipv4

step "attacker passive (pass): opportunistic TLS works end to end"
mitm_start pass
sender_send "$RCPT" baseline-pass
require "mail 1 arrives at the mx" mx_wait_mail 1 30
check "mx received it over TLS (with ESMTPS): $(mx_received baseline-pass)" mx_received_tls baseline-pass
check "mx log shows a TLS connection" mx_log_grep 'TLS connection established from'
check "the attacker intercepted the session (saw EHLO)" mitm_saw_plaintext '^EHLO'
check "the attacker switched to blind relay after STARTTLS" mitm_event 'blind relay starts.*TLS handshake'
check_not "the attacker did not see MAIL FROM" mitm_saw_plaintext '^MAIL FROM'
check_not "the attacker did not see the body" mitm_saw_plaintext 'SECRET-BODY-baseline-pass'

step "attacker strips STARTTLS: Postfix (may) falls back to plaintext"
mitm_start strip
sender_send "$RCPT" baseline-strip
require "mail 2 arrives at the mx" mx_wait_mail 2 30
check "mx received it in plaintext (with ESMTP): $(mx_received baseline-strip)" mx_received_plain baseline-strip
check "the attacker stripped STARTTLS" mitm_event 'stripped STARTTLS'
check "the attacker saw MAIL FROM in plaintext (the leak)" mitm_saw_plaintext "^MAIL FROM:<$FROM>"
check "the attacker saw RCPT TO in plaintext" mitm_saw_plaintext "^RCPT TO:<$RCPT>"
check "the attacker saw the body in plaintext" mitm_saw_plaintext 'SECRET-BODY-baseline-strip'
check "sender queue is empty" _sender_queue_is 0
check_not "nothing bounced" sender_log_grep 'status=bounced'

finish
