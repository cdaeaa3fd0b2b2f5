"""Happy path: the server advertises STARTTLS and presents a valid mx.test
certificate. stsproxy upgrades before any envelope byte: the server sees
STARTTLS before MAIL FROM, and MAIL/RCPT/body only inside TLS; the client
gets the server's own 250 after the dot."""

TITLE = "happy path with STARTTLS advertised"


def run(t):
    srv = t.server()
    px = t.proxy(srv)
    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting relayed")
    r = c.ehlo()
    t.reply(r, 250, "EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "MAIL FROM (held by stsproxy)")
    t.check(not srv.conn(0).saw("MAIL"), "MAIL FROM is held: the server has not seen it before a RCPT")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "RCPT default-policy domain")
    t.reply(c.cmd("RCPT TO:<carol@secure.test>"), 250, "RCPT verify-policy domain (certificate is valid)")
    t.reply(c.cmd("DATA"), 354, "DATA")
    body = b"Subject: happy\r\n\r\nhello over TLS\r\n.\r\n"
    c.send(body)
    r = c.read_reply()
    t.reply(r, 250, "end of DATA")
    t.check(r is not None and r.first == "250 2.0.0 Ok: queued as FAKE01",
            "client got the server's own end-of-DATA reply, unchanged", "got %r" % (r,))
    t.reply(c.cmd("QUIT"), 221, "QUIT")
    t.check(c.wait_closed(), "stsproxy closes the client connection after QUIT")

    sc = srv.conn(0)
    srv.wait_done(0)
    verbs = sc.verbs()
    t.check("STARTTLS" in verbs and "MAIL" in verbs and verbs.index("STARTTLS") < verbs.index("MAIL"),
            "server received STARTTLS before MAIL FROM", "server saw %s" % sc.commands)
    t.check(sc.all_tls("MAIL FROM:<alice@client.test>"), "MAIL FROM arrived only over TLS", sc.commands)
    t.check(sc.all_tls("RCPT TO:") and len(sc.lines("RCPT TO:")) == 2, "both RCPTs arrived only over TLS",
            sc.commands)
    t.check(len(sc.bodies) == 1 and sc.bodies[0]["tls"] and sc.bodies[0]["data"] == body,
            "body arrived over TLS, byte for byte", sc.bodies)
    t.check(not any(l.upper().startswith(("MAIL", "RCPT", "DATA")) for tl, l in sc.commands if not tl),
            "no envelope command in plaintext", sc.commands)
    t.check(sc.lines("EHLO")[-1:] and sc.lines("EHLO")[-1][0], "stsproxy sent EHLO again after TLS (RFC 3207 4.2)",
            sc.commands)
    t.check(sc.pipelined_after_starttls == b"", "nothing pipelined behind STARTTLS")

    rec = t.session_ok(px, c)
    t.eq(rec.get("tls"), True, "session record tls")
    t.check(rec.get("tls_version") in ("TLSv1.3", "TLSv1.2"), "session record tls_version is TLSv1.3 or TLSv1.2",
            "got %r" % rec.get("tls_version"))
    t.eq(rec.get("mx"), "mx.test", "session record mx")
    t.eq(rec.get("result"), "ok", "session record result")
    t.eq(rec.get("tls_verify"), "ok", "session record tls_verify")
    t.eq(rec.get("starttls_advertised"), True, "session record starttls_advertised")
    t.eq(rec.get("messages"), 1, "session record messages")
    t.eq(rec.get("rcpt_accepted"), 2, "session record rcpt_accepted")
