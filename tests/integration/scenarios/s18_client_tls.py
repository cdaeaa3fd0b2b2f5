"""tls.client_tls: stsproxy offers STARTTLS to the legacy client itself (with
a certificate it makes at start-up), terminates it, throws away plaintext the
client pipelined behind its STARTTLS, and still upgrades the upstream leg."""

import ssl

TITLE = "client-side STARTTLS offered and terminated by stsproxy"


def _wrap(c):
    # A legacy client encrypting opportunistically does not check the
    # certificate (stsproxy's own is self-signed).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.s.sock = ctx.wrap_socket(c.s.sock)
    c.s.sock.settimeout(6.0)
    c.s.tls = True


def _offers_starttls(r):
    return r is not None and any(l.upper().rstrip().endswith("STARTTLS") for l in r.lines)


def run(t):
    srv = t.server(starttls="accept")
    px = t.proxy(srv, tls=dict(ca_file=t.pki.ca, client_tls=True))

    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting")
    r = c.ehlo()
    t.reply(r, 250, "EHLO")
    t.check(_offers_starttls(r), "client is offered STARTTLS by stsproxy", r)
    t.reply(c.cmd("STARTTLS"), 220, "client STARTTLS")
    _wrap(c)
    r = c.ehlo()
    t.reply(r, 250, "EHLO inside TLS")
    t.check(not _offers_starttls(r), "STARTTLS not offered again inside TLS", r)
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "MAIL FROM")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "RCPT")
    t.reply(c.cmd("DATA"), 354, "DATA")
    c.send(b"Subject: both legs\r\n\r\nencrypted on both legs\r\n.\r\n")
    t.reply(c.read_reply(), 250, "end of DATA")
    t.reply(c.cmd("QUIT"), 221, "QUIT")
    srv.wait_done(0)
    sc = srv.conn(0)
    t.check(sc.all_tls("MAIL FROM") and sc.all_tls("RCPT TO") and sc.bodies and sc.bodies[0]["tls"],
            "upstream leg: envelope and body only over TLS", sc.commands)
    rec = t.session_ok(px, c)
    t.eq(rec.get("client_tls"), True, "session record client_tls")
    t.eq(rec.get("tls"), True, "session record tls")

    # Plaintext pipelined behind the client's STARTTLS is discarded: the
    # MAIL FROM below must never be answered or reach the server.
    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting (injection)")
    t.reply(c.ehlo(), 250, "EHLO (injection)")
    c.send(b"STARTTLS\r\nMAIL FROM:<mallory@evil.test>\r\n")
    t.reply(c.read_reply(), 220, "client STARTTLS with pipelined plaintext")
    _wrap(c)
    r = c.ehlo()
    t.reply(r, 250, "EHLO inside TLS (injection)")
    t.reply(c.cmd("QUIT"), 221, "QUIT (injection)")
    rec = t.session_ok(px, c)
    sid = rec.get("session")
    ev = px.events("plaintext_injection", session=sid)
    t.check(len(ev) == 1 and ev[0].get("direction") == "client", "event plaintext_injection (client)",
            px.event_names(sid))
    t.check(not any("mallory" in l for _, _, l in srv.all_commands()),
            "the injected MAIL FROM never reached the server", srv.all_commands())
