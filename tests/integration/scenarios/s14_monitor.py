"""Monitor mode relays bytes unchanged in both directions: what the client
sent is what the server received and vice versa, in plaintext and inside a
TLS session the client negotiates itself end to end (python ssl, verifying
mx.test against the test CA). Events are still logged."""

TITLE = "monitor mode: byte-for-byte transparency"

EHLO_NO_TLS = ["mx.test", "PIPELINING", "CHUNKING", "AUTH PLAIN", "8BITMIME"]


def same_both_ways(t, c, sc, desc):
    for tls in (False, True):
        phase = "TLS" if tls else "plaintext"
        a, b = c.s.sent(tls), sc.s.received(tls)
        t.check(a == b, "%s: client->server %s bytes identical (%d bytes)" % (desc, phase, len(a)),
                "client sent %r\nserver got  %r" % (a[:300], b[:300]))
        a, b = sc.s.sent(tls), c.s.received(tls)
        t.check(a == b, "%s: server->client %s bytes identical (%d bytes)" % (desc, phase, len(a)),
                "server sent %r\nclient got  %r" % (a[:300], b[:300]))


def run(t):
    srv = t.server(per_conn=[{}, {"ehlo": EHLO_NO_TLS}])
    px = t.proxy(srv, mode="monitor")

    # 1. the client does its own STARTTLS through the proxy
    c = t.client(px)
    t.reply(c.greeting(), 220, "tls: greeting")
    r = c.ehlo()
    t.check(r is not None and "STARTTLS" in r.text, "tls: STARTTLS is passed through in monitor mode", r)
    t.reply(c.cmd("STARTTLS"), 220, "tls: STARTTLS")
    try:
        c.starttls("mx.test")
        t.ok("tls: client's own TLS handshake with the server succeeded through stsproxy (cert verified)")
    except Exception as e:
        t.fail("tls: client's own TLS handshake through stsproxy", repr(e))
        return
    t.reply(c.ehlo(), 250, "tls: EHLO inside TLS")
    rs = c.pipeline(["MAIL FROM:<alice@client.test> BODY=8BITMIME", "RCPT TO:<bob@example.test>", "DATA"])
    t.eq([x.code if x else None for x in rs], [250, 250, 354], "tls: pipelined MAIL/RCPT/DATA")
    c.send(b"Subject: monitor\r\n\r\n..stuffed\r\n\xe9t\xe9\r\n.\r\n")
    t.reply(c.read_reply(), 250, "tls: end of DATA")
    t.reply(c.cmd("QUIT"), 221, "tls: QUIT")
    t.check(c.wait_closed(), "tls: connection closed after QUIT")
    srv.wait_done(0)
    sc = srv.conn(0)
    same_both_ways(t, c, sc, "tls")
    t.eq(len(sc.lines("STARTTLS")), 1, "tls: the server saw exactly one STARTTLS (the client's)")
    t.check(sc.all_tls("MAIL FROM"), "tls: MAIL FROM arrived inside the client's TLS", sc.commands)
    rec = t.session_ok(px, c)
    t.eq(rec.get("mode"), "monitor", "tls: session record mode")
    t.eq(rec.get("starttls_advertised"), True, "tls: session record starttls_advertised")
    t.eq(rec.get("tls"), True, "tls: session record tls (negotiated by the client)")

    # 2. no STARTTLS offered: plaintext, unchanged, odd bytes included, and the event logged
    c = t.client(px)
    t.reply(c.greeting(), 220, "plain: greeting")
    r = c.ehlo()
    t.check(r is not None and "CHUNKING" in r.text and "AUTH PLAIN" in r.text,
            "plain: the EHLO reply is not filtered in monitor mode", r)
    t.reply(c.cmd("XYZZY \x01\xff odd"), 502, "plain: unknown command relayed to the server")
    rs = c.pipeline(["MAIL FROM:<alice@client.test>", "RCPT TO:<bob@example.test>", "DATA"])
    t.eq([x.code if x else None for x in rs], [250, 250, 354], "plain: pipelined MAIL/RCPT/DATA")
    c.send(b"Subject: plain\r\n\r\nbare\nLF and \x00\r\n.\r\n")
    t.reply(c.read_reply(), 250, "plain: end of DATA")
    t.reply(c.cmd("QUIT"), 221, "plain: QUIT")
    t.check(c.wait_closed(), "plain: connection closed after QUIT")
    srv.wait_done(1)
    sc = srv.conn(1)
    same_both_ways(t, c, sc, "plain")
    rec = t.session_ok(px, c)
    sid = rec.get("session")
    t.check("starttls_not_advertised" in px.event_names(sid), "plain: event starttls_not_advertised",
            px.event_names(sid))
    t.eq(rec.get("tls"), False, "plain: session record tls")
