"""The server's own permanent failures reach the client unchanged: a 550
to RCPT, a 554 to end-of-DATA, a 554 to DATA; a 5xx to the MAIL FROM that
stsproxy replays is given to the client on its RCPT."""

TITLE = "server 5xx replies pass through unchanged"

RCPT_550 = ["550-5.1.1 <nobody@example.test>: Recipient address rejected:", "550 5.1.1 User unknown in virtual table"]
DOT_554 = "554 5.7.1 Message rejected as spam (score 99.1)"


def rcpt(conn, line):
    return RCPT_550 if "nobody@" in line else "250 2.1.5 Ok"


def run(t):
    srv = t.server(replies={"RCPT": rcpt, "DOT": DOT_554})
    px = t.proxy(srv)
    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting")
    t.reply(c.ehlo(), 250, "EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "MAIL FROM")
    r = c.cmd("RCPT TO:<nobody@example.test>")
    t.check(r is not None and r.lines == RCPT_550, "multi-line 550 to RCPT relayed unchanged", r)
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "RCPT bob")
    t.reply(c.cmd("DATA"), 354, "DATA")
    c.send(b"Subject: spam\r\n\r\nbuy now\r\n.\r\n")
    r = c.read_reply()
    t.check(r is not None and r.lines == [DOT_554], "554 to end-of-DATA relayed unchanged", r)
    t.reply(c.cmd("QUIT"), 221, "QUIT")
    rec = t.session_ok(px, c)
    t.eq(rec.get("messages"), 0, "session record messages")
    t.eq(rec.get("rcpt_rejected"), 1, "session record rcpt_rejected")

    # MAIL FROM refused by the server: the client hears it on RCPT
    MAIL_553 = "553 5.1.8 <alice@client.test>: Sender address rejected: Domain not found"
    srv2 = t.server(replies={"MAIL": MAIL_553, "DATA": "554 5.5.1 Error: no valid recipients"})
    px2 = t.proxy(srv2, name="proxy-mail5xx")
    c = t.client(px2)
    t.reply(c.greeting(), 220, "mail5xx: greeting")
    t.reply(c.ehlo(), 250, "mail5xx: EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "mail5xx: MAIL FROM (held, answered by stsproxy)")
    r = c.cmd("RCPT TO:<bob@example.test>")
    t.check(r is not None and r.lines == [MAIL_553], "mail5xx: the server's 553 to MAIL FROM is given on RCPT", r)
    r = c.cmd("RCPT TO:<carol@example.test>")
    t.check(r is not None and r.lines == [MAIL_553], "mail5xx: and again on the next RCPT", r)
    r = c.cmd("DATA")
    t.reply(r, "5", "mail5xx: DATA without an accepted recipient")
    t.check(c.quiet_for(0.2), "mail5xx: one reply per command")
    t.reply(c.cmd("RSET"), 250, "mail5xx: RSET")
    t.reply(c.cmd("QUIT"), 221, "mail5xx: QUIT")
    srv2.wait_done(0)
    sc = srv2.conn(0)
    t.check(len(sc.lines("MAIL FROM")) == 1 and not sc.saw("RCPT"), "mail5xx: server saw one MAIL FROM and no RCPT",
            sc.commands)

    # 554 to the DATA command itself
    srv3 = t.server(replies={"DATA": "554 5.3.4 Message too big for system"})
    px3 = t.proxy(srv3, name="proxy-data5xx")
    c = t.client(px3)
    t.reply(c.greeting(), 220, "data5xx: greeting")
    t.reply(c.ehlo(), 250, "data5xx: EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "data5xx: MAIL FROM")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "data5xx: RCPT")
    r = c.cmd("DATA")
    t.check(r is not None and r.lines == ["554 5.3.4 Message too big for system"], "data5xx: 554 to DATA unchanged", r)
    t.reply(c.cmd("NOOP"), 250, "data5xx: session goes on (NOOP)")
    t.reply(c.cmd("QUIT"), 221, "data5xx: QUIT")
