"""STARTTLS command injection (CVE-2011-0411 class): the server's 220 and a
forged reply arrive in one write. stsproxy must not feed the extra bytes to
TLS nor treat them as a reply: it aborts with a 421 and logs
starttls_reply_pipelined; the envelope never reaches the server."""

TITLE = "plaintext injected after the STARTTLS 220"


def run(t):
    srv = t.server(starttls=b"220 go\r\n250 injected\r\n")
    px = t.proxy(srv)
    for i, rcpt in enumerate(("bob@example.test", "carol@secure.test")):
        c = t.client(px)
        t.reply(c.greeting(), 220, "greeting")
        t.reply(c.ehlo(), 250, "EHLO")
        t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "MAIL FROM")
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        t.reply(r, "421", "RCPT %s after the injection" % rcpt)
        t.check(r is not None and " 4." in r.first, "421 carries a 4.x.x enhanced code", r)
        t.check(c.wait_closed(), "client connection closed after the 421")
        srv.wait_done(i)
        sc = srv.conn(i)
        t.check(sc.saw("STARTTLS") and not sc.saw("MAIL") and not sc.saw("RCPT"),
                "server never received MAIL or RCPT", sc.commands)
        rec = t.session_ok(px, c)
        sid = rec.get("session")
        # docs/events.md: bytes behind the server's 220 are starttls_reply_pipelined
        # (plaintext_injection is the client-side name); evidence is %XX-encoded.
        ev = px.events("starttls_reply_pipelined", session=sid)
        t.check(len(ev) == 1, "event starttls_reply_pipelined logged", px.event_names(sid))
        # evidence is the 220 line the bytes rode behind; "bytes" counts them
        t.check(ev and ev[0].get("bytes") == len(b"250 injected\r\n"), "event counts the injected bytes", ev)
        t.check(ev and ev[0].get("evidence", "").startswith("220"), "event evidence is the 220 reply", ev)
        t.check(ev and ev[0].get("severity") == "alert", "starttls_reply_pipelined severity alert", ev)
        t.eq(rec.get("tls"), False, "session record tls")
        t.eq(rec.get("result"), "injection", "session record result")
