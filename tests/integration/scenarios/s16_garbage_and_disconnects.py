"""Robustness: garbage from the server (a reply line "abc", a bad
continuation, binary bytes) ends the session with a 421, never a crash;
binary garbage from the client gets 4xx/5xx replies; a client that hangs
up in any state leaves one session record and a closed upstream."""

import random
import socket
import time

from dialogue import STALL, delayed

TITLE = "garbage both ways, client disconnects in every state"
BUDGET = 20.0


def run(t):
    # ---- garbage from the server
    cases = [
        ("greeting 'abc'", dict(greeting="abc"), None),
        ("EHLO reply 'abc'", dict(replies={"EHLO": "abc"}), "EHLO"),
        ("EHLO reply with a changing code", dict(replies={"EHLO": ["250-mx.test", "251 PIPELINING"]}), "EHLO"),
        ("binary EHLO reply", dict(replies={"EHLO": b"\x16\x03\x01\x00\xff\xfe\r\n"}), "EHLO"),
        ("RCPT reply 'abc' inside TLS", dict(replies={"RCPT": "abc"}), "RCPT"),
    ]
    srv = t.server(per_conn=[c[1] for c in cases])
    px = t.proxy(srv, name="proxy-srv-garbage")
    for desc, _, at in cases:
        c = t.client(px)
        r = c.greeting()
        if at is None:
            t.reply(r, 421, desc + ": client gets 421")
        else:
            t.reply(r, 220, desc + ": greeting")
            if at == "EHLO":
                t.reply(c.ehlo(), 421, desc + ": client gets 421")
            else:
                t.reply(c.ehlo(), 250, desc + ": EHLO")
                t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, desc + ": MAIL FROM")
                t.reply(c.cmd("RCPT TO:<bob@example.test>"), 421, desc + ": client gets 421")
        t.check(c.wait_closed(), desc + ": connection closed")
        rec = t.session_ok(px, c)
        t.check(rec.get("result") not in (None, "ok"), desc + ": session result %s" % rec.get("result"))
        t.check(px.alive(), desc + ": stsproxy still running")

    # ---- binary garbage from the client
    srv2 = t.server()
    px2 = t.proxy(srv2, name="proxy-cli-garbage")
    c = t.client(px2)
    t.reply(c.greeting(), 220, "client garbage: greeting")
    rnd = random.Random(4242)
    junk = [b"\x00\x01\x02\xff\xfe", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"MAIL FROM:<\x00@x>", b"RCPT TO:<a@\xff\xfe>", b"\xc3\x28 invalid utf-8",
            bytes(rnd.randrange(1, 256) for _ in range(300)).replace(b"\n", b"")]
    for j in junk:
        c.send(j + b"\r\n")
        r = c.read_reply()
        t.check(r is not None and r.code is not None and 400 <= r.code < 600,
                "client garbage %s -> a 4xx/5xx reply" % repr(j[:12]), r)
        if r is None or r.code == 421:
            break
    if c.replies and c.replies[-1].code != 421:
        # 8-bit junk inside an envelope: any well-formed reply, then still usable
        t.reply(c.ehlo(), 250, "client garbage: EHLO")
        t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "client garbage: MAIL FROM")
        for j in (b"RCPT TO:<a@\xff\xfe>", b"RCPT TO:<\x01\x02@example.test>", b"RCPT TO:\x00\x00"):
            c.send(j + b"\r\n")
            r = c.read_reply()
            t.check(r is not None and r.code is not None and 200 <= r.code < 600,
                    "client garbage %r -> a well-formed reply (%s)" % (j, r and r.first), r)
        t.reply(c.cmd("RSET"), 250, "client garbage: RSET")
        t.reply(c.cmd("NOOP"), 250, "client garbage: session still usable (NOOP)")
        t.reply(c.cmd("QUIT"), 221, "client garbage: QUIT")
    t.session_ok(px2, c)
    t.check(px2.alive(), "client garbage: stsproxy still running")

    # ---- a client that hangs up in every state
    def dot_reply(conn, line):
        time.sleep(0.6)
        return "250 2.0.0 late"

    srv3 = t.server(replies={"DOT": dot_reply},
                    per_conn=[dict(greeting=delayed(0.5, "220 slow greeting")), {}, {}, {}, {}, dict(starttls=STALL)])
    px3 = t.proxy(srv3, name="proxy-hangups", timeouts=dict(tls_handshake=2.0))

    def hang(desc, steps):
        c = t.client(px3)
        try:
            steps(c)
        except (OSError, socket.timeout) as e:
            t.note("%s: %r while setting up" % (desc, e))
        c.close()
        rec = px3.session_for(c, timeout=5)
        t.check(rec is not None, "hang-up %s: one session record" % desc, px3.sessions()[-2:])
        t.check(px3.alive(), "hang-up %s: stsproxy still running" % desc)
        return rec

    def greet(c):
        c.greeting()

    def ehlo(c):
        c.greeting(); c.ehlo()

    def mail(c):
        ehlo(c); c.cmd("MAIL FROM:<alice@client.test>")

    def in_tls(c):
        mail(c); c.send("RCPT TO:<bob@example.test>\r\n"); time.sleep(0.3)

    def rcpt(c):
        mail(c); c.cmd("RCPT TO:<bob@example.test>")

    def data(c):
        rcpt(c); c.cmd("DATA")

    def body(c):
        data(c); c.send(b"Subject: half\r\n\r\nhalf a mess")

    def dot(c):
        data(c); c.send(b"Subject: x\r\n\r\nx\r\n.\r\n"); time.sleep(0.2)

    def partial(c):
        ehlo(c); c.send(b"MAIL FROM:<alice@cli")

    plan = [("before the greeting", lambda c: None), ("after the greeting", greet), ("after EHLO", ehlo),
            ("after MAIL FROM", mail), ("mid-command", partial), ("during the upstream TLS handshake", in_tls),
            ("after RCPT", rcpt), ("after 354", data), ("mid-body", body), ("after the dot, before the reply", dot)]
    # connection i of srv3 serves plan[i]: the 6th (index 5) stalls its TLS handshake
    for desc, steps in plan:
        hang(desc, steps)
    time.sleep(0.3)
    open_up = [i for i, sc in enumerate(srv3.conns) if not sc.done.wait(3.0)]
    t.check(not open_up, "every upstream connection was closed by stsproxy after the client left",
            "still open: %s" % open_up)
    names = [r.get("result") for r in px3.sessions()]
    t.note("hang-up results: %s" % names)
