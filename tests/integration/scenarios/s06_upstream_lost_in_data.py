"""The server goes away during the message. The client must never be told
250 for a message the server did not accept: it finishes sending its body
and gets a 4xx. Also: the server closes right after the final dot without
replying."""

import threading
import time

from dialogue import CLOSE

TITLE = "upstream closes mid-DATA / after the dot"
BUDGET = 12.0  # a regression here waits for timeouts.data_block (6 s) per case


def big_body(n):
    line = b"x" * 998 + b"\r\n"
    return b"Subject: big\r\n\r\n" + line * (n // len(line)) + b".\r\n"


def lost_mid_body(t, size, desc, delay=0.0):
    """The server hangs up after 20 kB of a `size`-byte body (after not
    reading for `delay` seconds, so that stsproxy's output to it backs up
    past limits.buffer_high and it stops reading the client). The client
    must be able to send its whole body and then get a 4xx promptly (not
    only when timeouts.data_block, 6 s here, fires)."""
    srv = t.server(body_close_after=20000, body_close_delay=delay)
    px = t.proxy(srv, name="proxy-" + desc, timeouts=dict(data_block=6.0))
    c = t.client(px)
    t.reply(c.greeting(), 220, desc + ": greeting")
    t.reply(c.ehlo(), 250, desc + ": EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, desc + ": MAIL FROM")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, desc + ": RCPT")
    t.reply(c.cmd("DATA"), 354, desc + ": DATA")
    body = big_body(size)
    err = []

    def sender():
        try:
            c.send(body)
        except OSError as e:
            err.append(e)

    th = threading.Thread(target=sender, daemon=True)
    th.start()
    th.join(4.0 + delay)
    t.check(not th.is_alive() and not err, desc + ": client could send its whole body (stsproxy drains it)", err)
    th.join(6.0)
    t0 = time.monotonic()
    r = c.read_reply(timeout=8)
    dt = time.monotonic() - t0
    t.reply(r, "4", desc + ": reply after the dot when the server vanished mid-body")
    t.check(dt < 4.5 and r is not None and "data_block" not in r.text,
            desc + ": the 4xx comes right after the dot, not from timeouts.data_block (took %.1f s)" % dt,
            "reply %r" % (r,))
    t.check(not any(x.code == 250 for x in c.replies[-1:]), desc + ": no 250 for the lost message", c.replies)
    t.check(c.wait_closed(), desc + ": client connection closed afterwards")
    srv.wait_done(0)
    t.check(srv.conn(0).closed_by_us and not srv.conn(0).bodies[0]["complete"],
            desc + ": server closed with an incomplete body", srv.conn(0).bodies[0]["size"])
    rec = t.session_ok(px, c)
    t.eq(rec.get("messages"), 0, desc + ": session record messages")
    t.check(rec.get("result") not in (None, "ok", "timeout"),
            desc + ": session record result names the lost upstream (%s)" % rec.get("result"), rec)


def run(t):
    # 1. below limits.buffer_high: no backpressure involved
    lost_mid_body(t, 150 * 1024, "150kB")
    # 2. far above limits.buffer_high (256 KiB)
    lost_mid_body(t, 2 << 20, "2MB")
    # 3. the server stops reading for 1 s first: stsproxy pauses the client
    #    side for backpressure, then the server vanishes
    lost_mid_body(t, 8 << 20, "8MB-backpressure", delay=1.0)

    # 2. server closes after the final dot, without a reply
    srv2 = t.server(replies={"DOT": CLOSE})
    px2 = t.proxy(srv2, name="proxy-dot-close")
    c = t.client(px2)
    t.reply(c.greeting(), 220, "dot-close: greeting")
    t.reply(c.ehlo(), 250, "dot-close: EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "dot-close: MAIL FROM")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "dot-close: RCPT")
    t.reply(c.cmd("DATA"), 354, "dot-close: DATA")
    c.send(b"Subject: dot\r\n\r\nthe server will hang up\r\n.\r\n")
    r = c.read_reply()
    t.reply(r, "4", "dot-close: reply to the final dot")
    t.check(c.wait_closed(), "dot-close: client connection closed")
    srv2.wait_done(0)
    t.check(srv2.conn(0).bodies and srv2.conn(0).bodies[0]["complete"], "dot-close: the server did get the whole body")
    rec = t.session_ok(px2, c)
    t.eq(rec.get("messages"), 0, "dot-close: session record messages")
    t.check(rec.get("result") not in (None, "ok"), "dot-close: session record result is a failure (%s)" %
            rec.get("result"), rec)
