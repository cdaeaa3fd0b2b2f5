"""The per-MX memory (TOFU). The same MX first does TLS, then suddenly
neither advertises nor accepts STARTTLS (what a stripping attacker who also
eats the STARTTLS command looks like). With detect.tofu = "alert" the mail
still goes (default policy "may") but starttls_downgrade_vs_memory is an
alert; with "defer" the recipient is deferred (450 4.7.5), no envelope byte
reaches the server, and tofu_plaintext_refused is logged."""

TITLE = "per-MX memory: alert, or defer plaintext after TLS worked"

EHLO_TLS = ["mx.test", "PIPELINING", "8BITMIME", "STARTTLS"]
EHLO_NO_TLS = ["mx.test", "PIPELINING", "8BITMIME"]
REFUSE = "502 5.5.1 Error: command not implemented"


def one_mail(t, px, desc, expect_rcpt):
    c = t.client(px)
    t.reply(c.greeting(), 220, desc + ": greeting")
    t.reply(c.ehlo(), 250, desc + ": EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, desc + ": MAIL FROM")
    r = c.cmd("RCPT TO:<bob@example.test>")
    t.reply(r, expect_rcpt, desc + ": RCPT")
    if str(expect_rcpt).startswith("250"):
        t.reply(c.cmd("DATA"), 354, desc + ": DATA")
        c.send(b"Subject: tofu\r\n\r\nmemory test\r\n.\r\n")
        t.reply(c.read_reply(), 250, desc + ": end of DATA")
    t.reply(c.cmd("QUIT"), 221, desc + ": QUIT")
    return t.session_ok(px, c)


def run(t):
    for mode in ("alert", "defer"):
        srv = t.server(per_conn=[dict(ehlo=EHLO_TLS, starttls="accept"),
                                 dict(ehlo=EHLO_NO_TLS, starttls=REFUSE)])
        px = t.proxy(srv, detect=dict(tofu=mode))
        rec = one_mail(t, px, mode + " 1st (TLS)", 250)
        t.eq(rec.get("tls"), True, mode + ": first session over TLS")
        if mode == "alert":
            rec = one_mail(t, px, mode + " 2nd (no TLS)", 250)
            sid = rec.get("session")
            ev = px.events("starttls_downgrade_vs_memory", session=sid)
            t.check(len(ev) == 1 and ev[0].get("severity") == "alert",
                    "alert: starttls_downgrade_vs_memory raised as alert", px.event_names(sid))
            sc = srv.conn(1)
            srv.wait_done(1)
            t.check(sc is not None and sc.saw("MAIL FROM", tls=False),
                    "alert: mail still delivered in plaintext (policy may)",
                    sc.commands if sc else None)
        else:
            rec = one_mail(t, px, mode + " 2nd (no TLS)", "4.7.5")
            sid = rec.get("session")
            t.check("tofu_plaintext_refused" in px.event_names(sid),
                    "defer: tofu_plaintext_refused logged", px.event_names(sid))
            sc = srv.conn(1)
            srv.wait_done(1)
            t.check(sc is not None and not sc.saw("MAIL FROM") and not sc.saw("RCPT TO"),
                    "defer: server saw no envelope", sc.commands if sc else None)
