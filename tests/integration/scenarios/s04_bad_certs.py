"""Certificates that do not verify. secure.test (static "verify") gets a 4xx
and its envelope never reaches the server; a default ("may") domain is
delivered over the encrypted-but-unverified session; crypt.test ("encrypt")
is delivered too (no certificate check at that level)."""

TITLE = "wrong-name and expired certificates"


def run(t):
    for cert, evname, reason in (("wrong", "tls_cert_name_mismatch", "name-mismatch"),
                                 ("expired", "tls_cert_expired", "expired")):
        srv = t.server(cert=cert)
        px = t.proxy(srv, name="proxy-" + cert)

        # secure.test first, then a "may" and an "encrypt" domain in the same transaction
        c = t.client(px)
        t.reply(c.greeting(), 220, cert + ": greeting")
        t.reply(c.ehlo(), 250, cert + ": EHLO")
        t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, cert + ": MAIL FROM")
        r = c.cmd("RCPT TO:<carol@secure.test>")
        t.reply(r, "4", cert + ": RCPT secure.test")
        t.reply(r, "4.7.5", cert + ": RCPT secure.test")
        sc = srv.conn(0)
        t.check(sc.saw("STARTTLS") and not sc.saw("MAIL") and not sc.saw("RCPT"),
                cert + ": server never saw the envelope for secure.test", sc.commands)
        t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, cert + ": RCPT example.test (may)")
        t.reply(c.cmd("RCPT TO:<dan@crypt.test>"), 250, cert + ": RCPT crypt.test (encrypt)")
        t.reply(c.cmd("DATA"), 354, cert + ": DATA")
        c.send(b"Subject: unverified\r\n\r\nencrypted, not verified\r\n.\r\n")
        t.reply(c.read_reply(), 250, cert + ": end of DATA")
        t.reply(c.cmd("QUIT"), 221, cert + ": QUIT")
        srv.wait_done(0)
        t.check(sc.all_tls("MAIL FROM") and sc.all_tls("RCPT") and sc.bodies and sc.bodies[0]["tls"],
                cert + ": MAIL, RCPTs and body went over TLS", sc.commands)
        t.check(not any("secure.test" in l for _, l in sc.commands), cert + ": secure.test never reached the server",
                sc.commands)
        rec = t.session_ok(px, c)
        sid = rec.get("session")
        t.eq(rec.get("tls"), True, cert + ": session record tls")
        t.eq(rec.get("tls_verify"), reason, cert + ": session record tls_verify")
        ev = px.event_names(sid)
        t.check(evname in ev, cert + ": event %s" % evname, ev)
        t.check("policy_failure" in ev, cert + ": event policy_failure", ev)
        t.eq(rec.get("rcpt_deferred"), 1, cert + ": session record rcpt_deferred")

        # a default domain alone: delivered over TLS
        c = t.client(px)
        t.reply(c.greeting(), 220, cert + ": greeting 2")
        t.reply(c.ehlo(), 250, cert + ": EHLO 2")
        t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, cert + ": MAIL FROM 2")
        t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, cert + ": RCPT example.test alone")
        t.reply(c.cmd("DATA"), 354, cert + ": DATA 2")
        c.send(b"Subject: may\r\n\r\nmay\r\n.\r\n")
        t.reply(c.read_reply(), 250, cert + ": end of DATA 2")
        t.reply(c.cmd("QUIT"), 221, cert + ": QUIT 2")
        srv.wait_done(1)
        sc = srv.conn(1)
        t.check(sc is not None and sc.all_tls("MAIL FROM") and sc.bodies and sc.bodies[0]["tls"],
                cert + ": default domain delivered over TLS", sc and sc.commands)
        rec = t.session_ok(px, c)
        t.eq(rec.get("result"), "ok", cert + ": session record result")

        # the other order: MAIL FROM already replayed for a may domain, then secure.test
        c = t.client(px)
        t.reply(c.greeting(), 220, cert + ": greeting 3")
        t.reply(c.ehlo(), 250, cert + ": EHLO 3")
        t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, cert + ": MAIL FROM 3")
        t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, cert + ": RCPT example.test first")
        t.reply(c.cmd("RCPT TO:<carol@secure.test>"), "4.7.5", cert + ": RCPT secure.test second")
        t.reply(c.cmd("QUIT"), 221, cert + ": QUIT 3")
        srv.wait_done(2)
        sc = srv.conn(2)
        t.check(sc is not None and [l for _, l in sc.lines("RCPT")] == ["RCPT TO:<bob@example.test>"],
                cert + ": the server saw only bob's RCPT", sc and sc.commands)
