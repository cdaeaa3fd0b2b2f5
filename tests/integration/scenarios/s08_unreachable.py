"""No server: the client is told with a 421 4.4.1 greeting, the way a dead
MX looks, so it keeps the mail and tries again later. Same for a server
that accepts but never greets (timeouts.greeting) or hangs up at once."""

from dialogue import CLOSE, SILENT, free_port

TITLE = "upstream unreachable / silent / hangs up"


def run(t):
    px = t.proxy(free_port(), name="proxy-refused")
    c = t.client(px)
    r = c.greeting()
    t.reply(r, "4.4.1", "connection refused upstream: greeting")
    t.reply(r, 421, "connection refused upstream: greeting")
    t.check(c.wait_closed(), "connection closed after the 421")
    rec = t.session_ok(px, c)
    t.eq(rec.get("result"), "unreachable", "session record result")

    srv = t.server(greeting=SILENT)
    px2 = t.proxy(srv, name="proxy-silent", timeouts=dict(greeting=1.0))
    c = t.client(px2)
    r = c.greeting(timeout=5)
    t.reply(r, [421], "silent server: greeting after timeouts.greeting")
    t.check(r is not None and r.code == 421 and " 4.4.1 " in r.first, "silent server: 421 4.4.1", r)
    t.check(c.wait_closed(), "silent server: connection closed")
    rec = t.session_ok(px2, c)
    t.eq(rec.get("result"), "unreachable", "silent server: session record result")

    srv3 = t.server(greeting=CLOSE)
    px3 = t.proxy(srv3, name="proxy-hangup")
    c = t.client(px3)
    r = c.greeting()
    t.reply(r, 421, "server hangs up at once: greeting")
    t.check(c.wait_closed(), "hang-up: connection closed")
    t.session_ok(px3, c)
