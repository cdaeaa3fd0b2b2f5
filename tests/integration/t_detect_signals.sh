#!/usr/bin/env bash
# Downgrade detection, the rest of the catalogue (docs/events.md) that
# t_detect_modes.sh's eight attacks do not reach, each provoked by a real
# on-path change between stsproxy and the receiving Postfix:
#   EHLO reply anomalies (mitm.py modes empty-line, starttls-first-line,
#   mask-keyword, malformed, ehlo-noop) and a server without TLS (no-tls),
#   in monitor and upgrade mode;
#   TLS failures in upgrade mode: a reset after the ClientHello (drop-tls), a
#   TLS 1.0/1.1-only server (old-tls), and certificates that are self-signed,
#   expired or not for servers (extendedKeyUsage clientAuth);
#   the MTA-STS engine's events (two TXT records, an unreachable policy host,
#   an invalid policy) and a "testing" policy failure (policy_failure_testing);
#   a message body with a bare LF (body_bare_lf).
# Same assertions as t_detect_modes.sh (lib.sh dcase_run): events and
# severities, the sender's verdict, where the mail went, no alarm beyond the
# expected one.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 420
proxy_require
for cmd in faketime swaks; do # the expired certificate; the RCPT-only sessions
	command -v "$cmd" >/dev/null || it_skip "$cmd missing: run tests/integration/install-peers.sh"
done

peers_up mx may ipv4
sender_postconf default_destination_concurrency_failed_cohort_limit=1000
router_redirect on

# ---- extra certificates: self-signed and clientAuth-only for the attacker, and
# the MTA-STS policy host's
ca_make_extra
_cert sts "DNS:mta-sts.invalid.sts.test,DNS:mta-sts.testing.sts.test" "mta-sts.sts.test"
chmod 644 "$T/pki/sts.pem" "$T/pki/sts.key"

MONITOR=$(proxy_config monitor redirect "" may)
UPGRADE=$(proxy_config upgrade redirect "" may)

# ---- EHLO reply anomalies and a server without TLS ---------------------------------
# Monitor: the sender (Postfix, level may) reads the same reply stsproxy does.
# Upgrade: stsproxy sends STARTTLS anyway and the real server accepts it.
# In upgrade mode stsproxy's own STARTTLS is then accepted although the
# EHLO reply did not offer it: starttls_stripped.
STRIPPED='starttls_stripped:alert:code=^220$'
for p in monitor upgrade; do
	conf=$MONITOR
	[ $p = upgrade ] && conf=$UPGRADE
	SESSION_RE=''

	# "250-" where STARTTLS stood: blanked in flight
	LEAK=no VERDICT=tls
	[ $p = monitor ] && LEAK=yes VERDICT=plain
	EVENTS='ehlo_empty_line:notice:evidence=^250-$:code=^250$ starttls_not_advertised:alert:escalated_by=^ehlo_empty_line$'
	[ $p = upgrade ] && EVENTS="$EVENTS $STRIPPED"
	dcase_run "[$p/empty-line]" "ds-$p-empty-line" "$conf" empty-line

	# eight 0x01 bytes where STARTTLS stood
	EVENTS='ehlo_malformed_line:notice:evidence=^250-(%01){8}$ starttls_not_advertised:alert:escalated_by=^ehlo_malformed_line$'
	[ $p = upgrade ] && EVENTS="$EVENTS $STRIPPED"
	dcase_run "[$p/malformed]" "ds-$p-malformed" "$conf" malformed

	# EHLO rewritten into NOOP (PIX mailguard): the "EHLO reply" has an
	# enhanced status code
	EVENTS='ehlo_command_rewritten:warning:evidence=^250\x202\.0\.0 starttls_not_advertised:alert:escalated_by=^ehlo_command_rewritten$'
	[ $p = upgrade ] && EVENTS="$EVENTS $STRIPPED"
	dcase_run "[$p/ehlo-noop]" "ds-$p-ehlo-noop" "$conf" ehlo-noop

	# "250-STARTTLS" as the greeting line of the EHLO reply: not an offer,
	# a notice, and no corroboration (real servers do this)
	EVENTS='ehlo_starttls_in_greeting_line:notice:evidence=^250-STARTTLS$:line=^0$ starttls_not_advertised:info'
	[ $p = upgrade ] && EVENTS="$EVENTS $STRIPPED"
	dcase_run "[$p/starttls-first-line]" "ds-$p-first-line" "$conf" starttls-first-line

	# STARTTLS still advertised, CHUNKING masked as XXXXXXXB (Cisco ASA)
	LEAK=no VERDICT=tls
	EVENTS='ehlo_keyword_masked:notice:evidence=^250[-\x20]XXXXXXXB$'
	SESSION_RE='"starttls_advertised": *true|"tls": *true'
	dcase_run "[$p/mask-keyword]" "ds-$p-mask-keyword" "$conf" mask-keyword
	SESSION_RE=''

	# a server without TLS: informational only, nothing cries wolf
	LEAK=yes VERDICT=plain
	if [ $p = monitor ]; then
		EVENTS='starttls_not_advertised:info'
	else
		EVENTS='starttls_not_advertised:info starttls_refused:info:code=^502$:evidence=^502\x205\.5\.1'
	fi
	SESSION_RE='"starttls_advertised": *false|"tls": *false'
	dcase_run "[$p/no-tls]" "ds-$p-no-tls" "$conf" no-tls
	check "[$p/no-tls] nothing above info level" \
		bash -c "! grep -E '\"severity\": *\"(notice|warning|alert)\"' '$T/proxy.log'"
done

# ---- TLS failures (upgrade mode, default level "may") --------------------------------
SESSION_RE=''
# reset after the ClientHello: stsproxy retries without STARTTLS ("may")
LEAK=yes VERDICT=plain
EVENTS='tls_handshake_failed:warning'
dcase_run "[upgrade/drop-tls]" ds-drop-tls "$UPGRADE" drop-tls
check "[upgrade/drop-tls] the attacker reset the handshake" mitm_event 'resetting both connections'

# a server that only speaks TLS 1.0/1.1 (mbed TLS 3.6 offers 1.2 and 1.3):
# it answers the ClientHello with a protocol_version alert. docs/events.md:
# tls_version_too_low ("only a protocol version below the configured minimum
# could be negotiated"); a tls_handshake_failed next to it is tolerated.
EVENTS='tls_version_too_low:warning'
DCASE_TOLERATE=tls_handshake_failed
dcase_run "[upgrade/old-tls]" ds-old-tls "$UPGRADE" old-tls mx1
DCASE_TOLERATE=
check "[upgrade/old-tls] the attacker's server refused every version stsproxy offered, with an alert" \
	mitm_event 'handshake with the client failed: .*UNSUPPORTED_PROTOCOL.*sent [1-9][0-9]* bytes of alert'

# certificates presented by an attacker terminating stsproxy's STARTTLS;
# "may" delivers anyway (through the attacker, who relays in plaintext)
SESSION_RE='"tls": *true|"tls_verify": *"untrusted"'
EVENTS='tls_cert_untrusted:notice:evidence=untrusted'
dcase_run "[upgrade/self-signed]" ds-self "$UPGRADE" swap-cert self

SESSION_RE='"tls": *true|"tls_verify": *"expired"'
EVENTS='tls_cert_expired:notice:evidence=expired'
dcase_run "[upgrade/expired]" ds-expired "$UPGRADE" swap-cert expired

SESSION_RE='"tls": *true|"tls_verify": *"invalid"'
EVENTS='tls_cert_invalid:notice'
dcase_run "[upgrade/clientauth-only]" ds-eku "$UPGRADE" swap-cert eku
SESSION_RE=''

# ---- MTA-STS engine events and a testing-mode policy failure ------------------------
step "MTA-STS: policy host, zone, engine events"
mitm_stop
proxy_stop_checked
proxy_log_rotate
mkdir -p "$T/www/invalid/.well-known" "$T/www/testing/.well-known"
printf 'version: STSv1\nmode: enforcing\nmx: mx1.example.test\nmax_age: 86400\n' \
	>"$T/www/invalid/.well-known/mta-sts.txt"
printf 'version: STSv1\nmode: testing\nmx: mx1.example.test\nmax_age: 86400\n' \
	>"$T/www/testing/.well-known/mta-sts.txt"
# the policy host: HTTPS on mx1:443, the directory chosen by the Host header
ip netns exec "$NS_MX" "$PY" - "$MX1_4" "$T/www" "$T/pki/sts.pem" "$T/pki/sts.key" \
	>>"$T/https.log" 2>&1 <<'EOF' &
import http.server, os, ssl, sys
addr, root, cert, key = sys.argv[1:5]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        name = host.split(".")[1] if host.count(".") >= 2 else ""
        path = os.path.join(root, name, self.path.lstrip("/"))
        if not name or ".." in self.path or not os.path.isfile(path):
            self.send_error(404)
            return
        body = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = http.server.ThreadingHTTPServer((addr, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("READY", flush=True)
srv.serve_forever()
EOF
HTTPS_PID=$!
wait_for 10 "policy host listening on $MX1_4:443" _listening "$NS_MX" "$MX1_4" 443 ||
	it_abort "policy host did not start: $(tail -n 5 "$T/https.log")"
dns_zone_add sts.test "
two	IN MX 10 mx1.example.test.
_mta-sts.two	IN TXT \"v=STSv1; id=two1\"
_mta-sts.two	IN TXT \"v=STSv1; id=two2\"
nohost	IN MX 10 mx1.example.test.
_mta-sts.nohost	IN TXT \"v=STSv1; id=nohost1\"
mta-sts.nohost	IN A $MX2_4
invalid	IN MX 10 mx1.example.test.
_mta-sts.invalid	IN TXT \"v=STSv1; id=inv1\"
mta-sts.invalid	IN A $MX1_4
testing	IN MX 10 mx1.example.test.
_mta-sts.testing	IN TXT \"v=STSv1; id=test1\"
mta-sts.testing	IN A $MX1_4"
wait_for 10 "nsd serves sts.test" dns_query _mta-sts.testing.sts.test TXT >/dev/null ||
	it_abort "nsd does not serve sts.test"

# An SMTP session from the client namespace that stops after RCPT: the
# policy is looked up (and reported) at RCPT, and the mx would refuse these
# domains anyway (so no mail is queued that could bounce).
smtp_rcpt() { # DOMAIN
	nsx "$NS_CLIENT" timeout 60 swaks --server "$MX1_4" --port 25 --from "$FROM" \
		--to "user@$1" --helo legacy.client.test --quit-after RCPT --timeout 50 \
		>>"$T/swaks.log" 2>&1
	say "swaks to user@$1: exit $?, RCPT answered: $(grep -A1 "RCPT TO:" "$T/swaks.log" | tail -n 1 | cut -c1-200)"
}
mitm_start swap-cert # the MX's certificate will not verify: the testing policy fails
proxy_start "$UPGRADE"
for d in two nohost invalid testing; do smtp_rcpt "$d.sts.test"; done
wait_for 10 "session records" _proxy_has_session >/dev/null
say "events: $(proxy_event_summary)"
check "mta_sts_record_invalid (notice) for two STSv1 TXT records" \
	proxy_ev mta_sts_record_invalid notice domain='^two\.sts\.test$'
check "mta_sts_fetch_failed (warning) for an unreachable policy host" \
	proxy_ev mta_sts_fetch_failed warning domain='^nohost\.sts\.test$' policy_id='^nohost1$'
check "mta_sts_policy_invalid (warning) for 'mode: enforcing'" \
	proxy_ev mta_sts_policy_invalid warning domain='^invalid\.sts\.test$' policy_id='^inv1$'
check "policy_failure_testing (warning) for the testing policy and the attacker's certificate" \
	proxy_ev policy_failure_testing warning domain='^testing\.sts\.test$'
check_not "no policy_failure (alert) under a testing policy" proxy_ev policy_failure alert
check "stsproxy is still running" proxy_alive
kill -TERM "$HTTPS_PID" 2>/dev/null
wait "$HTTPS_PID" 2>/dev/null

# ---- a bare LF in a message body -----------------------------------------------------
step "body_bare_lf: a message body with a bare LF, relayed unchanged"
mitm_start pass
proxy_stop_checked
proxy_log_rotate
proxy_start "$UPGRADE"
nsx "$NS_CLIENT" "$PY" - "$MX1_4" "$FROM" "$RCPT" >"$T/barelf.log" 2>&1 <<'EOF'
import socket, sys
host, frm, rcpt = sys.argv[1:4]
s = socket.create_connection((host, 25), timeout=20)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        ln = f.readline()
        if not ln:
            raise SystemExit("connection closed")
        lines.append(ln)
        if ln[3:4] != b"-":
            print("S:", ln.decode(errors="replace").rstrip())
            return int(ln[:3])
def cmd(c, want):
    s.sendall(c + b"\r\n")
    print("C:", c.decode())
    code = reply()
    if code // 100 != want:
        raise SystemExit("unexpected reply to %r: %d" % (c, code))
reply()
cmd(b"EHLO legacy.client.test", 2)
cmd(b"MAIL FROM:<" + frm.encode() + b">", 2)
cmd(b"RCPT TO:<" + rcpt.encode() + b">", 2)
cmd(b"DATA", 3)
s.sendall(b"Subject: ds-bare-lf\r\nFrom: <" + frm.encode() + b">\r\n\r\nfirst line\nBARE-LF-LINE\r\nlast line\r\n.\r\n")
if reply() // 100 != 2:
    raise SystemExit("message refused")
cmd(b"QUIT", 2)
print("OK")
EOF
check "the message with a bare LF was accepted through stsproxy: $(tail -n 1 "$T/barelf.log")" \
	grep -qx OK "$T/barelf.log"
check "it is at the mx" wait_for 10 "ds-bare-lf at the mx" _mx_file ds-bare-lf
wait_for 10 "session record" _proxy_has_session >/dev/null
say "events: $(proxy_event_summary)"
check "body_bare_lf (info)" proxy_ev body_bare_lf info
check "stsproxy is still running" proxy_alive

step "tear-down"
proxy_stop_checked
mitm_stop
check_not "nothing bounced in the whole run" sender_log_grep 'status=bounced'
events_seen_record "$(basename "$0" .sh)"
finish
