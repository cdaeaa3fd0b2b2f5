#!/usr/bin/python3
"""dialogue.py: scripted SMTP dialogues against a real stsproxy, on loopback.

    fake client  --->  stsproxy (fixed listener, 127.0.0.1)  --->  fake server (127.0.0.1)

No namespaces, no root, no network: every socket is on 127.0.0.1. Each scenario
(tests/integration/scenarios/sNN_*.py) starts its own fake server(s), its own
stsproxy with a generated libconfig file and its own fake clients, and asserts
three things: what the CLIENT saw, what the SERVER received (and whether each
command came over TLS), and what stsproxy logged (the JSON session record and
the named events).

Engine pieces, top to bottom:
  Pki          a test CA and leaf certificates made per run with openssl(1):
               "mx" (mx.test), "wrong" (wrong.test), "expired" (mx.test, 2020).
  FakeServer   scripted SMTP server: replies, STARTTLS behaviour, misbehaviours
               (see SERVER_DEFAULTS for every knob), full transcripts.
  Client       scripted SMTP client: lines, pipelined writes, raw bytes, its own
               STARTTLS (python ssl), every reply recorded.
  Proxy        one stsproxy process: config, start, log records, RSS, and a
               clean-exit check (SIGTERM -> exit 0, no ASan/UBSan/LSan report).
  T            the per-scenario context and assertion layer (PASS:/FAIL: lines).

Usage: dialogue.py [--bin PATH] [--only SUBSTR ...] [--keep] [-v]
Exit: 0 all passed, 1 a check failed, 77 skipped (binary or openssl missing).
Every wait is bounded (socket timeouts, process waits); every process and
socket is closed in a finally block, also when a scenario raises.
"""

import argparse
import atexit
import glob
import hashlib
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree (scenarios/)
LOOP = "127.0.0.1"
IO_TIMEOUT = 6.0  # any single blocking socket operation of the harness

# ----------------------------------------------------------------------------
# small helpers


def free_port():
    """A port nothing listens on right now (bind to 0, read it, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOP, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def short(b, n=120):
    r = repr(b)
    return r if len(r) <= n else r[:n] + "..."


def wait_until(pred, timeout, step=0.05):
    """Poll pred() until it is truthy or timeout seconds pass; its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


class _Marker:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


CLOSE = _Marker("CLOSE")  # close the connection instead of answering
SILENT = _Marker("SILENT")  # never answer (keep reading)
STALL = _Marker("STALL")  # STARTTLS: say 220, then never speak TLS


def delayed(seconds, value):
    """A reply value that is sent after a pause."""

    def fn(conn, line):
        time.sleep(seconds)
        return value

    return fn


def reply_bytes(value):
    """A scripted reply as wire bytes: "250 ok", ["250-a", "250 b"] or raw bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (list, tuple)):
        return b"".join(x.encode("latin-1") + b"\r\n" for x in value)
    return value.encode("latin-1") + b"\r\n"


def multiline(code, lines):
    """["a", "b"] -> ["250-a", "250 b"]"""
    return ["%s%s%s" % (code, " " if i == len(lines) - 1 else "-", x) for i, x in enumerate(lines)]


# ----------------------------------------------------------------------------
# PKI


class Pki:
    """A test CA and leaf certificates, made with openssl(1) in dir."""

    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        cnf = os.path.join(d, "ca.cnf")
        with open(cnf, "w") as f:
            f.write(
                "[ ca ]\ndefault_ca = tca\n[ tca ]\ndir = %s\ndatabase = %s/index.txt\n"
                "new_certs_dir = %s\nserial = %s/serial\ndefault_md = sha256\n"
                "policy = pany\nunique_subject = no\n[ pany ]\ncommonName = supplied\n"
                "[ leaf ]\nbasicConstraints = critical,CA:FALSE\n"
                "keyUsage = critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:${ENV::SAN}\n" % (d, d, d, d)
            )
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        self._run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", os.path.join(d, "ca.key"), "-out", self.ca, "-days", "3",
            "-subj", "/CN=stsproxy dialogue test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )
        now = time.time()
        fmt = "%Y%m%d%H%M%SZ"
        valid = (time.strftime(fmt, time.gmtime(now - 86400)), time.strftime(fmt, time.gmtime(now + 86400 * 3)))
        self.certs = {}
        self._leaf("mx", "mx.test", *valid, cnf=cnf)
        self._leaf("wrong", "wrong.test", *valid, cnf=cnf)
        self._leaf("expired", "mx.test", "20200101000000Z", "20200201000000Z", cnf=cnf)

    def _run(self, *args, env=None):
        r = subprocess.run(["openssl"] + list(args), cwd=self.dir, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], r.stdout.decode(errors="replace")))

    def _leaf(self, name, cn, start, end, cnf):
        d = self.dir
        key, csr, pem = (os.path.join(d, name + x) for x in (".key", ".csr", ".pem"))
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        env = dict(os.environ, SAN=cn)
        self._run("ca", "-batch", "-config", cnf, "-cert", self.ca, "-keyfile", os.path.join(d, "ca.key"),
                  "-in", csr, "-out", pem, "-startdate", start, "-enddate", end,
                  "-extensions", "leaf", "-notext", env=env)
        self.certs[name] = (pem, key)

    def server_context(self, name):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.certs[name])
        return ctx

    def client_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca)
        return ctx


# ----------------------------------------------------------------------------
# byte stream with a line reader, plain or TLS, recording everything


class Stream:
    """A socket (later maybe an SSLSocket) with a read buffer and transcripts.

    rx/tx are lists of (tls, bytes) chunks as they crossed this end, so a
    monitor-mode test can compare one side's sent bytes with the other's
    received bytes, phase by phase."""

    def __init__(self, sock, timeout=IO_TIMEOUT):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.tls = False
        self.eof = False
        self.rx = []
        self.tx = []
        self.lock = threading.Lock()

    def fill(self, timeout=None):
        """Read once; False at EOF. Raises socket.timeout."""
        if self.eof:
            return False
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError) as e:
            if isinstance(e, socket.timeout):
                raise
            data = b""
        finally:
            if timeout is not None:
                self.sock.settimeout(IO_TIMEOUT)
        if not data:
            self.eof = True
            return False
        self.rx.append((self.tls, data))
        self.buf += data
        return True

    def readline(self, timeout=None, maxlen=None):
        """One line with its terminator, b"" at EOF (a partial line at EOF is returned)."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line, self.buf = self.buf[: i + 1], self.buf[i + 1:]
                return line
            start = len(self.buf)
            if maxlen is not None and len(self.buf) > maxlen:
                line, self.buf = self.buf, b""
                return line
            if not self.fill(timeout):
                line, self.buf = self.buf, b""
                return line

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        with self.lock:
            self.tx.append((self.tls, data))
            self.sock.sendall(data)

    def received(self, tls=None):
        return b"".join(d for t, d in self.rx if tls is None or t == tls)

    def sent(self, tls=None):
        return b"".join(d for t, d in self.tx if tls is None or t == tls)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------
# fake server

SERVER_DEFAULTS = dict(
    greeting="220 mx.test ESMTP fake",  # str/list/bytes, SILENT, CLOSE, or a callable
    ehlo=["mx.test", "PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS"],
    ehlo_tls=None,  # EHLO lines after TLS; None = `ehlo` without STARTTLS
    ehlo_reply=None,  # override the whole EHLO reply (value as in `replies`)
    starttls="accept",  # "accept" | a reply str/bytes (stay plaintext) | STALL | SILENT | CLOSE
    cert="mx",  # which Pki certificate a STARTTLS handshake presents
    tls_max=None,  # e.g. ssl.TLSVersion.TLSv1_2
    replies={},  # verb -> value: MAIL RCPT DATA DOT RSET NOOP QUIT HELO VRFY * (anything else)
    body_close_after=None,  # close the connection once this many body bytes arrived
    body_close_delay=0.0,  # ... after not reading for this long (lets backpressure build up)
    data_rcpt_echo=True,  # RCPT replies name the address ("250 2.1.5 <a@b> ok")
)

DEFAULT_REPLIES = {
    "MAIL": "250 2.1.0 Sender ok",
    "DATA": "354 End data with <CR><LF>.<CR><LF>",
    "RSET": "250 2.0.0 Reset ok",
    "NOOP": "250 2.0.0 Noop ok",
    "QUIT": "221 2.0.0 Bye",
    "HELO": "250 mx.test",
    "VRFY": "252 2.0.0 Cannot VRFY",
    "*": "502 5.5.2 Error: command not recognized",
}


class ServerConn:
    """One accepted connection, served by its own thread from a spec."""

    def __init__(self, server, sock, idx, spec):
        self.server = server
        self.idx = idx
        self.spec = spec
        self.s = Stream(sock, timeout=20.0)
        self.commands = []  # (tls, line str without CRLF)
        self.bodies = []  # dict(tls, data, complete)
        self.pipelined_after_starttls = b""
        self.tls_error = None
        self.tls_version = None
        self.closed_by_us = False
        self.peer_eof = False
        self.done = threading.Event()
        self.error = None
        self.nmsg = 0
        self.thread = threading.Thread(target=self._run, name="srv-conn-%d" % idx, daemon=True)
        self.thread.start()

    # ---- queries used by assertions
    def verbs(self, tls=None):
        return [l.split(" ", 1)[0].split(":", 1)[0].upper() for t, l in self.commands
                if tls is None or t == tls]

    def saw(self, prefix, tls=None):
        """Did a command starting with prefix (case-insensitive) arrive (over TLS if tls)?"""
        p = prefix.upper()
        return any(l.upper().startswith(p) and (tls is None or t == tls) for t, l in self.commands)

    def lines(self, prefix=""):
        p = prefix.upper()
        return [(t, l) for t, l in self.commands if l.upper().startswith(p)]

    def all_tls(self, prefix):
        ls = self.lines(prefix)
        return bool(ls) and all(t for t, _ in ls)

    # ---- sending
    def _send_value(self, value, line=""):
        """Send a scripted value; False when the connection should end."""
        while callable(value) and not isinstance(value, _Marker):
            value = value(self, line)
        if value is None or value is SILENT:
            return True
        if value is CLOSE:
            self.closed_by_us = True
            self.s.close()
            return False
        self.s.send(reply_bytes(value))
        return True

    def _reply(self, verb, line, default):
        r = self.spec["replies"]
        v = r.get(verb, default if default is not None else r.get("*", DEFAULT_REPLIES["*"]))
        return self._send_value(v, line)

    # ---- the dialogue
    def _run(self):
        try:
            self._dialogue()
        except socket.timeout:
            self.error = "timeout"
        except Exception as e:  # recorded, shown by the test on failure
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            self.s.close()
            self.done.set()

    def _ehlo_lines(self):
        sp = self.spec
        if self.s.tls:
            lines = sp["ehlo_tls"] if sp["ehlo_tls"] is not None else [x for x in sp["ehlo"] if x.upper() != "STARTTLS"]
        else:
            lines = sp["ehlo"]
        return multiline(250, lines)

    def _dialogue(self):
        sp = self.spec
        if not self._send_value(sp["greeting"], ""):
            return
        while True:
            raw = self.s.readline()
            if not raw:
                self.peer_eof = True
                return
            if not raw.endswith(b"\n"):
                self.peer_eof = True  # partial line, then EOF
                return
            line = raw.rstrip(b"\r\n").decode("latin-1")
            self.commands.append((self.s.tls, line))
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                v = sp["ehlo_reply"] if sp["ehlo_reply"] is not None else self._ehlo_lines()
                if not self._send_value(sp["replies"].get("EHLO", v), line):
                    return
            elif verb == "STARTTLS":
                if not self._starttls(line):
                    return
            elif verb == "RCPT":
                addr = line.split(":", 1)[1].strip() if ":" in line else ""
                d = "250 2.1.5 %s Recipient ok" % addr if sp["data_rcpt_echo"] else "250 2.1.5 Ok"
                if not self._reply("RCPT", line, d):
                    return
            elif verb == "DATA":
                r = sp["replies"].get("DATA", DEFAULT_REPLIES["DATA"])
                while callable(r) and not isinstance(r, _Marker):
                    r = r(self, line)
                if not self._send_value(r, line):
                    return
                if isinstance(r, str) and r.startswith("354"):
                    if not self._body():
                        return
            elif verb == "QUIT":
                self._reply("QUIT", line, DEFAULT_REPLIES["QUIT"])
                self.closed_by_us = True
                return
            else:
                if not self._reply(verb, line, DEFAULT_REPLIES.get(verb)):
                    return

    def _body(self):
        """Read a message up to CRLF.CRLF; record it in wire form (dot-stuffed)."""
        sp = self.spec
        limit = sp["body_close_after"]
        data = bytearray(b"\r\n")  # the CRLF that ended DATA starts the first line
        searched = 0
        body = dict(tls=self.s.tls, data=b"", complete=False, sha=None, size=0)
        self.bodies.append(body)
        while True:
            i = data.find(b"\r\n.\r\n", max(0, searched - 4))
            if i >= 0:
                rest = bytes(data[i + 5:])
                # the body as sent after "DATA\r\n", up to and including ".\r\n"
                wire = bytes(data[2:i + 5])
                body.update(data=wire, complete=True, sha=sha(wire), size=len(wire))
                self.s.buf = rest + self.s.buf
                break
            searched = len(data)
            if limit is not None and len(data) - 2 >= limit:
                body.update(data=bytes(data[2:]), size=len(data) - 2)
                time.sleep(sp["body_close_delay"])
                self.closed_by_us = True
                self.s.close()
                return False
            if self.s.buf:
                data += self.s.buf
                self.s.buf = b""
                continue
            if not self.s.fill():
                body.update(data=bytes(data[2:]), size=len(data) - 2)
                self.peer_eof = True
                return False
            data += self.s.buf
            self.s.buf = b""
        self.nmsg += 1
        self.commands.append((self.s.tls, "<end-of-data>"))
        return self._reply("DOT", "", "250 2.0.0 Ok: queued as FAKE%d%d" % (self.idx, self.nmsg))

    def _starttls(self, line):
        sp = self.spec
        mode = sp["starttls"]
        if self.s.tls:
            return self._send_value("503 5.5.1 Error: TLS already active", line)
        if mode == "accept":
            self.s.send(b"220 2.0.0 Ready to start TLS\r\n")
            if self.s.buf:
                # RFC 3207 §4.2: bytes pipelined after STARTTLS are not ours.
                self.pipelined_after_starttls = self.s.buf
                self.s.buf = b""
            ctx = self.server.pki.server_context(sp["cert"])
            if sp["tls_max"] is not None:
                ctx.maximum_version = sp["tls_max"]
            try:
                self.s.sock.settimeout(8.0)
                self.s.sock = ctx.wrap_socket(self.s.sock, server_side=True)
                self.s.sock.settimeout(20.0)
            except (ssl.SSLError, OSError) as e:
                self.tls_error = str(e)
                return False
            self.s.tls = True
            self.tls_version = self.s.sock.version()
            return True
        if mode is STALL:
            self.s.send(b"220 2.0.0 Ready to start TLS\r\n")
            while self.s.fill(timeout=20.0):  # read the ClientHello, never answer it
                pass
            self.peer_eof = True
            return False
        return self._send_value(mode, line)


class FakeServer:
    """Accepts connections on 127.0.0.1:port; each is served from `spec`
    (merged over SERVER_DEFAULTS), or from per_conn[i] for the i-th one."""

    def __init__(self, t, per_conn=None, **spec):
        self.t = t
        self.pki = t.pki
        for k in spec:
            if k not in SERVER_DEFAULTS:
                raise KeyError("unknown server option %r" % k)
        self.spec = dict(SERVER_DEFAULTS, **spec)
        self.per_conn = per_conn or []
        self.conns = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOOP, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, name="srv-accept", daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            i = len(self.conns)
            spec = dict(self.spec)
            if i < len(self.per_conn):
                spec.update(self.per_conn[i])
            self.conns.append(ServerConn(self, sock, i, spec))

    def conn(self, i=0, timeout=3.0):
        """The i-th connection, waiting for it to arrive."""
        wait_until(lambda: len(self.conns) > i, timeout)
        return self.conns[i] if len(self.conns) > i else None

    def wait_done(self, i=0, timeout=4.0):
        c = self.conn(i, timeout)
        return c is not None and c.done.wait(timeout)

    def all_commands(self):
        return [(c.idx, t, l) for c in self.conns for t, l in c.commands]

    def stop(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in self.conns:
            c.s.close()
        for c in self.conns:
            c.thread.join(2.0)
        self.thread.join(1.0)


# ----------------------------------------------------------------------------
# fake client


class Reply:
    """A reply as the client received it; code None for a non-reply line."""

    RE = re.compile(rb"^(\d{3})([ -]|\r?\n|$)")

    def __init__(self, raw_lines):
        self.raw = b"".join(raw_lines)
        self.lines = [l.rstrip(b"\r\n").decode("latin-1") for l in raw_lines]
        m = self.RE.match(raw_lines[0]) if raw_lines else None
        self.code = int(m.group(1)) if m else None

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def first(self):
        return self.lines[0] if self.lines else ""

    def matches(self, want):
        """want: 250, "4" (class), "421", "4.7.5" (enhanced code in the first line)."""
        if self.code is None:
            return False
        if isinstance(want, int):
            return self.code == want
        if "." in want:
            return ("%d %s" % (self.code, want)) in self.first or (" %s " % want) in self.first + " "
        return str(self.code).startswith(want)

    def __repr__(self):
        return "<Reply %s>" % short(self.raw, 200)


class Client:
    def __init__(self, t, port, connect=True):
        self.t = t
        self.port = port
        self.replies = []
        self.timed_out = False
        self.s = None
        self.addr = None
        if connect:
            sock = socket.create_connection((LOOP, port), timeout=IO_TIMEOUT)
            self.s = Stream(sock)
            self.addr = "%s:%d" % sock.getsockname()[:2]

    def read_reply(self, timeout=IO_TIMEOUT):
        """The next complete reply, or None at EOF / timeout (recorded as such)."""
        lines = []
        try:
            while True:
                raw = self.s.readline(timeout=timeout)
                if not raw:
                    break
                lines.append(raw)
                m = Reply.RE.match(raw)
                if m is None or m.group(2) != b"-":
                    break
        except socket.timeout:
            self.timed_out = True
            lines = lines or []
            if not lines:
                return None
        if not lines:
            return None
        r = Reply(lines)
        self.replies.append(r)
        return r

    def greeting(self, timeout=IO_TIMEOUT):
        return self.read_reply(timeout)

    def send(self, data):
        self.s.send(data)

    def cmd(self, line, timeout=IO_TIMEOUT):
        self.s.send(line + "\r\n")
        return self.read_reply(timeout)

    def pipeline(self, lines, nreplies=None, timeout=IO_TIMEOUT):
        """All lines in one write; then read one reply per line (or nreplies)."""
        self.s.send("".join(l + "\r\n" for l in lines))
        out = []
        for _ in range(len(lines) if nreplies is None else nreplies):
            r = self.read_reply(timeout)
            out.append(r)
            if r is None:
                break
        return out

    def ehlo(self, name="client.test"):
        return self.cmd("EHLO " + name)

    def quiet_for(self, seconds):
        """True when nothing arrives for `seconds` (no stray extra reply)."""
        if self.s.buf:
            return False
        if isinstance(self.s.sock, ssl.SSLSocket):
            if self.s.sock.pending():
                return False
            try:
                r, _, _ = select.select([self.s.sock], [], [], seconds)
            except (OSError, ValueError):
                return True
            return not r
        try:
            r, _, _ = select.select([self.s.sock], [], [], seconds)
        except (OSError, ValueError):
            return True
        if not r:
            return True
        try:
            self.s.sock.setblocking(False)
            data = self.s.sock.recv(65536, socket.MSG_PEEK)
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except OSError:
            return True
        finally:
            try:
                self.s.sock.settimeout(IO_TIMEOUT)
            except OSError:
                pass
        return data == b""  # EOF is "quiet" too

    def wait_closed(self, timeout=4.0):
        """True when the peer closes within timeout (data before EOF is kept)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if not self.s.fill(timeout=max(0.05, end - time.monotonic())):
                    return True
            except socket.timeout:
                return False
        return False

    def starttls(self, server_hostname="mx.test"):
        ctx = self.t.pki.client_context()
        self.s.sock = ctx.wrap_socket(self.s.sock, server_hostname=server_hostname)
        self.s.sock.settimeout(IO_TIMEOUT)
        self.s.tls = True

    def close(self):
        if self.s is not None:
            self.s.close()


def message(subject="dialogue test", body_lines=None, extra=b""):
    """A small RFC 5322 message in wire form, ending with CRLF.CRLF."""
    lines = body_lines or ["hello from the dialogue test"]
    m = ("From: <alice@client.test>\r\nTo: <bob@example.test>\r\nSubject: %s\r\n\r\n" % subject).encode()
    m += b"".join(l.encode("latin-1") + b"\r\n" for l in lines) + extra
    return m + b".\r\n"


# ----------------------------------------------------------------------------
# stsproxy


def _lc(v):
    """Python value -> libconfig text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(v, (list,)):
        if v and isinstance(v[0], dict):
            return "(\n  " + ",\n  ".join(_lc(x) for x in v) + "\n)"
        return "[" + ", ".join(_lc(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + " ".join("%s = %s;" % (k, _lc(x)) for k, x in v.items()) + " }"
    raise TypeError(v)


SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                          r"SUMMARY: |ERROR: |Segmentation fault|Aborted")


# Config groups a scenario may add that have no default above.
OPTIONAL_GROUPS = ("metrics", "detect")


class Proxy:
    """One stsproxy process with a generated configuration.

    asan_options: extra ASAN_OPTIONS for this process (before any from the
    environment, which win).
    cfg keys (all optional): mode, listen (list of listener dicts; default one
    fixed listener to `upstream_port`), tls, policy, limits, timeouts, log (dicts
    merged over the defaults below), and metrics (no default: not written)."""

    def __init__(self, t, upstream_port, name="proxy", asan_options="", **cfg):
        self.t = t
        self.name = name
        self.dir = os.path.join(t.dir, "%s-%d" % (name, t.seq()))
        os.makedirs(self.dir)
        self.port = free_port()
        self.upstream_port = upstream_port
        self.logfile = os.path.join(self.dir, "stsproxy.log")
        self.errfile = os.path.join(self.dir, "stderr.txt")
        self.conffile = os.path.join(self.dir, "stsproxy.conf")
        self.stopped = False
        listen = cfg.pop("listen", None)
        if listen is None:
            listen = [dict(kind="fixed", address=LOOP, port=self.port,
                           upstream="%s:%d" % (LOOP, upstream_port), upstream_name="mx.test")]
        conf = dict(
            mode=cfg.pop("mode", "upgrade"),
            listen=listen,
            dns=dict(servers=["127.0.0.1:9"], timeout=1.0, tries=1),
            tls=dict(ca_file=t.pki.ca),
            policy=dict(default_level="may",
                        static=[dict(domain="secure.test", level="verify", mx=["mx.test"]),
                                dict(domain="crypt.test", level="encrypt")]),
            limits=dict(max_line=512, max_reply_lines=16),
            timeouts=dict(connect=2.0, greeting=3.0, command=3.0, data_block=3.0, data_end=3.0,
                          tls_handshake=3.0, idle=3.0, dns=2.0),
            log=dict(format="json", file=self.logfile, level="debug"),
        )
        for k, v in cfg.items():
            if k in OPTIONAL_GROUPS and k not in conf:
                conf[k] = v  # a group this harness does not set by default
                continue
            if k not in conf:
                raise KeyError("unknown config group %r" % k)
            if isinstance(conf[k], dict):
                conf[k] = dict(conf[k], **v)
            else:
                conf[k] = v
        self.conf = conf
        with open(self.conffile, "w") as f:
            f.write("# generated by dialogue.py for scenario %s\n" % t.name)
            for k, v in conf.items():
                f.write("%s = %s;\n" % (k, _lc(v)))
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(x for x in ("detect_leaks=1:halt_on_error=1:exitcode=86", asan_options,
                                                    env.get("ASAN_OPTIONS", "")) if x)
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:" + env.get("UBSAN_OPTIONS", "")
        self.err = open(self.errfile, "wb")
        self.proc = subprocess.Popen([t.bin, "-c", self.conffile], stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err, env=env,
                                     start_new_session=True)
        t.register_proc(self.proc)
        ok = wait_until(lambda: self.proc.poll() is not None or
                        any(r.get("msg", "").startswith("stsproxy ") and " started" in r.get("msg", "")
                            for r in self.records()), 8.0)
        if self.proc.poll() is not None or not ok:
            raise RuntimeError("stsproxy did not start (rc=%s): %s\nconfig:\n%s" % (
                self.proc.poll(), self.stderr()[-2000:], open(self.conffile).read()))

    # ---- log
    def records(self):
        out = []
        try:
            with open(self.logfile, "rb") as f:
                for raw in f:
                    try:
                        out.append(json.loads(raw))
                    except ValueError:
                        out.append({"type": "unparsed", "msg": raw.decode("latin-1")})
        except FileNotFoundError:
            pass
        return out

    def sessions(self):
        return [r for r in self.records() if r.get("type") == "session"]

    def events(self, name=None, session=None):
        return [r for r in self.records() if r.get("type") == "event"
                and (name is None or r.get("event") == name)
                and (session is None or r.get("session") == session)]

    def event_names(self, session=None):
        return [r.get("event") for r in self.events(session=session)]

    def log_lines(self, pattern=None):
        rx = re.compile(pattern) if pattern else None
        return [r.get("msg", "") for r in self.records() if r.get("type") in ("log", "unparsed")
                and (rx is None or rx.search(r.get("msg", "")))]

    def session_for(self, client, timeout=5.0):
        """The outcome record of the session that served `client` (waits for it)."""
        addr = client.addr if isinstance(client, Client) else client

        def find():
            for r in self.sessions():
                if r.get("client") == addr:
                    return r
            return None

        return wait_until(find, timeout)

    def session_id(self, client, timeout=3.0):
        """The id of the session serving `client`, from its first log line."""
        addr = client.addr if isinstance(client, Client) else client
        rx = re.compile(r"^session (\d+) client=%s " % re.escape(addr))

        def find():
            for m in self.log_lines():
                mm = rx.match(m)
                if mm:
                    return int(mm.group(1))
            return None

        return wait_until(find, timeout)

    def stderr(self):
        try:
            with open(self.errfile, "rb") as f:
                return f.read().decode("latin-1")
        except FileNotFoundError:
            return ""

    # ---- process
    def alive(self):
        return self.proc.poll() is None

    def status(self, key):
        """A /proc/PID/status value in kB (VmRSS, VmHWM)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def stop(self):
        """SIGTERM; assert exit 0 and a clean sanitizer report. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        t = self.t
        t.check(self.alive(), "%s still running at the end of the scenario" % self.name,
                "exit status %s; stderr: %s" % (self.proc.poll(), self.stderr()[-3000:]))
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(8.0)
        except subprocess.TimeoutExpired:
            open_sessions = self.log_lines(r"draining")
            t.fail("%s exits within 8 s of SIGTERM" % self.name, "still running; %s" % open_sessions[-1:])
            self.proc.send_signal(signal.SIGTERM)  # second signal: stop now
            try:
                rc = self.proc.wait(4.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(4.0)
        self.err.close()
        err = self.stderr()
        t.check(rc == 0, "%s exit status 0 after SIGTERM" % self.name, "rc=%s" % rc)
        bad = [l for l in err.splitlines() if SANITIZER_RE.search(l)]
        t.check(not bad, "%s: no ASan/UBSan/LSan report on stderr" % self.name,
                "\n" + err[-6000:] if bad else None)
        # one outcome record per session, never two
        ids = [r.get("session") for r in self.sessions()]
        t.check(len(ids) == len(set(ids)), "%s: at most one session record per session" % self.name,
                "ids %s" % ids)
        stopped = self.log_lines(r"^stsproxy stopped: (\d+) sessions")
        if stopped:
            n = int(re.search(r"(\d+) sessions", stopped[-1]).group(1))
            t.check(n == len(ids), "%s: every session (%d) has its outcome record" % (self.name, n),
                    "records for %s" % sorted(ids))
        else:
            t.fail("%s logged its 'stsproxy stopped' line" % self.name, err[-500:])


# ----------------------------------------------------------------------------
# scenario context and assertions


class ScenarioError(Exception):
    pass


class T:
    def __init__(self, runner, name, title):
        self.runner = runner
        self.name = name
        self.title = title
        self.pki = runner.pki
        self.bin = runner.bin
        self.dir = os.path.join(runner.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.passes = 0
        self.fails = 0
        self._seq = 0
        self.servers = []
        self.proxies = []
        self.clients = []
        self.t0 = time.monotonic()

    def seq(self):
        self._seq += 1
        return self._seq

    # ---- output
    def _out(self, tag, desc, detail=None):
        el = time.monotonic() - self.runner.t0
        print("[%6.1fs] %s: %s: %s" % (el, tag, self.name, desc), flush=True)
        if detail and (tag == "FAIL" or self.runner.verbose):
            for l in str(detail).splitlines()[:80]:
                print("            | " + l, flush=True)

    def note(self, msg):
        self._out("note", msg)

    def ok(self, desc, detail=None):
        self.passes += 1
        self._out("PASS", desc, detail)
        return True

    def fail(self, desc, detail=None):
        self.fails += 1
        self._out("FAIL", desc, detail)
        return False

    def check(self, cond, desc, detail=None):
        return self.ok(desc, detail) if cond else self.fail(desc, detail)

    def eq(self, got, want, desc):
        return self.check(got == want, "%s (= %r)" % (desc, want), "got %r" % (got,))

    def reply(self, r, want, desc):
        """Assert a reply matches: 250, "4" (class), "421", "4.7.5" (enhanced)."""
        wants = want if isinstance(want, (list, tuple)) else [want]
        good = r is not None and any(r.matches(w) for w in wants)
        return self.check(good, "%s: reply %s" % (desc, "/".join(str(w) for w in wants)),
                          "got %r" % (r,))

    def require(self, cond, desc, detail=None):
        if not self.check(cond, desc, detail):
            raise ScenarioError("required: " + desc)

    # ---- factories (torn down by cleanup)
    def server(self, **spec):
        s = FakeServer(self, **spec)
        self.servers.append(s)
        return s

    def proxy(self, upstream, **cfg):
        port = upstream.port if isinstance(upstream, FakeServer) else upstream
        p = Proxy(self, port, **cfg)
        self.proxies.append(p)
        return p

    def client(self, proxy, port=None):
        c = Client(self, port if port is not None else proxy.port)
        self.clients.append(c)
        return c

    def register_proc(self, proc):
        self.runner.procs.append(proc)

    # ---- common dialogue pieces
    def session_ok(self, px, c, desc="session record"):
        rec = px.session_for(c)
        self.check(rec is not None, "%s emitted for %s" % (desc, c.addr),
                   "records: %s" % px.sessions())
        return rec or {}

    def cleanup(self):
        for c in self.clients:
            c.close()
        for s in self.servers:
            s.stop()
        for p in self.proxies:
            try:
                p.stop()
            except Exception:
                self.fail("%s stop" % p.name, traceback.format_exc())


class Runner:
    def __init__(self, args):
        self.args = args
        self.verbose = args.verbose
        self.bin = args.bin
        self.t0 = time.monotonic()
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="stsproxy-dialogue-")
        self.pki = None

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                    p.wait(2)
                except Exception:
                    pass

    def scenarios(self):
        files = sorted(glob.glob(os.path.join(HERE, "scenarios", "s[0-9]*.py")))
        out = []
        for f in files:
            name = os.path.basename(f)[:-3]
            if self.args.only and not any(o in name for o in self.args.only):
                continue
            spec = importlib.util.spec_from_file_location("scenario_" + name, f)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            out.append((name, mod))
        return out

    def run(self):
        self.pki = Pki(self.dir)
        results = []
        for name, mod in self.scenarios():
            t = T(self, name, getattr(mod, "TITLE", name))
            print("\n[%6.1fs] == %s: %s" % (time.monotonic() - self.t0, name, t.title), flush=True)
            try:
                mod.run(t)
            except ScenarioError as e:
                t.fail("scenario stopped early", str(e))
            except Exception:
                t.fail("scenario raised", traceback.format_exc())
            finally:
                try:
                    t.cleanup()
                except Exception:
                    t.fail("cleanup raised", traceback.format_exc())
            dt = time.monotonic() - t.t0
            budget = getattr(mod, "BUDGET", 12.0)
            if dt > budget:
                # Not a failure: every wait has its own bound and the whole
                # file has a watchdog; a slow, loaded machine is not a bug.
                t.note("SLOW: scenario took %.1fs (budget %.0fs)" % (dt, budget))
            results.append((name, t.title, t.passes, t.fails, dt))
        print("\n== summary (%.1fs)" % (time.monotonic() - self.t0))
        nf = 0
        for name, title, p, f, dt in results:
            nf += f
            print("  %-4s %-28s %3d passed %3d failed %5.1fs  %s" % ("ok" if f == 0 else "FAIL", name, p, f, dt, title))
        return 1 if nf or not results else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.environ.get("STSPROXY_BIN"))
    ap.add_argument("--only", action="append", default=[], help="run scenarios whose file name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs, certs)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if not args.bin or not os.access(args.bin, os.X_OK):
        print("SKIP: no stsproxy binary (set STSPROXY_BIN or --bin): %r" % args.bin)
        return 77
    if shutil.which("openssl") is None:
        print("SKIP: openssl(1) not found")
        return 77
    r = Runner(args)
    atexit.register(r.kill_all)

    def on_signal(signum, frame):
        r.kill_all()
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        rc = r.run()
    finally:
        r.kill_all()
        if args.keep or os.environ.get("IT_KEEP"):
            print("kept: %s" % r.dir)
        else:
            shutil.rmtree(r.dir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    # Scenarios "from dialogue import ..." must get this module, not a second
    # copy (the CLOSE/SILENT/STALL markers are compared by identity).
    sys.modules.setdefault("dialogue", sys.modules["__main__"])
    sys.exit(main())
