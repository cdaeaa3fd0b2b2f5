#!/usr/bin/env bash
# The receiver dies in the middle of DATA. The mail was never accepted, so
# the sender must keep it queued (deferred with a 4xx, never bounced) and
# deliver it exactly once when a receiver is back.
#
# The dying receiver is a small python SMTP server on mx1's address that
# offers STARTTLS (with the valid mx certificate, so stsproxy's verified
# upgrade succeeds), accepts MAIL and RCPT, answers DATA with 354, reads
# 16 KiB of the (48 KiB) body and then exits without a reply, so the kernel
# resets the connection. Afterwards the real Postfix mx takes its place.
# (Large bodies and backpressure are t_relay_large's subject.)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
it_init 110
proxy_require

step "building topology and peers (dying receiver instead of Postfix on mx1)"
topo_up
ca_make
dns_start
sender_start none ipv4

cat >"$T/receiver.py" <<'PY'
import asyncio, os, ssl, sys
cert, key, log, addr = sys.argv[1:5]
DIE_AFTER = 16 * 1024

def note(msg):
    with open(log, "a") as f:
        f.write(msg + "\n")

async def handle(r, w):
    note("connect from %s" % (w.get_extra_info("peername"),))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tls = False
    w.write(b"220 mx1.example.test ESMTP dying receiver\r\n")
    while True:
        line = await asyncio.wait_for(r.readline(), 60)
        if not line:
            note("client closed")
            return
        cmd = line.strip().upper()
        note("C: %r" % line[:60])
        if cmd.startswith(b"EHLO"):
            caps = [b"mx1.example.test", b"PIPELINING", b"SIZE 10240000", b"8BITMIME",
                    b"ENHANCEDSTATUSCODES"] + ([] if tls else [b"STARTTLS"])
            w.write(b"".join(b"250-" + c + b"\r\n" for c in caps[:-1]) + b"250 " + caps[-1] + b"\r\n")
        elif cmd.startswith(b"HELO"):
            w.write(b"250 mx1.example.test\r\n")
        elif cmd == b"STARTTLS" and not tls:
            w.write(b"220 2.0.0 Ready to start TLS\r\n")
            await w.drain()
            await w.start_tls(ctx)
            tls = True
            note("TLS established")
        elif cmd.startswith(b"MAIL") or cmd.startswith(b"RCPT") or cmd in (b"RSET", b"NOOP"):
            w.write(b"250 2.0.0 Ok\r\n")
        elif cmd == b"DATA":
            w.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            await w.drain()
            n = 0
            while n < DIE_AFTER:
                chunk = await asyncio.wait_for(r.read(16384), 60)
                if not chunk:
                    note("client closed during DATA")
                    return
                n += len(chunk)
                if b"\r\n.\r\n" in chunk:
                    note("whole message before the limit: refusing it with 451")
                    w.write(b"451 4.3.0 test receiver refuses\r\n")
                    break
            else:
                note("dying mid-DATA after %d body bytes (tls=%s)" % (n, tls))
                os._exit(3)
        elif cmd == b"QUIT":
            w.write(b"221 2.0.0 Bye\r\n")
            await w.drain()
            w.close()
            return
        else:
            w.write(b"502 5.5.2 Error: command not recognized\r\n")
        await w.drain()

async def main():
    srv = await asyncio.start_server(handle, addr, 25, reuse_address=True)
    note("listening")
    async with srv:
        await asyncio.sleep(300)

asyncio.run(main())
PY
ip netns exec "$NS_MX" "$PY" "$T/receiver.py" "$T/pki/mx.pem" "$T/pki/mx.key" "$T/receiver.log" "$MX1_4" \
	>>"$T/receiver.out" 2>&1 &
RECEIVER_PID=$!
require "dying receiver listens on $MX1_4:25" wait_for 10 "receiver" _listening "$NS_MX" "$MX1_4" 25

mitm_start pass
router_redirect on
proxy_start "$(proxy_config upgrade redirect verify)"

step "send a 48 KiB message; the receiver dies mid-DATA"
body=$T/body.txt
for i in $(seq 1 640); do printf 'line %05d of a long body SECRET-BODY-relay-killed xxxxxxxxxxxxxxxxxx\n' "$i"; done >"$body"
sender_send "$RCPT" relay-killed "$body"
check "the receiver got the upgraded session and died mid-DATA" \
	wait_for 30 "receiver death" grep -q 'dying mid-DATA after .* (tls=True)' "$T/receiver.log"
check "the sender defers the mail" sender_wait_log 'status=deferred' 30
check "the deferral is a 4xx reply, not a lost connection: $(sender_status_lines | tail -n 1)" \
	sender_log_grep 'status=deferred .*said: 4[0-9][0-9]'
check "the mail is still queued at the sender" _sender_queue_is 1
check_not "nothing bounced" sender_log_grep 'status=bounced'
check "nothing arrived anywhere yet" [ "$(mx_mail_count)" -eq 0 ]
check "stsproxy is still running after the upstream died" proxy_alive

step "the real receiver comes back"
_not_running "$RECEIVER_PID" || kill -TERM "$RECEIVER_PID" 2>/dev/null
wait_for 5 "dying receiver gone" _not_running "$RECEIVER_PID"
mx_start mx
sender_flush
check "the mail arrives at the mx" mx_wait_mail 1 30
check "the sender logged it as sent" sender_wait_log 'status=sent' 10
sleep 3
check "delivered exactly once" [ "$(mx_mail_count)" -eq 1 ]
check "mx received it over TLS (with ESMTPS)" mx_received_tls relay-killed
check "the whole body arrived" mx_body_has relay-killed "line 00640 of a long body"
check "sender queue is empty" _sender_queue_is 0
check_not "nothing bounced" sender_log_grep 'status=bounced'
assert_no_leak relay-killed
check "stsproxy is still running" proxy_alive

finish
