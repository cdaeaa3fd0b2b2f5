"""Limits and timeouts: limits.max_line (client command and server reply
line), limits.max_reply_lines (a 17-line and a 300-line EHLO reply),
limits.max_recipients, limits.max_sessions, timeouts.idle and
timeouts.tls_handshake (a server that says 220 to STARTTLS, then nothing)."""

import time

from dialogue import STALL

TITLE = "limits and timeouts"
BUDGET = 15.0


def start(t, c, ehlo=True):
    t.reply(c.greeting(), 220, "greeting")
    if ehlo:
        t.reply(c.ehlo(), 250, "EHLO")


def run(t):
    srv = t.server(per_conn=[{}, {}, {"ehlo": ["mx.test"] + ["X-EXT-%d" % i for i in range(16)]},
                             {"ehlo": ["mx.test"] + ["EXT%03d some parameters here" % i for i in range(299)]},
                             {"replies": {"RCPT": "250 " + "n" * 600}}])
    px = t.proxy(srv, name="proxy-lines")

    # max_line: a line of exactly 512 bytes is fine, 513+ is refused
    c = t.client(px)
    start(t, c)
    t.reply(c.cmd("VRFY " + "v" * 507), "2", "command of exactly limits.max_line (512) bytes accepted")
    r = c.cmd("MAIL FROM:<" + "a" * 600 + "@client.test>")
    t.reply(r, 421, "command over limits.max_line")
    t.check(r is not None and "max_line" in r.text, "the 421 names limits.max_line", r)
    t.check(c.wait_closed(), "connection closed after the 421")
    t.check(bool(px.log_lines(r"limits\.max_line")), "a log line names limits.max_line", px.log_lines(r"max_line"))
    rec = t.session_ok(px, c)
    t.check("max_line" in (rec.get("reason") or ""), "session record reason names limits.max_line", rec)
    t.check(not srv.conn(0).saw("MAIL"), "the overlong MAIL FROM never reached the server", srv.conn(0).commands)

    # a long line without any newline at all
    c = t.client(px)
    start(t, c)
    c.send(b"X" * 100000)
    r = c.read_reply()
    t.reply(r, 421, "100 kB without a newline")
    t.check(c.wait_closed(), "connection closed")

    # max_reply_lines: 17 lines, then 300 lines
    for i, n in ((2, 17), (3, 300)):
        c = t.client(px)
        t.reply(c.greeting(), 220, "%d-line EHLO: greeting" % n)
        r = c.ehlo()
        t.reply(r, 421, "%d-line EHLO reply (limits.max_reply_lines = 16)" % n)
        t.check(c.wait_closed(), "%d-line EHLO: connection closed" % n)
        t.session_ok(px, c)

    # a server reply line over limits.max_line
    c = t.client(px)
    start(t, c)
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "long reply: MAIL")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 421, "server reply line of 604 bytes (> limits.max_line)")
    t.check(c.wait_closed(), "long reply: connection closed")
    t.session_ok(px, c)

    # max_recipients
    srv2 = t.server()
    px2 = t.proxy(srv2, name="proxy-rcpts", limits=dict(max_recipients=3))
    c = t.client(px2)
    start(t, c)
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "MAIL FROM")
    for i in range(3):
        t.reply(c.cmd("RCPT TO:<u%d@example.test>" % i), 250, "RCPT %d of limits.max_recipients = 3" % (i + 1))
    r = c.cmd("RCPT TO:<u3@example.test>")
    t.reply(r, "4.5.3", "4th RCPT")
    t.reply(r, 452, "4th RCPT")
    t.reply(c.cmd("DATA"), 354, "DATA with the three accepted recipients")
    c.send(b"Subject: three\r\n\r\nthree\r\n.\r\n")
    t.reply(c.read_reply(), 250, "end of DATA")
    t.reply(c.cmd("QUIT"), 221, "QUIT")
    srv2.wait_done(0)
    t.eq(len(srv2.conn(0).lines("RCPT")), 3, "server saw exactly three RCPTs")

    # max_sessions = 2: the third concurrent client is turned away
    srv3 = t.server()
    px3 = t.proxy(srv3, name="proxy-sessions", limits=dict(max_sessions=2))
    c1, c2 = t.client(px3), t.client(px3)
    t.reply(c1.greeting(), 220, "session 1 of 2: greeting")
    t.reply(c2.greeting(), 220, "session 2 of 2: greeting")
    c3 = t.client(px3)
    r = c3.greeting()
    t.reply(r, "4.3.2", "3rd concurrent session")
    t.reply(r, 421, "3rd concurrent session")
    t.check(c3.wait_closed(), "3rd session closed")
    t.check(bool(px3.log_lines(r"max_sessions")), "log names limits.max_sessions", px3.log_lines()[-3:])
    t.reply(c1.cmd("QUIT"), 221, "session 1 QUIT")
    t.check(px3.session_for(c1) is not None, "session 1 record emitted")
    c4 = t.client(px3)
    t.reply(c4.greeting(), 220, "a new session is accepted once one ended")
    for x in (c2, c4):
        x.cmd("QUIT")

    # idle timeout
    srv4 = t.server(starttls=STALL)
    px4 = t.proxy(srv4, name="proxy-timeouts", timeouts=dict(idle=1.0, tls_handshake=1.0))
    c = t.client(px4)
    start(t, c)
    t0 = time.monotonic()
    r = c.read_reply(timeout=5)
    dt = time.monotonic() - t0
    t.reply(r, 421, "idle client after timeouts.idle = 1 s")
    t.check(0.7 <= dt <= 5.0, "the 421 came after about 1 s (%.2f s)" % dt)
    t.check(r is not None and "idle" in r.text, "the 421 names the idle timeout", r)
    t.check(c.wait_closed(), "idle: connection closed")

    # tls_handshake: 220 to STARTTLS, then silence -> a TLS failure
    c = t.client(px4)
    start(t, c)
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "handshake stall: MAIL FROM")
    t0 = time.monotonic()
    r = c.cmd("RCPT TO:<carol@secure.test>", timeout=5)
    dt = time.monotonic() - t0
    t.reply(r, "4", "handshake stall: RCPT secure.test (verify)")
    t.reply(r, "4.7.5", "handshake stall: RCPT secure.test (verify)")
    t.check(0.7 <= dt <= 5.0, "handshake stall: deferred after timeouts.tls_handshake = 1 s (%.2f s)" % dt)
    rs = px4.events("tls_handshake_failed")
    t.check(rs and "tls_handshake" in rs[-1].get("evidence", ""), "event tls_handshake_failed names the timeout", rs)
    t.check(not srv4.conn(1).saw("MAIL") and not srv4.conn(1).saw("RCPT"),
            "handshake stall: the server never saw the envelope", srv4.conn(1).commands)
    # a "may" recipient after the failed handshake: plaintext on a new connection
    r = c.cmd("RCPT TO:<bob@example.test>")
    t.reply(r, 250, "handshake stall: RCPT example.test (may) after reconnecting")
    t.reply(c.cmd("DATA"), 354, "handshake stall: DATA")
    c.send(b"Subject: fallback\r\n\r\nplaintext fallback\r\n.\r\n")
    t.reply(c.read_reply(), 250, "handshake stall: end of DATA")
    t.reply(c.cmd("QUIT"), 221, "handshake stall: QUIT")
    sc = srv4.conn(2)
    t.check(sc is not None and not sc.saw("STARTTLS") and sc.saw("MAIL FROM", tls=False)
            and not any("secure.test" in l for _, l in sc.commands),
            "fallback connection: plaintext, no STARTTLS, only the may recipient", sc and sc.commands)
