#!/usr/bin/env bash
# MTA-STS rerouting (RFC 8461 §5): the legacy sender's own DNS lies, so it
# connects to a host that is not a policy-valid MX; stsproxy (mode
# "enforce", the real DNS) moves the session to the domain's policy MX
# before any envelope byte is sent.
#
#   client ns: legacy Postfix + a lying resolver on 127.0.0.1:53 that
#              answers mx1.example.test A 203.0.113.11 (everything else is
#              forwarded to nsd)
#   mx ns:     the real mx1 (Postfix, 203.0.113.10, certificate for mx1),
#              a "wrong host" on 203.0.113.11:25 (scripted SMTP server with
#              STARTTLS and a valid certificate for mx2.example.test, which
#              is neither an MX of example.test nor in its policy), nsd,
#              nginx serving https://mta-sts.example.test/.well-known/mta-sts.txt
#              = enforce, mx: mx1.example.test
#
# Cases:
#   1. policy.reroute = true: the mail arrives at mx1 over verified TLS,
#      mx_rerouted is logged, the wrong host never sees MAIL/RCPT/body.
#   2. policy.reroute = false: the mail is deferred with 4.7.5 and stays
#      queued at the sender (never bounced); nothing reaches either host.
#   3. reroute = true but the policy MX is down: deferred (4.x), queued.
#   4. the policy MX is back: everything queued is delivered to mx1 over
#      TLS; nothing ever went to the wrong host.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 360
proxy_require
nginx_require

WRONG_LOG= # set after it_init made $T
LIAR_LOG=

# ---- the real side: DNS, policy host, mx1 -----------------------------------------
# the policy host: https://mta-sts.example.test/.well-known/mta-sts.txt
policy_host_start() {
	nginx_policy mail 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n'
	nginx_conf "	server { listen $MX1_4:443 ssl; server_name mta-sts.$MAIL_DOMAIN; root $T/www/mail; }"
	nginx_start
}

# mx1 only: Postfix must not hold 203.0.113.11:25, the wrong host's address
# (mx_start binds mx1 and mx2; inet_interfaces changes need a restart).
mx1_start() {
	nsx "$NS_MX" postconf -c "$T/mx/conf" -e "inet_interfaces = $MX1_4, [$MX1_6]" >/dev/null
	mx_stop
	_pf_start "$NS_MX" "$T/mx"
	wait_for 10 "mx1 smtpd listening" _listening "$NS_MX" "$MX1_4" 25 ||
		it_abort "mx1 postfix not listening on $MX1_4:25"
}

# ---- the wrong host: 203.0.113.11:25 ------------------------------------------------
# A scripted SMTP server that offers STARTTLS with a valid certificate for
# mx2.example.test and accepts everything. Every line it receives goes to
# $WRONG_LOG ("C>" plaintext, "T>" inside TLS, "B " body, "** " its events),
# so the test can prove no envelope or body byte ever reached it.
wrong_start() {
	ip netns exec "$NS_MX" "$PY" - "$MX2_4" "$T/pki/mx2.pem" "$T/pki/mx2.key" "$WRONG_LOG" \
		>>"$T/wrong.out" 2>&1 <<'EOF' &
import socket, ssl, sys, threading, time
addr, cert, key, logf = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
log = open(logf, "a", buffering=1)
lock = threading.Lock()
def w(cid, tag, s):
    with lock:
        log.write("%.3f #%d %s %s\n" % (time.time(), cid, tag, s))
def serve(c, cid):
    buf, tls, data = b"", False, False
    c.settimeout(60)
    def send(*lines):
        c.sendall(b"".join(l.encode() + b"\r\n" for l in lines))
    w(cid, "**", "connect")
    send("220 mx2.example.test ESMTP wrong-host")
    try:
        while True:
            while b"\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            raw, buf = buf.split(b"\n", 1)
            l = raw.decode("latin-1").rstrip("\r")
            if data:
                if l == ".":
                    data = False
                    w(cid, "**", "MESSAGE ACCEPTED")
                    send("250 2.0.0 queued at the WRONG host")
                else:
                    w(cid, "B", l)
                continue
            w(cid, "T>" if tls else "C>", l)
            v = l.split(" ")[0].split(":")[0].upper()
            if v == "EHLO":
                send("250-mx2.example.test", "250-PIPELINING", *(["250 STARTTLS"] if not tls else ["250 8BITMIME"]))
            elif v == "HELO":
                send("250 mx2.example.test")
            elif v == "STARTTLS" and not tls:
                send("220 2.0.0 Ready to start TLS")
                c = ctx.wrap_socket(c, server_side=True)
                tls, buf = True, b""
                w(cid, "**", "TLS " + str(c.version()))
            elif v in ("MAIL", "RCPT", "RSET", "NOOP"):
                send("250 2.0.0 Ok")
            elif v == "DATA":
                data = True
                send("354 End data with <CR><LF>.<CR><LF>")
            elif v == "QUIT":
                send("221 2.0.0 Bye")
                return
            else:
                send("502 5.5.2 Error: command not recognized")
    except Exception as e:
        w(cid, "**", "error " + repr(e))
    finally:
        w(cid, "**", "close")
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, 25))
s.listen(16)
print("READY", flush=True)
n = 0
while True:
    c, _ = s.accept()
    n += 1
    threading.Thread(target=serve, args=(c, n), daemon=True).start()
EOF
	wait_for 10 "wrong host ready" grep -q READY "$T/wrong.out" ||
		it_abort "the wrong host did not start: $(tail -n 5 "$T/wrong.out")"
}
_not_listening_mx1() { ! _listening "$NS_MX" "$MX1_4" 25; }
wrong_saw() { grep -qiE -- "$1" "$WRONG_LOG" 2>/dev/null; }
wrong_connections() { grep -c ' \*\* connect$' "$WRONG_LOG" 2>/dev/null || true; }

# ---- the sender's lying resolver ------------------------------------------------------
# Answers "mx1.example.test A" with the wrong host's address and forwards
# every other query to nsd: the MX record is right, its address is not
# (a spoofed or poisoned resolver).
liar_start() {
	ip netns exec "$NS_CLIENT" "$PY" - "$DNS4" "mx1.$MAIL_DOMAIN" "$MX2_4" "$LIAR_LOG" \
		>>"$T/liar.out" 2>&1 <<'EOF' &
import socket, sys
from dnslib import DNSRecord, RR, QTYPE, A
upstream, name, lie, logf = sys.argv[1:5]
log = open(logf, "a", buffering=1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 53))
print("READY", flush=True)
while True:
    data, peer = u.recvfrom(4096)
    try:
        q = DNSRecord.parse(data)
        qn = str(q.q.qname).rstrip(".").lower()
        if qn == name and q.q.qtype == QTYPE.A:
            r = q.reply()
            r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(lie), ttl=30))
            out = r.pack()
            log.write("LIE %s A %s\n" % (qn, lie))
        else:
            f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            f.settimeout(2)
            f.sendto(data, (upstream, 53))
            out, _ = f.recvfrom(65535)
            f.close()
            log.write("FWD %s %s\n" % (qn, QTYPE[q.q.qtype]))
        u.sendto(out, peer)
    except Exception as e:
        log.write("ERR %r\n" % (e,))
EOF
	wait_for 10 "lying resolver ready" grep -q READY "$T/liar.out" ||
		it_abort "the lying resolver did not start: $(tail -n 5 "$T/liar.out")"
	printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:2\n' >"/etc/netns/$NS_CLIENT/resolv.conf"
}

# _sender_resolves NAME: the A record the sender's resolver gives
_sender_resolves() {
	nsx "$NS_CLIENT" "$PY" - "$1" <<'EOF'
import sys
from dnslib import DNSRecord
r = DNSRecord.parse(DNSRecord.question(sys.argv[1], "A").send("127.0.0.1", 53, timeout=2))
print(" ".join(str(rr.rdata) for rr in r.rr))
EOF
}

# ---- stsproxy --------------------------------------------------------------------------
# pconf true|false: mode enforce, the real DNS, policy.reroute as given
pconf() {
	proxy_config enforce redirect | sed "s/^policy = { /policy = { reroute = $1; /"
	printf 'sts = { cache_file = "%s"; fetch_timeout = 10.0; };\n' "$T/sts.cache"
}

proxy_restart() { # true|false
	proxy_stop
	proxy_start "$(pconf "$1")"
	check "config has policy.reroute = $1" grep -q "reroute = $1;" "$T/proxy.conf"
}

event_count() { # NAME
	cat "$T/proxy.log" "$T/proxy.out" 2>/dev/null | grep -E '"type": *"event"' |
		grep -cE -- "\"event\": *\"$1\"" || true
}
_event_count_ge() { [ "$(event_count "$1")" -ge "$2" ]; }
_mx_count_is() { [ "$(mx_mail_count)" -eq "$1" ]; }
# a temporary failure of the recipient, as the sender logs it
sender_deferred_re() { echo "to=<$RCPT>.*dsn=4\.[0-9]\.[0-9]+.*status=deferred"; }

assert_wrong_host_clean() { # WHEN
	check_not "$1: the wrong host never received MAIL FROM" wrong_saw '^[0-9.]+ #[0-9]+ [CT]> MAIL FROM'
	check_not "$1: the wrong host never received RCPT TO" wrong_saw '^[0-9.]+ #[0-9]+ [CT]> RCPT TO'
	check_not "$1: the wrong host never received DATA" wrong_saw '^[0-9.]+ #[0-9]+ [CT]> DATA'
	check_not "$1: the wrong host never received a message body" wrong_saw ' B |SECRET-BODY|MESSAGE ACCEPTED'
}

# ---- set-up ------------------------------------------------------------------------------
step "building topology, PKI, DNS, policy host, mx1, the wrong host, the lying resolver"
topo_up
WRONG_LOG=$T/wrong.log
LIAR_LOG=$T/liar.log
: >"$WRONG_LOG"
: >"$LIAR_LOG"
ca_make
_cert sts "DNS:mta-sts.$MAIL_DOMAIN" "mta-sts.$MAIL_DOMAIN"
dns_mail_zone_sts reroute1
dns_start
policy_host_start
mx_start mx1
mx1_start
wrong_start
require "nothing but the wrong host listens on $MX2_4:25" \
	[ "$(nsx "$NS_MX" ss -Hltnp "sport = :25" | grep -F "$MX2_4:25" | grep -c python)" -eq 1 ]
liar_start
require "the sender's resolver lies: mx1.$MAIL_DOMAIN is $MX2_4 for it" \
	[ "$(_sender_resolves "mx1.$MAIL_DOMAIN")" = "$MX2_4" ]
require "the real DNS says mx1.$MAIL_DOMAIN is $MX1_4" \
	[ "$(dns_query "mx1.$MAIL_DOMAIN" A | awk '{print $NF}')" = "$MX1_4" ]
sender_start none ipv4
router_redirect on

# ---- 1. reroute on --------------------------------------------------------------------------
step "1. policy.reroute = true: the session moves to the policy MX mx1"
proxy_start "$(pconf true)"
sender_send "$RCPT" rr-1
check "the mail arrives at the mx" mx_wait_mail 1 60
check "it arrived over TLS: $(mx_received rr-1)" mx_received_tls rr-1
check "the sender connected to the wrong address (its DNS lied)" \
	sender_log_grep "to=<$RCPT>, relay=mx1\.example\.test\[$MX2_4\]:25.*status=sent"
check "the lying resolver answered the sender" grep -q "^LIE mx1.$MAIL_DOMAIN A $MX2_4" "$LIAR_LOG"
check "stsproxy first spoke with the wrong host" [ "$(wrong_connections)" -ge 1 ]
check "event mx_rerouted logged" proxy_event mx_rerouted
check "mx_rerouted names the move $MX2_4:25 -> mx1.$MAIL_DOMAIN" \
	proxy_log_grep "\"event\": *\"mx_rerouted\".*\"evidence\": *\"$MX2_4:25 -> mx1\.example\.test\""
check "the destination failed the policy as not an MX of $MAIL_DOMAIN" \
	proxy_log_grep "rerouting $MAIL_DOMAIN to policy MX mx1\.example\.test \(.*not an MX host"
check "session record: delivered to mx1 over verified TLS under the MTA-STS policy" \
	proxy_session_logged "$MX1_4:25" "$SESSION_OK" "$SESSION_TLS" "$SESSION_VERIFIED" \
	'"mx": *"mx1\.example\.test"' "$MAIL_DOMAIN policy=mta-sts/verify verdict=ok accepted=1"
assert_wrong_host_clean "reroute on"
check "nothing queued at the sender" wait_for 10 "empty sender queue" _sender_queue_is 0

# ---- 2. reroute off -----------------------------------------------------------------------
step "2. policy.reroute = false: deferred with 4.7.5, never bounced"
proxy_restart false
n_rerouted=$(event_count mx_rerouted)
n_pf=$(event_count policy_failure)
sender_send "$RCPT" rr-2
check "the mail is deferred by the sender" \
	sender_wait_log "to=<$RCPT>.*dsn=4\.7\.5.*status=deferred" 60
check "with stsproxy's 450 4.7.5: $(sender_status_lines | grep deferred | tail -n 1)" \
	sender_log_grep "status=deferred .*450 4\.7\.5 stsproxy: TLS policy for $MAIL_DOMAIN not met"
check "stsproxy logged policy_failure" wait_for 5 "policy_failure" _event_count_ge policy_failure $((n_pf + 1))
check "no reroute with policy.reroute = false" [ "$(event_count mx_rerouted)" -eq "$n_rerouted" ]
check "the message stays queued at the sender" _sender_queue_is 1
check_not "nothing bounced" sender_log_grep 'status=bounced'
check "nothing more arrived at the mx" _mx_count_is 1
assert_wrong_host_clean "reroute off"

# ---- 3. reroute on, the policy MX down -------------------------------------------------
step "3. policy.reroute = true, mx1 down: nothing valid to move to, deferred"
mx_stop
check "mx1 no longer accepts on port 25" wait_for 10 "mx1 down" _not_listening_mx1
proxy_restart true
n_rerouted=$(event_count mx_rerouted)
n_def=$(sender_log_count "$(sender_deferred_re)")
sender_send "$RCPT" rr-3
sender_flush
check "stsproxy tried to reroute to mx1" wait_for 30 "mx_rerouted" _event_count_ge mx_rerouted $((n_rerouted + 1))
check "the sender deferred again (4.x)" \
	wait_for 60 "more deferrals" _sender_log_count_ge "$(sender_deferred_re)" $((n_def + 1))
check "stsproxy's reason: no other policy MX host worked" \
	proxy_log_grep "recipient deferred: TLS policy for $MAIL_DOMAIN not met: .*no other policy MX host"
check "the sender saw 450 4.7.5 for it: $(sender_status_lines | grep deferred | tail -n 1)" \
	sender_log_grep "status=deferred .*450 4\.7\.5 stsproxy: TLS policy for $MAIL_DOMAIN not met: .*policy MX host"
check "both messages are still queued at the sender" _sender_queue_is 2
check_not "nothing bounced" sender_log_grep 'status=bounced'
check "nothing more arrived at the mx" _mx_count_is 1
assert_wrong_host_clean "mx1 down"

# ---- 4. the policy MX is back ----------------------------------------------------------
step "4. mx1 is back: the queued mail is rerouted and delivered"
mx1_start
sender_flush
check "both queued messages arrive at the mx" mx_wait_mail 3 90
check "rr-2 arrived over TLS" mx_received_tls rr-2
check "rr-3 arrived over TLS" mx_received_tls rr-3
check "the sender's queue is empty" wait_for 20 "empty sender queue" _sender_queue_is 0
check_not "nothing bounced" sender_log_grep 'status=bounced'
assert_wrong_host_clean "end"
check "stsproxy is still running" proxy_alive

finish
