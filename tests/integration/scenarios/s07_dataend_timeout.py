"""The server never answers the final dot: after timeouts.data_end the
client gets a 4xx (its message stays queued), never silence forever."""

import time

from dialogue import SILENT

TITLE = "no reply to end-of-DATA -> timeouts.data_end (and to RCPT -> timeouts.command)"


def run(t):
    srv = t.server(replies={"DOT": SILENT})
    px = t.proxy(srv, timeouts=dict(data_end=1.5))
    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting")
    t.reply(c.ehlo(), 250, "EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "MAIL FROM")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "RCPT")
    t.reply(c.cmd("DATA"), 354, "DATA")
    t0 = time.monotonic()
    c.send(b"Subject: slow\r\n\r\nno answer will come\r\n.\r\n")
    r = c.read_reply(timeout=6)
    dt = time.monotonic() - t0
    t.reply(r, "4", "reply to the final dot")
    t.check(1.2 <= dt <= 5.0, "it came after timeouts.data_end (1.5 s): %.2f s" % dt)
    t.check(r is not None and "data_end" in r.text, "the 4xx names timeouts.data_end", r)
    t.check(c.wait_closed(), "client connection closed")
    rec = t.session_ok(px, c)
    t.eq(rec.get("result"), "timeout", "session record result")
    t.eq(rec.get("messages"), 0, "session record messages")

    # a server that never answers RCPT: timeouts.command
    srv2 = t.server(replies={"RCPT": SILENT})
    px2 = t.proxy(srv2, name="proxy-cmd", timeouts=dict(command=1.0))
    c = t.client(px2)
    t.reply(c.greeting(), 220, "command: greeting")
    t.reply(c.ehlo(), 250, "command: EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "command: MAIL FROM")
    t0 = time.monotonic()
    r = c.cmd("RCPT TO:<bob@example.test>", timeout=5)
    dt = time.monotonic() - t0
    t.reply(r, "4", "command: RCPT the server never answers")
    t.check(0.7 <= dt <= 5.0, "command: 4xx after timeouts.command = 1 s (%.2f s)" % dt)
    t.check(r is not None and "timeout" in r.text, "command: the 4xx says it is a timeout", r)
    t.check(c.wait_closed(), "command: connection closed")
    rec = t.session_ok(px2, c)
    t.eq(rec.get("result"), "timeout", "command: session record result")
