#!/usr/bin/env bash
# Monitor mode is byte-transparent (issue 4, "Monitor mode, fully"): a
# scripted SMTP client in the client namespace talks through stsproxy
# (mode "monitor", REDIRECT listener) and the on-path host to a scripted SMTP
# server on mx1:25. Both ends record every byte they send and receive on the
# wire, TLS records included (their TLS runs over memory BIOs), and the test
# compares them byte for byte:
#   pass mode   client sent == server received, server sent == client received
#   strip mode  client sent == server received, and the client received what
#               the server sent minus exactly the "250-STARTTLS" line the
#               attacker deleted (stsproxy changed nothing of it)
# Sessions: a client-negotiated STARTTLS and a whole mail inside TLS (opaque
# to stsproxy, relayed unchanged); a plaintext mail with PIPELINING and a
# hostile body (bare LF, lone CR, NUL, 8-bit, dot-stuffing, a 3000-byte
# line), then a reply that is not SMTP (server_protocol_error: observation
# stops, relaying does not); STARTTLS with a command pipelined behind it
# (plaintext_injection, the bytes still relayed as sent); a server that
# half-closes after its 221 and still reads a last line the client sends
# after the server's FIN (as a TLS close_notify often comes). The session
# records' byte counters must equal the bytes the ends saw.
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2317
# (SC2317: functions called through check)
. "$(dirname "$0")/lib.sh"
it_init 240
proxy_require

step "building topology (no Postfix: scripted ends)"
topo_up
ca_make
router_redirect on
mkdir -p "$T/wire"

cat >"$T/peer.py" <<'EOF'
"""Scripted SMTP ends that record their raw wire bytes.

server ADDR CERT KEY DIR: accept connections on ADDR:25 one at a time,
    connection N records DIR/N.s-recv and DIR/N.s-sent.
client ADDR DIR N SCRIPT: one session, records DIR/N.c-sent and DIR/N.c-recv.
"""
import os, socket, ssl, sys


class Wire:
    def __init__(self, sock, sent, recv):
        self.sock, self.sent, self.recv_log = sock, open(sent, "wb"), open(recv, "wb")

    def send(self, data):
        self.sock.sendall(data)
        self.sent.write(data)
        self.sent.flush()

    def recv(self):
        data = self.sock.recv(65536)
        self.recv_log.write(data)
        self.recv_log.flush()
        return data


class Tls:
    """TLS over memory BIOs on top of a Wire, so the wire sees the records."""

    def __init__(self, wire, ctx, server_side, leftover=b""):
        self.wire = wire
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=server_side,
                                server_hostname=None if server_side else "mx1.example.test")
        if leftover:
            self.inc.write(leftover)
        while True:
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                data = wire.recv()
                if not data:
                    raise EOFError("closed during the handshake")
                self.inc.write(data)

    def flush(self):
        d = self.out.read()
        if d:
            self.wire.send(d)

    def send(self, data):
        self.obj.write(data)
        self.flush()

    def recv(self):
        while True:
            try:
                return self.obj.read(65536)
            except ssl.SSLWantReadError:
                self.flush()
                data = self.wire.recv()
                if not data:
                    return b""
                self.inc.write(data)
            except ssl.SSLZeroReturnError:
                return b""


class Lines:
    def __init__(self, io):
        self.io, self.buf = io, b""

    def line(self):
        while b"\n" not in self.buf:
            d = self.io.recv()
            if not d:
                ln, self.buf = self.buf, b""
                return ln
            self.buf += d
        i = self.buf.index(b"\n") + 1
        ln, self.buf = self.buf[:i], self.buf[i:]
        return ln

    def until(self, marker):
        while marker not in self.buf:
            d = self.io.recv()
            if not d:
                raise EOFError("closed before %r" % marker)
            self.buf += d
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out


EHLO = (b"250-mx1.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        b"250-STARTTLS\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
EHLO_TLS = b"250-mx1.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


def serve_one(conn, n, cert, key, d):
    w = Wire(conn, os.path.join(d, "%d.s-sent" % n), os.path.join(d, "%d.s-recv" % n))
    io, lines, helo = w, None, b""
    lines = Lines(io)
    w.send(b"220 mx1.example.test ESMTP transparency test\r\n")
    while True:
        ln = lines.line()
        if not ln:
            break
        verb = ln.split(b" ")[0].strip().upper()
        if verb in (b"EHLO", b"HELO"):
            helo = ln
            io.send(EHLO_TLS if isinstance(io, Tls) else EHLO)
        elif verb == b"STARTTLS" and not isinstance(io, Tls):
            if b"notls" in helo:
                io.send(b"454 4.7.0 TLS not available today\r\n")
                continue
            io.send(b"220 2.0.0 Ready to start TLS\r\n")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            left, lines.buf = lines.buf, b""
            io = Tls(w, ctx, True, left)
            lines.io = io
        elif verb == b"DATA":
            io.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            body = lines.until(b"\r\n.\r\n")
            io.send(b"250 2.0.0 Ok: queued, %d bytes\r\n" % len(body))
        elif verb == b"XBAD":
            io.send(b"2x0 this is not an SMTP reply\r\n")
        elif verb == b"QUIT":
            io.send(b"221 2.0.0 Bye\r\n")
            break
        else:
            io.send(b"250 2.0.0 Ok\r\n")
    try:
        conn.shutdown(socket.SHUT_WR)
        while w.recv():
            pass
    except OSError:
        pass
    conn.close()
    open(os.path.join(d, "%d.s-done" % n), "w").close()


def server(addr, cert, key, d):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 25))
    s.listen(8)
    print("READY", flush=True)
    n = 0
    while True:
        conn, _ = s.accept()
        conn.settimeout(30)
        n += 1
        try:
            serve_one(conn, n, cert, key, d)
        except Exception as e:  # noqa: BLE001 - report, go on with the next one
            print("connection %d: %r" % (n, e), flush=True)
            conn.close()


def client(addr, d, n, script):
    conn = socket.create_connection((addr, 25), timeout=30)
    w = Wire(conn, os.path.join(d, "%s.c-sent" % n), os.path.join(d, "%s.c-recv" % n))
    lines = Lines(w)
    io = w

    def reply():
        out = []
        while True:
            ln = lines.line()
            if not ln:
                raise EOFError("connection closed")
            out.append(ln)
            if ln[3:4] != b"-":
                return out

    def cmd(c, want):
        io.send(c)
        r = reply()
        if not r[-1].startswith(want):
            raise SystemExit("%r: got %r" % (c, r))
        return r

    reply()  # greeting
    if script == "tls":
        cmd(b"EHLO tls.client.test\r\n", b"250")
        cmd(b"STARTTLS\r\n", b"220")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        left, lines.buf = lines.buf, b""
        io = Tls(w, ctx, False, left)
        lines.io = io
        cmd(b"EHLO tls.client.test\r\n", b"250")
        cmd(b"MAIL FROM:<alice@client.test>\r\n", b"250")
        cmd(b"RCPT TO:<user@example.test>\r\n", b"250")
        cmd(b"DATA\r\n", b"354")
        cmd(b"Subject: inside TLS\r\n\r\nSECRET-INSIDE-TLS\r\n.\r\n", b"250")
        cmd(b"QUIT\r\n", b"221")
    elif script == "plain":
        cmd(b"EHLO plain.client.test\r\n", b"250")
        # PIPELINING: MAIL, RCPT, DATA in one write, then the replies
        io.send(b"MAIL FROM:<alice@client.test> BODY=8BITMIME\r\n"
                b"RCPT TO:<user@example.test>\r\nDATA\r\n")
        for want in (b"250", b"250", b"354"):
            r = reply()
            if not r[-1].startswith(want):
                raise SystemExit("pipelined: got %r" % r)
        body = (b"Subject: hostile body\r\n\r\n"
                b"bare LF here\nand a lone CR here\rthen CRLF\r\n"
                b"..dot-stuffed line\r\n.x not the end\r\n"
                b"NUL \x00 and 8-bit \xe9\xff\x80\r\n"
                + b"L" * 3000 + b"\r\n"
                b"\r\n.\r\n")
        cmd(body, b"250")
        io.send(b"XBAD\r\n")  # the server answers with a line that is not SMTP
        reply()
        cmd(b"NOOP\r\n", b"250")
        cmd(b"RSET\r\n", b"250")
        cmd(b"QUIT\r\n", b"221")
    elif script == "inject":
        cmd(b"EHLO notls.client.test\r\n", b"250")
        io.send(b"STARTTLS\r\nNOOP\r\n")  # a command pipelined behind STARTTLS
        r1, r2 = reply(), reply()
        if not (r1[-1].startswith(b"454") and r2[-1].startswith(b"250")):
            raise SystemExit("inject: got %r %r" % (r1, r2))
        cmd(b"QUIT\r\n", b"221")
    elif script == "halfclose":
        # The server half-closes after its 221 (shutdown SHUT_WR) and goes on
        # reading until our EOF; we send one more line after its FIN, as a
        # client's TLS close_notify arrives after a server's FIN.
        cmd(b"EHLO halfclose.client.test\r\n", b"250")
        cmd(b"QUIT\r\n", b"221")
        while w.recv():
            pass
        w.send(b"LATE LINE AFTER THE SERVER'S FIN\r\n")
    try:
        conn.shutdown(socket.SHUT_WR)
        while w.recv():
            pass
    except OSError:
        pass
    conn.close()
    print("OK")


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(*sys.argv[2:6])
    else:
        client(*sys.argv[2:6])
EOF

PEER_PID=
server_start() {
	ip netns exec "$NS_MX" "$PY" "$T/peer.py" server "$MX1_4" "$T/pki/mx.pem" "$T/pki/mx.key" "$T/wire" \
		>>"$T/server.log" 2>&1 &
	PEER_PID=$!
	wait_for 10 "scripted server on $MX1_4:25" _listening "$NS_MX" "$MX1_4" 25 ||
		it_abort "the scripted server did not start: $(tail -n 5 "$T/server.log")"
}
server_stop() {
	[ -n "$PEER_PID" ] || return 0
	kill -TERM "$PEER_PID" 2>/dev/null
	wait "$PEER_PID" 2>/dev/null
	PEER_PID=
}

# session N SCRIPT: run one scripted client session; the server numbers its
# connections in the same order (they are one at a time).
session() {
	local n=$1 script=$2 out
	out=$(nsx "$NS_CLIENT" timeout 60 "$PY" "$T/peer.py" client "$MX1_4" "$T/wire" "$n" "$script" 2>&1)
	say "client session $n ($script): ${out:0:300}"
	check "[$n $script] the client session completed" [ "$out" = OK ]
	wait_for 10 "server side of session $n done" test -e "$T/wire/$n.s-done" ||
		fail "[$n $script] the server side of session $n finished"
}

same() { cmp -s "$1" "$2"; }
size() { stat -c %s "$1"; }
# same_minus_line A B LINE: A equals B with the first LINE (exact bytes) removed
same_minus_line() {
	"$PY" - "$1" "$2" "$3" <<'EOF'
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
line = sys.argv[3].encode().decode("unicode_escape").encode("latin-1")
sys.exit(0 if b.count(line) >= 1 and a == b.replace(line, b"", 1) else 1)
EOF
}

# session_bytes N: the session record of stsproxy session N matches the wire
session_bytes_match() {
	local n=$1 w=$2
	proxy_sessions | "$PY" -c '
import json, sys
n, cs, sr = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for l in sys.stdin:
    r = json.loads(l)
    if r.get("session") == n:
        ok = r["bytes_from_client"] == cs and r["bytes_to_server"] == sr and r["mode"] == "monitor"
        print("session %d: bytes_from_client=%s bytes_to_server=%s (wire: %d, %d)" % (
            n, r["bytes_from_client"], r["bytes_to_server"], cs, sr), file=sys.stderr)
        sys.exit(0 if ok else 1)
sys.exit(1)' "$n" "$(size "$T/wire/$w.c-sent")" "$(size "$T/wire/$w.s-recv")"
}

# _session_has_events N: stsproxy logged an event for its session N
_session_has_events() { proxy_events_tsv | awk -F '\t' -v n="$1" '$3 == n { f = 1 } END { exit !f }'; }

server_start
sn=0 # stsproxy session ids restart at 1 with each stsproxy
for amode in pass strip; do
	step "stsproxy monitor mode, attacker in mode $amode"
	proxy_stop_checked
	proxy_log_rotate
	mitm_start "$amode"
	proxy_start "$(proxy_config monitor redirect "" may)"
	i=0
	for script in tls plain inject halfclose; do
		i=$((i + 1))
		sn=$((sn + 1))
		session "$sn" "$script"
		tag="[$amode/$script]"
		check "$tag client sent == server received, byte for byte ($(size "$T/wire/$sn.c-sent") bytes)" \
			same "$T/wire/$sn.c-sent" "$T/wire/$sn.s-recv"
		if [ "$amode" = pass ]; then
			check "$tag server sent == client received, byte for byte ($(size "$T/wire/$sn.s-sent") bytes)" \
				same "$T/wire/$sn.s-sent" "$T/wire/$sn.c-recv"
		else
			check "$tag client received == server sent without the one line the attacker deleted" \
				same_minus_line "$T/wire/$sn.c-recv" "$T/wire/$sn.s-sent" '250-STARTTLS\r\n'
		fi
		wait_for 10 "$tag session record" _proxy_has_session >/dev/null
		check "$tag the session record's byte counters equal the wire" session_bytes_match "$i" "$sn"
	done
	# What the TLS session carried never appeared in clear on any hop.
	check "[$amode/tls] the mail inside the client's TLS was opaque to the attacker" \
		bash -c "! grep -q SECRET-INSIDE-TLS '$T/mitm.log'"
	check "[$amode/tls] and never reached stsproxy's logs in clear" \
		bash -c "! grep -q SECRET-INSIDE-TLS '$T/proxy.log' '$T/proxy.out'"
	check "[$amode/tls] the session record says TLS (negotiated by the client)" \
		proxy_session_logged "$MX1_4" '"session": *1,' '"tls": *true' '"mode": *"monitor"'
	say "events: $(proxy_event_summary)"
	check "[$amode/plain] server_protocol_error (notice) for the reply that is not SMTP" \
		proxy_ev server_protocol_error notice session='^2$'
	check "[$amode/inject] plaintext_injection (warning) for the NOOP behind STARTTLS, still relayed" \
		proxy_ev plaintext_injection warning session='^3$' direction='^client$' bytes='^6$' evidence='^NOOP%0D%0A$'
	if [ "$amode" = pass ]; then
		# session 1 did TLS with this address: memory raises the refusal one level
		check "[pass/inject] starttls_rejected_after_advertised for the 454, alert by memory of session 1's TLS" \
			proxy_ev starttls_rejected_after_advertised alert session='^3$' code='^454$' escalated_by_memory='^true$'
		check_not "[pass/tls] no event for a clean client-negotiated STARTTLS" _session_has_events 1
	else
		check "[strip/tls] starttls_not_advertised (info) for the stripped reply" \
			proxy_ev starttls_not_advertised info session='^1$'
		check "[strip/inject] starttls_refused (info): STARTTLS refused where it was not advertised" \
			proxy_ev starttls_refused info session='^3$' code='^454$'
	fi
	check "[$amode/halfclose] the session that ended with a half-close is not an error without a reason" \
		proxy_session_logged "$MX1_4" '"session": *4,' '"result": *"(ok|client_quit|server_closed)"'
	check "stsproxy is still running" proxy_alive
done

step "tear-down"
proxy_stop_checked
mitm_stop
server_stop
events_seen_record "$(basename "$0" .sh)"
finish
