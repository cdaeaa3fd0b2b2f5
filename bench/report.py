#!/usr/bin/python3
"""bench/report.py WORKDIR OUT.json "A B ...": gather the raw files of one
bench/run.sh run into one JSON document, print the table and the verdict on
each target. Only reads files; the benchmark itself is run.sh."""
import glob
import json
import os
import sys

work, out, only = sys.argv[1], sys.argv[2], sys.argv[3].split()

NAMES = {
    "A": "direct: client -> sink (no relay)",
    "B": "haproxy TCP mode (plaintext)",
    "C": "stunnel STARTTLS, full handshakes",
    "Cr": "stunnel STARTTLS, sink allows resumption",
    "D": "stsproxy upgrade, full handshakes",
    "E": "stsproxy upgrade, resumption",
    "F": "stsproxy monitor (plaintext)",
}
LEVELS = [1, 10, 100]


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def relay_log_summary(sid):
    """Count session outcomes and warnings in the relay's log."""
    path = os.path.join(work, sid + ".relay.log")
    if not os.path.exists(path):
        return None
    if sid in ("D", "E", "F"):
        results, levels, samples = {}, {}, []
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    levels["unparsed"] = levels.get("unparsed", 0) + 1
                    continue
                if r.get("type") == "session":
                    k = r.get("result")
                    results[k] = results.get(k, 0) + 1
                    if k != "ok" and len(samples) < 5:
                        samples.append(line.strip()[:400])
                else:
                    k = r.get("level", r.get("type"))
                    levels[k] = levels.get(k, 0) + 1
                    if k in ("warning", "error") and len(samples) < 5:
                        samples.append(line.strip()[:400])
        return {"session_results": results, "other_records": levels, "samples": samples}
    if sid in ("C", "Cr"):
        counts = {}
        with open(path, errors="replace") as f:
            for line in f:
                for lvl in ("LOG3", "LOG4"):
                    if lvl in line:
                        counts[lvl] = counts.get(lvl, 0) + 1
        return {"errors_LOG3": counts.get("LOG3", 0), "warnings_LOG4": counts.get("LOG4", 0)}
    return None


doc = {"machine": load(os.path.join(work, "machine.json"), {}), "scenarios": {}}
for sid in only:
    if sid not in NAMES:
        continue
    sc = {"name": NAMES[sid], "levels": {}}
    fail = load(os.path.join(work, sid + ".fail.json"))
    if fail:
        sc["failure"] = fail
    for c in LEVELS:
        r = load(os.path.join(work, "%s.c%d.json" % (sid, c)))
        if r is None:
            continue
        s0 = load(os.path.join(work, "%s.c%d.sink0.json" % (sid, c)), {})
        s1 = load(os.path.join(work, "%s.c%d.sink1.json" % (sid, c)), {})
        sink = {k: s1.get(k, 0) - s0.get(k, 0)
                for k in ("sessions", "messages", "hs_full", "hs_resumed", "tls13", "tls12",
                          "errors", "hs_errors", "close_notify", "tls_eof", "tls_read_errors",
                          "plain_eof")}
        sink["last_tls_error"] = s1.get("last_tls_error")
        sink["cipher"] = s1.get("last_cipher")
        sink["group"] = s1.get("last_group")
        r["sink_counters"] = sink
        rss = read(os.path.join(work, "%s.c%d.rss" % (sid, c)))
        if rss:
            a, b = rss.split()
            r["relay_rss_after_kib"] = int(a) if a.isdigit() else None
            r["relay_hwm_kib"] = int(b) if b.isdigit() else None
        sc["levels"][str(c)] = r
    rs = read(os.path.join(work, sid + ".rss_start"))
    if rs and rs.isdigit():
        sc["relay_rss_start_kib"] = int(rs)
    st = load(os.path.join(work, sid + ".settle.sink.json"))
    if st is not None:
        sc["sink_open_after_load"] = st.get("open")
    fe = read(os.path.join(work, sid + ".fds_end"))
    if fe and fe.isdigit():
        sc["relay_fds_after_load"] = int(fe)
    idle = {}
    for p in sorted(glob.glob(os.path.join(work, sid + ".idle-*.rss.json"))):
        m = load(p)
        if m is None:
            continue
        lg = load(p.replace(".rss.json", ".json"), {})
        m["sessions_idle"] = lg.get("idle")
        m["client_errors"] = lg.get("errors")
        m["error_samples"] = lg.get("error_samples")
        m["seconds_to_ready"] = lg.get("seconds_to_ready")
        if isinstance(m.get("rss_kib"), int) and isinstance(m.get("rss_before_kib"), int) \
                and m.get("sessions_idle"):
            m["kib_per_session"] = round((m["rss_kib"] - m["rss_before_kib"]) / m["sessions_idle"], 1)
        idle["%s-%s" % (m["stage"], m.get("process", "fresh"))] = m
    if idle:
        sc["idle"] = idle
    lsum = relay_log_summary(sid)
    if lsum:
        sc["relay_log"] = lsum
    doc["scenarios"][sid] = sc


def lv(sid, c):
    return doc["scenarios"].get(sid, {}).get("levels", {}).get(str(c))


def cpu_ms(sid, c):
    r = lv(sid, c)
    if r is None:
        return None
    return r.get("cpu", {}).get("relay", {}).get("per_msg_ms")


def rate(sid, c):
    r = lv(sid, c)
    return None if r is None else r.get("msgs_per_s")


def fmt(v, f="%.2f"):
    return "-" if v is None else f % v


# --- targets -------------------------------------------------------------------
targets = []


def target(name, measured, ok):
    targets.append({"target": name, "measured": measured,
                    "met": None if ok is None else bool(ok)})


def noisy(sid, c):
    r = lv(sid, c) or {}
    o = r.get("other_busy_cores")
    return o is not None and o > 0.5


def per_level(a, b, fn):
    """fn(a_value, b_value) at each level; None if any value is missing."""
    res, vals = [], {}
    for c in LEVELS:
        x, y = fn[0](a, c), fn[0](b, c)
        vals[str(c)] = [x, y]
        if noisy(a, c) or noisy(b, c):
            vals[str(c)].append("noisy")
        res.append(None if x is None or y is None else fn[1](x, y))
    return vals, (None if None in res else all(res))


if "C" in doc["scenarios"] and "D" in doc["scenarios"]:
    v, ok = per_level("D", "C", (cpu_ms, lambda d, c: d <= c))
    target("full handshakes: stsproxy (D) CPU/msg <= stunnel (C), at 1/10/100",
           {"D_ms_vs_C_ms": v}, ok)
if "C" in doc["scenarios"] and "E" in doc["scenarios"]:
    v, ok = per_level("E", "C", (cpu_ms, lambda e, c: e <= 0.5 * c))
    target("resumption: stsproxy (E) CPU/msg <= 0.5 x stunnel full (C), at 1/10/100",
           {"E_ms_vs_C_ms": v}, ok)
if "Cr" in doc["scenarios"] and "E" in doc["scenarios"]:
    v, ok = per_level("E", "Cr", (cpu_ms, lambda e, c: e <= 0.5 * c))
    target("(stricter reading) stsproxy (E) CPU/msg <= 0.5 x stunnel resuming (Cr)",
           {"E_ms_vs_Cr_ms": v}, ok)
for sid in ("D", "E"):
    if "C" in doc["scenarios"] and sid in doc["scenarios"]:
        d, c = rate(sid, 10), rate("C", 10)
        target("throughput at 10 sessions: stsproxy (%s) >= stunnel (C)" % sid,
               {"%s_msgs_s" % sid: d, "C_msgs_s": c,
                "noisy": noisy(sid, 10) or noisy("C", 10)},
               None if d is None or c is None else d >= c)
for sid in ("D", "E", "F"):
    for tag, m in doc["scenarios"].get(sid, {}).get("idle", {}).items():
        mib = m["rss_kib"] / 1024 if isinstance(m.get("rss_kib"), int) else None
        okn = m.get("sessions_idle") == doc["machine"].get("idle_sessions")
        target("1000 idle sessions (after %s, %s process) under 40 MiB RSS: stsproxy %s"
               % (m["stage"].upper(), m.get("process"), sid),
               {"rss_mib": None if mib is None else round(mib, 1),
                "sessions_idle": m.get("sessions_idle")},
               None if mib is None or not okn else mib < 40)
if "B" in doc["scenarios"] and "F" in doc["scenarios"]:
    v, ok = per_level("F", "B", (rate, lambda f, b: f >= 0.9 * b))
    target("monitor (F) msgs/s within 10% of haproxy (B), at 1/10/100",
           {"F_vs_B_msgs_s": v}, ok)
    v, ok = per_level("F", "B", (cpu_ms, lambda f, b: f <= 1.1 * b))
    target("monitor (F) CPU/msg within 10% of haproxy (B), at 1/10/100",
           {"F_ms_vs_B_ms": v}, ok)
sysc = load(os.path.join(work, "syscalls.json"))
if sysc:
    doc["syscalls_per_message"] = sysc
instr = load(os.path.join(work, "instr.json"))
if instr:
    doc["instructions_per_message"] = instr
    for sid, v in instr.items():
        if sid in doc["scenarios"]:
            doc["scenarios"][sid]["user_instructions_per_msg"] = v.get("ir_per_msg")

    def ir(sid, _c=None):
        return (instr.get(sid) or {}).get("ir_per_msg")

    if ir("D") and ir("C"):
        target("(load-independent view) user-space instructions/msg: D <= C",
               {"D": ir("D"), "C": ir("C")}, ir("D") <= ir("C"))
    if ir("E") and ir("C"):
        target("(load-independent view) user-space instructions/msg: E <= 0.5 x C",
               {"E": ir("E"), "C": ir("C")}, ir("E") <= 0.5 * ir("C"))
    if ir("F") and ir("B"):
        target("(load-independent view) user-space instructions/msg: F <= 1.1 x B",
               {"F": ir("F"), "B": ir("B")}, ir("F") <= 1.1 * ir("B"))
doc["targets"] = targets

with open(out, "w") as f:
    json.dump(doc, f, indent=1, sort_keys=False)
    f.write("\n")

# --- the table ---------------------------------------------------------------------
m = doc["machine"]
print()
print("stsproxy benchmark  %s  (%s run, %ss warm-up + %ss window per level, %d-byte message,"
      " one message per session, %s keys)" % (m.get("started"), m.get("mode"), m.get("warmup_s"),
                                              m.get("window_s"), m.get("body_bytes", 0),
                                              m.get("keys", "ecdsa")))
print("machine: %s cores, %s, kernel %s; mbed TLS %s, OpenSSL %s (stunnel %s, sink), haproxy %s"
      % (m.get("nproc"), m.get("cpu_model"), m.get("kernel"), m.get("mbedtls"),
         m.get("openssl"), m.get("stunnel"), m.get("haproxy")))
print("pinning: %s; loadavg %s at start, %s at end; stsproxy %s"
      % (m.get("pinning"), m.get("loadavg_start"), m.get("loadavg_end"), m.get("stsproxy")))
print()
hdr = ("%-3s %-40s %4s %8s %8s %8s %8s %11s %6s %7s %7s %6s %6s %11s"
       % ("id", "scenario", "conc", "msgs/s", "p50 ms", "p99 ms", "relay", "relay", "relay", "sink",
          "client", "other", "errors", "sink TLS"))
hdr2 = ("%-3s %-40s %4s %8s %8s %8s %8s %11s %6s %7s %7s %6s %6s %11s"
        % ("", "", "", "", "", "", "ms/msg", "usr+sys", "cores", "ms/msg", "ms/msg", "cores", "",
           "full/resumed"))
print(hdr)
print(hdr2)
print("-" * len(hdr))
for sid, sc in doc["scenarios"].items():
    for c in LEVELS:
        r = sc["levels"].get(str(c))
        if r is None:
            print("%-3s %-42s %4d  (no result%s)" % (sid, sc["name"], c,
                                                     ": " + json.dumps(sc.get("failure")) if sc.get("failure") else ""))
            continue
        cpu = r.get("cpu", {})
        rel = cpu.get("relay", {})
        sk = r["sink_counters"]
        tls = "%d/%d" % (sk["hs_full"], sk["hs_resumed"]) if (sk["hs_full"] or sk["hs_resumed"]) else "-"
        us = "-"
        if rel.get("user_per_msg_ms") is not None:
            us = "%.2f+%.2f" % (rel["user_per_msg_ms"], rel["sys_per_msg_ms"])
        other = r.get("other_busy_cores")
        noisy = other is not None and other > 0.5
        print("%-3s %-40s %4d %8.1f %8s %8s %8s %11s %6s %7s %7s %6s %6d %11s"
              % (sid, sc["name"] if c == 1 else "", c, r["msgs_per_s"], fmt(r.get("p50_ms")),
                 fmt(r.get("p99_ms")), fmt(rel.get("per_msg_ms"), "%.3f"), us,
                 fmt(rel.get("util")), fmt(cpu.get("sink", {}).get("per_msg_ms"), "%.3f"),
                 fmt(cpu.get("client", {}).get("per_msg_ms"), "%.3f"),
                 fmt(other) + ("*" if noisy else " "), r["errors"], tls))
print()
print("relay memory with %s idle sessions (fresh relay process; RSS = VmRSS)"
      % m.get("idle_sessions"))
print("%-3s %-42s %-6s %-10s %5s %10s %10s %11s %7s %5s"
      % ("id", "scenario", "after", "process", "idle", "RSS before", "RSS idle", "KiB/session",
         "threads", "fds"))
for sid, sc in doc["scenarios"].items():
    for tag, i in sorted(sc.get("idle", {}).items(), key=lambda kv: (kv[1].get("process") != "fresh", kv[0])):
        rb, ri = i.get("rss_before_kib"), i.get("rss_kib")
        print("%-3s %-42s %-6s %-10s %5s %10s %10s %11s %7s %5s"
              % (sid, sc["name"], i["stage"].upper(), i.get("process"), i.get("sessions_idle"),
                 fmt(rb / 1024 if isinstance(rb, int) else None, "%.1f MiB"),
                 fmt(ri / 1024 if isinstance(ri, int) else None, "%.1f MiB"),
                 fmt(i.get("kib_per_session"), "%.1f"), i.get("threads"), i.get("fds")))
if instr:
    print()
    print("user-space instructions per message under callgrind (concurrency 1; kernel time not included)")
    for sid, v in instr.items():
        per = v.get("ir_per_msg")
        print("%-3s %-42s %14s   sink handshakes full/resumed %s, %s sessions"
              % (sid, NAMES.get(sid, sid), "-" if per is None else "{:,}".format(per),
                 v.get("sink_handshakes_full_resumed"), v.get("sessions")))
if sysc:
    print()
    print("system calls per message of the relay under strace -c (10 sessions in parallel)")
    for sid, v in sysc.items():
        top = ", ".join("%s %.1f" % kv for kv in list(v["by_call"].items())[:6])
        print("%-3s %-42s %6.1f  (failed %.1f; %s)" % (sid, NAMES.get(sid, sid),
              v["syscalls_per_msg"], v["failed_per_msg"], top))
print()
print("targets")
for t in targets:
    verdict = {True: "MET", False: "NOT MET", None: "n/a"}[t["met"]]
    print("  %-8s %s" % (verdict, t["target"]))
    print("           %s" % json.dumps(t["measured"]))
print()
notes = []
for sid, sc in doc["scenarios"].items():
    errs = sum(r.get("errors", 0) for r in sc["levels"].values())
    if errs:
        samp = [s for r in sc["levels"].values() for s in r.get("error_samples", [])][:3]
        notes.append("%s: %d client errors, e.g. %s" % (sid, errs, samp))
    stuck = sum(r.get("stuck_after_drain", 0) for r in sc["levels"].values())
    if stuck:
        notes.append("%s: %d sessions still open after the drain" % (sid, stuck))
    if sc.get("failure"):
        notes.append("%s: %s" % (sid, sc["failure"]))
    if sc.get("sink_open_after_load"):
        notes.append("%s: %d connections still open at the sink 1 s after the load ended"
                     % (sid, sc["sink_open_after_load"]))
    lg = sc.get("relay_log") or {}
    bad = {k: v for k, v in (lg.get("session_results") or {}).items() if k != "ok"}
    if bad:
        notes.append("%s: relay session results other than ok: %s" % (sid, bad))
print("columns: relay ms/msg = relay utime+stime / messages in the window; cores = CPU"
      " seconds per wall second;")
print("  'other' = cores busy with processes outside the benchmark during the window (noise;"
      " * = over 0.5 of the 2 cores: rates and latencies of that row are not comparable);")
print("  sink TLS = handshakes the sink completed in the window (full/resumed).")
if notes:
    print("findings:")
    for n in notes:
        print("  " + n)
print("JSON: %s" % out)
