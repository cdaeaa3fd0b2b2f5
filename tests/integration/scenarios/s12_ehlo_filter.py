"""The EHLO reply the client sees offers only what stsproxy honours:
CHUNKING/BINARYMIME (BDAT framing), AUTH (credentials before our upgrade)
and STARTTLS (ours to offer; client_tls is off) are removed, the rest is
passed on."""

TITLE = "EHLO filtering"

SERVER_EHLO = ["mx.test greets client.test", "CHUNKING", "BINARYMIME", "AUTH PLAIN LOGIN", "STARTTLS",
               "PIPELINING", "SIZE 1000", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES"]
# variants that must not slip through under another spelling
SERVER_EHLO2 = ["mx.test", "chunking", "Auth=LOGIN PLAIN", "starttls", "XCLIENT NAME ADDR", "PIPELINING",
                "8BITMIME"]


def keywords(r):
    return [l[4:].split(" ")[0].upper() for l in r.lines[1:]] if r else []


def run(t):
    srv = t.server(ehlo=SERVER_EHLO, per_conn=[{}, {"ehlo": SERVER_EHLO2}])
    px = t.proxy(srv)
    c = t.client(px)
    t.reply(c.greeting(), 220, "greeting")
    r = c.ehlo()
    t.reply(r, 250, "EHLO")
    kw = keywords(r)
    for k in ("CHUNKING", "BINARYMIME", "AUTH", "STARTTLS"):
        t.check(k not in kw, "client does not see %s" % k, r and r.text)
    for k, full in (("PIPELINING", "PIPELINING"), ("SIZE", "SIZE 1000"), ("8BITMIME", "8BITMIME"),
                    ("SMTPUTF8", "SMTPUTF8"), ("DSN", "DSN"), ("ENHANCEDSTATUSCODES", "ENHANCEDSTATUSCODES")):
        t.check(r is not None and any(l[4:] == full for l in r.lines[1:]), "client sees %s" % full, r and r.text)
    t.check(r is not None and all(l[:4] == "250-" for l in r.lines[:-1]) and r.lines[-1][:4] == "250 ",
            "filtered reply is well-formed (250- ... 250 )", r and r.text)
    t.check(r is not None and r.lines[0].startswith("250-mx.test"), "greeting line of the EHLO reply kept", r)
    t.reply(c.cmd("QUIT"), 221, "QUIT")

    c = t.client(px)
    t.reply(c.greeting(), 220, "variants: greeting")
    r = c.ehlo()
    kw = keywords(r)
    for k in ("CHUNKING", "AUTH=LOGIN", "STARTTLS", "XCLIENT"):
        t.check(k not in kw, "variants: client does not see %s" % k, r and r.text)
    t.check("PIPELINING" in kw and "8BITMIME" in kw, "variants: PIPELINING and 8BITMIME kept", r and r.text)
    t.reply(c.cmd("QUIT"), 221, "variants: QUIT")
