"""A server without STARTTLS. Default policy ("may"): mail goes in
plaintext and the refusal is logged. A recipient in secure.test (static
"verify"): 450 4.7.5 for that RCPT, and neither its RCPT nor MAIL FROM
ever reaches the server; a later "may" recipient in the same transaction
is still delivered."""

TITLE = "server without STARTTLS (502/454/500)"

EHLO_NO_TLS = ["mx.test", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]
EHLO_TLS = EHLO_NO_TLS + ["STARTTLS"]


def deliver(t, c, rcpts, desc):
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, desc + ": MAIL FROM")
    for rc in rcpts:
        t.reply(c.cmd("RCPT TO:<%s>" % rc), 250, desc + ": RCPT " + rc)
    t.reply(c.cmd("DATA"), 354, desc + ": DATA")
    c.send(b"Subject: plain\r\n\r\nplaintext is allowed here\r\n.\r\n")
    t.reply(c.read_reply(), 250, desc + ": end of DATA")


def run(t):
    srv = t.server(ehlo=EHLO_NO_TLS, starttls="502 5.5.1 Error: command not implemented")
    px = t.proxy(srv)

    # 1. default policy: plaintext delivery
    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting")
    t.reply(c.ehlo(), 250, "EHLO")
    deliver(t, c, ["bob@example.test"], "may")
    t.reply(c.cmd("QUIT"), 221, "QUIT")
    sc = srv.conn(0)
    srv.wait_done(0)
    t.check(sc.saw("STARTTLS"), "stsproxy tried STARTTLS", sc.commands)
    t.check(sc.saw("MAIL FROM", tls=False) and sc.bodies and not sc.bodies[0]["tls"],
            "mail delivered in plaintext after the 502", sc.commands)
    rec = t.session_ok(px, c)
    t.eq(rec.get("tls"), False, "session record tls")
    t.eq(rec.get("result"), "ok", "session record result")
    ev = px.event_names(rec.get("session"))
    t.check(any(e and e.startswith("starttls_refused") for e in ev), "event starttls_refused* logged", ev)

    # 2. secure.test (verify) is deferred, example.test in the same transaction goes through
    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting")
    t.reply(c.ehlo(), 250, "EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "MAIL FROM")
    r = c.cmd("RCPT TO:<carol@secure.test>")
    t.reply(r, "4.7.5", "RCPT secure.test without TLS")
    t.reply(r, 450, "RCPT secure.test without TLS")
    sc = srv.conn(1)
    t.check(not sc.saw("MAIL") and not sc.saw("RCPT"),
            "server saw neither MAIL FROM nor RCPT for the deferred recipient", sc.commands)
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "RCPT example.test in the same transaction")
    t.reply(c.cmd("DATA"), 354, "DATA")
    c.send(b"Subject: mixed\r\n\r\nonly bob gets this\r\n.\r\n")
    t.reply(c.read_reply(), 250, "end of DATA")
    t.reply(c.cmd("QUIT"), 221, "QUIT")
    srv.wait_done(1)
    t.check(not any("secure.test" in l for _, l in sc.commands), "secure.test never reached the server",
            sc.commands)
    t.check(len(sc.lines("MAIL FROM")) == 1 and len(sc.lines("RCPT")) == 1, "server saw one MAIL and one RCPT (bob)",
            sc.commands)
    rec = t.session_ok(px, c)
    sid = rec.get("session")
    t.check("policy_failure" in px.event_names(sid), "event policy_failure logged", px.event_names(sid))
    t.eq(rec.get("rcpt_deferred"), 1, "session record rcpt_deferred")
    t.eq(rec.get("rcpt_accepted"), 1, "session record rcpt_accepted")

    # only a deferred recipient: DATA must be a 4xx (a 5xx would bounce mail
    # that is merely waiting for TLS)
    c = t.client(px)
    t.reply(c.greeting(), 220, "deferred only: greeting")
    t.reply(c.ehlo(), 250, "deferred only: EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "deferred only: MAIL FROM")
    t.reply(c.cmd("RCPT TO:<carol@secure.test>"), "4.7.5", "deferred only: RCPT secure.test")
    t.reply(c.cmd("DATA"), "4", "deferred only: DATA with every recipient deferred")
    t.reply(c.cmd("QUIT"), 221, "deferred only: QUIT")
    srv.wait_done(2)
    t.check(not srv.conn(2).saw("MAIL") and not srv.conn(2).saw("DATA"), "deferred only: server saw no MAIL/DATA",
            srv.conn(2).commands)

    # 3. STARTTLS advertised but refused with 454; a 500 on the next connection
    srv2 = t.server(ehlo=EHLO_TLS, starttls="454 4.7.0 TLS not available due to temporary reason",
                    per_conn=[{}, {"starttls": "500 5.5.1 what?"}])
    px2 = t.proxy(srv2, name="proxy-454", mode="enforce")
    c = t.client(px2)
    t.reply(c.greeting(), 220, "454: greeting")
    t.reply(c.ehlo(), 250, "454: EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "454: MAIL FROM")
    t.reply(c.cmd("RCPT TO:<carol@secure.test>"), "4.7.5", "454: RCPT secure.test (enforce mode)")
    t.reply(c.cmd("QUIT"), 221, "454: QUIT")
    rec = t.session_ok(px2, c)
    t.check("starttls_rejected_after_advertised" in px2.event_names(rec.get("session")),
            "454: event starttls_rejected_after_advertised (it was advertised)",
            px2.event_names(rec.get("session")))
    t.check(not srv2.conn(0).saw("MAIL") and not srv2.conn(0).saw("RCPT"), "454: server saw no envelope",
            srv2.conn(0).commands)
    c = t.client(px2)
    t.reply(c.greeting(), 220, "500: greeting")
    t.reply(c.ehlo(), 250, "500: EHLO")
    deliver(t, c, ["bob@example.test"], "500 (may domain, enforce mode)")
    t.reply(c.cmd("QUIT"), 221, "500: QUIT")
    srv2.wait_done(1)
    t.check(srv2.conn(1).saw("STARTTLS") and srv2.conn(1).saw("MAIL", tls=False), "500: plaintext after refusal",
            srv2.conn(1).commands)
