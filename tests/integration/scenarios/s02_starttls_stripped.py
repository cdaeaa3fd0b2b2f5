"""STARTTLS not in the EHLO reply (as if an on-path attacker stripped it),
but the server accepts it: stsproxy upgrades anyway, before the envelope."""

TITLE = "STARTTLS stripped from EHLO, still upgraded"

EHLO_NO_TLS = ["mx.test", "PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES"]


def run(t):
    srv = t.server(ehlo=EHLO_NO_TLS, starttls="accept")
    px = t.proxy(srv)
    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting")
    r = c.ehlo()
    t.reply(r, 250, "EHLO")
    t.check(r is not None and not any("STARTTLS" in l.upper() for l in r.lines), "client is not offered STARTTLS",
            r)
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "MAIL FROM")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "RCPT")
    t.reply(c.cmd("DATA"), 354, "DATA")
    c.send(b"Subject: stripped\r\n\r\nstill encrypted\r\n.\r\n")
    t.reply(c.read_reply(), 250, "end of DATA")
    t.reply(c.cmd("QUIT"), 221, "QUIT")

    sc = srv.conn(0)
    srv.wait_done(0)
    t.check(sc.saw("STARTTLS", tls=False), "server received STARTTLS although it never advertised it",
            sc.commands)
    t.check(sc.all_tls("MAIL FROM") and sc.all_tls("RCPT TO") and sc.bodies and sc.bodies[0]["tls"],
            "MAIL, RCPT and the body arrived only over TLS", sc.commands)

    rec = t.session_ok(px, c)
    t.eq(rec.get("starttls_advertised"), False, "session record starttls_advertised")
    t.eq(rec.get("tls"), True, "session record tls")
    t.eq(rec.get("result"), "ok", "session record result")
    sid = rec.get("session")
    t.check("starttls_not_advertised" in px.event_names(sid), "event starttls_not_advertised logged",
            px.event_names(sid))
