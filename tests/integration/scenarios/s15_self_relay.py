"""A redirect listener reached directly, without a NAT rule: the original
destination is stsproxy itself (or cannot be read). stsproxy must refuse to
relay to itself and close the connection, never loop. Without a NAT entry
Linux answers SO_ORIGINAL_DST with ENOENT; the "points at itself" branch is
reached through a tproxy listener connected to directly (its destination is
the socket's local address = the listener), when IP_TRANSPARENT is allowed."""


from dialogue import LOOP, free_port

TITLE = "self-relay on a redirect (and tproxy) listener"


def run(t):
    srv = t.server()
    rport = free_port()
    fport = free_port()
    tport = free_port()
    px = t.proxy(srv, listen=[
        dict(kind="fixed", address=LOOP, port=fport, upstream="%s:%d" % (LOOP, srv.port), upstream_name="mx.test"),
        dict(kind="redirect", address=LOOP, port=rport),
        dict(kind="tproxy", address=LOOP, port=tport),
    ])
    px.port = fport
    nconn = len(srv.conns)
    for i in range(3):
        c = t.client(px, port=rport)
        closed = c.wait_closed(3.0)
        t.check(closed, "direct connection %d to the redirect listener is closed" % (i + 1))
        t.check(c.s.received() == b"", "no greeting or other bytes were sent", c.s.received())
        rec = t.session_ok(px, c)
        t.check(rec.get("result") in ("refused", "error"), "session record result refused/error (%s)" % rec.get("result"),
                rec)
    loop = px.log_lines(r"refusing to loop|original destination")
    t.check(bool(loop), "log says it refuses to loop (or cannot read SO_ORIGINAL_DST)", px.log_lines()[-5:])
    t.note("log: %s" % (loop[:1],))
    t.eq(len(srv.conns), nconn, "no upstream connection was made for them")

    # tproxy: the destination is our own listener address -> "refusing to loop"
    if px.log_lines(r"listening on 127\.0\.0\.1:%d \(tproxy\)" % tport):
        c = t.client(px, port=tport)
        t.check(c.wait_closed(3.0) and c.s.received() == b"", "tproxy listener reached directly: closed, no bytes")
        rec = t.session_ok(px, c)
        t.eq(rec.get("result"), "refused", "tproxy: session record result")
        t.check(bool(px.log_lines(r"refusing to loop")), "tproxy: log says it refuses to loop", px.log_lines()[-3:])
    else:
        t.note("tproxy listener could not be opened here (no IP_TRANSPARENT): loop branch not exercised")
    t.eq(len(srv.conns), nconn, "still no upstream connection")

    # the daemon is unharmed: the fixed listener still relays
    c = t.client(px)
    t.reply(c.greeting(), 220, "fixed listener still works: greeting")
    t.reply(c.cmd("QUIT"), 221, "fixed listener still works: QUIT")
