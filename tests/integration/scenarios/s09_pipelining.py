"""PIPELINING (RFC 2920): commands sent in one write get their replies in
order, one per command, even though stsproxy holds MAIL FROM and runs
STARTTLS upstream while the rest of the batch waits."""

TITLE = "PIPELINING: replies in order, one per command"


def rcpt_reply(conn, line):
    if "nobody@" in line:
        return "550 5.1.1 <nobody@example.test>: Recipient address rejected"
    return "250 2.1.5 %s ok" % line.split(":", 1)[1].strip()


def run(t):
    srv = t.server(replies={"RCPT": rcpt_reply})
    px = t.proxy(srv)
    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting")
    r = c.ehlo()
    t.check(r is not None and "PIPELINING" in r.text, "PIPELINING is offered to the client", r)

    rs = c.pipeline(["MAIL FROM:<alice@client.test>", "RCPT TO:<bob@example.test>",
                     "RCPT TO:<carol@example.test>", "DATA"])
    t.eq(len([x for x in rs if x is not None]), 4, "batch 1: four replies for four commands")
    if len(rs) == 4 and None not in rs:
        t.reply(rs[0], 250, "batch 1: MAIL FROM")
        t.check(rs[1].code == 250 and "<bob@example.test>" in rs[1].first, "batch 1: 1st RCPT reply is bob's", rs[1])
        t.check(rs[2].code == 250 and "<carol@example.test>" in rs[2].first, "batch 1: 2nd RCPT reply is carol's",
                rs[2])
        t.reply(rs[3], 354, "batch 1: DATA")
    t.check(c.quiet_for(0.3), "batch 1: no extra reply before the body")
    c.send(b"Subject: pipelined\r\n\r\nbatch one\r\n.\r\n")
    t.reply(c.read_reply(), 250, "batch 1: end of DATA")

    # batch 2: a rejected recipient in the middle, the body and QUIT pipelined too
    rs = c.pipeline(["MAIL FROM:<alice@client.test>", "RCPT TO:<dave@example.test>",
                     "RCPT TO:<nobody@example.test>", "RCPT TO:<erin@example.test>", "DATA"])
    t.eq(len([x for x in rs if x is not None]), 5, "batch 2: five replies for five commands")
    if len(rs) == 5 and None not in rs:
        t.eq([x.code for x in rs], [250, 250, 550, 250, 354], "batch 2: reply codes in command order")
        t.check("<dave@" in rs[1].first and "nobody@" in rs[2].first and "<erin@" in rs[3].first,
                "batch 2: each RCPT reply belongs to its RCPT", rs)
    rs = c.pipeline(["Subject: pipelined 2", "", "batch two", ".", "QUIT"], nreplies=2)
    t.eq([x.code if x else None for x in rs], [250, 221], "batch 2: body+dot+QUIT in one write -> 250, 221")
    t.check(c.wait_closed(), "connection closed after QUIT")
    srv.wait_done(0)
    sc = srv.conn(0)
    t.eq(len(sc.bodies), 2, "server received two messages")
    t.eq([l for _, l in sc.lines("RCPT")],
         ["RCPT TO:<bob@example.test>", "RCPT TO:<carol@example.test>", "RCPT TO:<dave@example.test>",
          "RCPT TO:<nobody@example.test>", "RCPT TO:<erin@example.test>"], "server saw the RCPTs in order")
    rec = t.session_ok(px, c)
    t.eq(rec.get("messages"), 2, "session record messages")
    t.eq(rec.get("rcpt_rejected"), 1, "session record rcpt_rejected")
