"""Metrics: stsproxy writes its counters to a node_exporter textfile
(metrics.textfile), every metrics.interval seconds and at shutdown. After a
few sessions of different shapes (TLS with two policies, a server without
STARTTLS where a "verify" recipient is deferred, a client that quits at
once) the file must show exactly what the session and event records in the
log say: sessions by result and TLS version, recipients by outcome, policy
verdicts by source and verdict, events by name and severity, messages and
the current-session gauge. The file is valid Prometheus text (checked by
the reference parser when python3-prometheus-client is installed), mode
0644, replaced atomically (no temporary file left), and rewritten once more
at SIGTERM."""

import collections
import os
import re
import time

from dialogue import wait_until

TITLE = "metrics textfile matches the session and event records"
BUDGET = 20.0

EHLO_NO_TLS = ["mx.test", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? '
                       r'(\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, ((label, value), ...)): float}; raises ValueError on a bad line."""
    out = {}
    typed = set()
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ValueError("not a sample line: %r" % line)
        if m.group(1) not in typed:
            raise ValueError("sample before its TYPE: %r" % line)
        labels = tuple(sorted(LABEL_RE.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    if not text.endswith("\n"):
        raise ValueError("no final newline")
    return out


def family(samples, name):
    """{label-values tuple: value} of one family."""
    return {tuple(v for _, v in labels): val for (n, labels), val in samples.items() if n == name}


def expected(px):
    """What the metrics must say, from the JSON records in the log."""
    recs = px.sessions()
    e = {}
    e["sessions"] = collections.Counter((r.get("result") or "unknown",) for r in recs)
    e["tls"] = collections.Counter((r.get("tls_version") or ("unknown" if r.get("tls") else "none"),)
                                   for r in recs)
    rc = collections.Counter()
    for r in recs:
        rc[("accepted",)] += r.get("rcpt_accepted", 0)
        rc[("deferred",)] += r.get("rcpt_deferred", 0)
        rc[("rejected",)] += r.get("rcpt_rejected", 0)
    e["recipients"] = rc
    vc = collections.Counter()
    for r in recs:
        for d in r.get("domains") or []:
            m = re.search(r" policy=([^/ ]+)/\S* verdict=(\S+)", d)
            if m:
                vc[(m.group(1), m.group(2))] += 1
    e["verdicts"] = vc
    # session events and the MTA-STS engine's own (no "session": docs/events.md)
    e["events"] = collections.Counter((r.get("event"), r.get("severity")) for r in px.events())
    e["messages"] = sum(r.get("messages", 0) for r in recs)
    e["n"] = len(recs)
    return e


def compare(t, samples, e, when):
    def fam(name):
        return collections.Counter({k: int(v) for k, v in family(samples, name).items() if v})

    t.eq(fam("stsproxy_sessions_total"), +e["sessions"], "%s: sessions by result" % when)
    t.eq(fam("stsproxy_sessions_tls_total"), +e["tls"], "%s: sessions by TLS version" % when)
    t.eq(fam("stsproxy_recipients_total"), +e["recipients"], "%s: recipients by outcome" % when)
    t.eq(fam("stsproxy_policy_verdicts_total"), +e["verdicts"],
         "%s: policy verdicts by source and verdict" % when)
    t.eq(fam("stsproxy_events_total"), +e["events"], "%s: events by name and severity" % when)
    t.eq(samples.get(("stsproxy_messages_total", ())), float(e["messages"]), "%s: messages" % when)
    t.eq(samples.get(("stsproxy_sessions_accepted_total", ())), float(e["n"]),
         "%s: sessions accepted" % when)
    t.eq(samples.get(("stsproxy_sessions_current", ())), 0.0, "%s: no session open" % when)


def run(t):
    srv = t.server(per_conn=[{}, dict(ehlo=EHLO_NO_TLS, starttls="502 5.5.1 Error: command not implemented")])
    px = t.proxy(srv, metrics=dict(textfile="stsproxy.prom", interval=0.2))
    prom = os.path.join(px.dir, "stsproxy.prom")  # relative names are taken from the config's directory
    t.require(os.path.exists(prom), "the textfile exists right after start-up")
    first = parse(open(prom).read())
    t.eq(first.get(("stsproxy_sessions_accepted_total", ())), 0.0, "at start: no session yet")

    # 1. TLS, a "may" and a "verify" recipient, one message
    c = t.client(px)
    t.reply(c.greeting(), 220, "s1 greeting")
    t.reply(c.ehlo(), 250, "s1 EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "s1 MAIL FROM")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "s1 RCPT may")
    t.reply(c.cmd("RCPT TO:<carol@secure.test>"), 250, "s1 RCPT verify")
    t.reply(c.cmd("DATA"), 354, "s1 DATA")
    c.send(b"Subject: metrics 1\r\n\r\nover TLS\r\n.\r\n")
    t.reply(c.read_reply(), 250, "s1 end of DATA")
    t.reply(c.cmd("QUIT"), 221, "s1 QUIT")
    t.session_ok(px, c, "s1 session record")

    # 2. no STARTTLS: the "verify" recipient is deferred by stsproxy, the other goes
    c = t.client(px)
    t.reply(c.greeting(), 220, "s2 greeting")
    t.reply(c.ehlo(), 250, "s2 EHLO")
    t.reply(c.cmd("MAIL FROM:<alice@client.test>"), 250, "s2 MAIL FROM")
    t.reply(c.cmd("RCPT TO:<carol@secure.test>"), "4.7.5", "s2 RCPT verify without TLS")
    t.reply(c.cmd("RCPT TO:<bob@example.test>"), 250, "s2 RCPT may")
    t.reply(c.cmd("DATA"), 354, "s2 DATA")
    c.send(b"Subject: metrics 2\r\n\r\nplaintext\r\n.\r\n")
    t.reply(c.read_reply(), 250, "s2 end of DATA")
    t.reply(c.cmd("QUIT"), 221, "s2 QUIT")
    t.session_ok(px, c, "s2 session record")

    # 3. a client that quits at once
    c = t.client(px)
    t.reply(c.greeting(), 220, "s3 greeting")
    t.reply(c.cmd("QUIT"), 221, "s3 QUIT")
    t.session_ok(px, c, "s3 session record")

    e = expected(px)
    t.require(e["n"] == 3, "three session records", px.sessions())
    t.check(e["events"][("policy_failure", "alert")] >= 1, "the log has a policy_failure event to count",
            px.events())

    # the periodic write (interval 0.2 s) catches up with the log
    def periodic():
        try:
            s = parse(open(prom).read())
        except (OSError, ValueError):
            return None
        return s if s.get(("stsproxy_sessions_accepted_total", ())) == 3.0 else None

    samples = wait_until(periodic, 3.0)
    t.require(samples is not None, "the periodic write shows the three sessions", open(prom).read())
    compare(t, samples, e, "periodic write")
    t.eq(oct(os.stat(prom).st_mode & 0o7777), "0o644", "textfile mode")
    t.eq(sorted(os.listdir(os.path.dirname(prom))).count("stsproxy.prom"), 1, "one textfile")
    t.check(not [f for f in os.listdir(px.dir) if f.startswith(".stsproxy.prom.")],
            "no temporary file left next to it", os.listdir(px.dir))

    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        t.note("python3-prometheus-client not installed: reference parser check skipped")
    else:
        fams = {f.name: f for f in text_string_to_metric_families(open(prom).read())}
        # the reference parser strips "_total" from counter family names
        t.check("stsproxy_events" in fams and fams["stsproxy_events"].type == "counter"
                and "stsproxy_sessions_current" in fams and fams["stsproxy_sessions_current"].type == "gauge",
                "the reference parser (prometheus_client) reads the file", sorted(fams))

    # SIGTERM: one last write with the same counts
    px.stop()
    compare(t, parse(open(prom).read()), expected(px), "after SIGTERM")

    # Only the write at shutdown can show this session: the interval is an hour.
    px2 = t.proxy(srv, name="proxy-final", metrics=dict(textfile="final.prom", interval=3600))
    prom2 = os.path.join(px2.dir, "final.prom")
    c = t.client(px2)
    t.reply(c.greeting(), 220, "s4 greeting")
    t.reply(c.cmd("QUIT"), 221, "s4 QUIT")
    t.session_ok(px2, c, "s4 session record")
    t.eq(parse(open(prom2).read()).get(("stsproxy_sessions_accepted_total", ())), 0.0,
         "before SIGTERM the hourly textfile still shows the start-up counts")
    px2.stop()
    compare(t, parse(open(prom2).read()), expected(px2), "final write at SIGTERM")
