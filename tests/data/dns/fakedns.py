#!/usr/bin/python3
"""fakedns: a small authoritative DNS server for stsproxy's unit tests.

Serves zone.txt (master-file syntax) plus generated and misbehaving names
over UDP and TCP on 127.0.0.1 (and [::1] when available), on one port that
is chosen by the kernel unless --port is given. On start-up it prints

    PORT <port>
    PORT6 <port>            (only when ::1 could be bound)
    BLACKHOLES <p1> <p2>... (only with --blackholes N: UDP ports that never answer)
    READY

on stdout and then serves until killed. Loopback only.

Names with special behaviour (at the name or below it unless noted):
    servfail.test, dead.partial.test   SERVFAIL
    refused.test                       REFUSED
    notimp.test                        NOTIMP
    formerr.test                       FORMERR
    timeout.test                       never answered
    garbage.test                       header says 3 answers, the answer is cut short
    junk.test                          right ID, then random bytes
    short.test                         7 bytes
    slow.test                          answered after 0.4 s
    halfslow.test                      AAAA answered after 0.4 s (not at or below)
    30.0.0.127.in-addr.arpa            answered after 0.4 s
    halfok.test, halftemp.test         A is SERVFAIL (AAAA from the zone)
    halfbad.test                       A is garbage
    huge.test                          200 MX records (needs TCP)
    mxNNN.huge.test                    A 127.2.x.y
    manytxt.test                       40 TXT records
    bigtxt.test                        one TXT record of 200 strings x 200 bytes (needs TCP)
    lots.test                          MX lots.test, 40 A and 40 AAAA
    nN.many.test                       A 127.1.x.y, AAAA 2001:db8:1::N
    badmx.test                         MX with names that are not host names, and one good one
    allbad.test                        only MX records with bad names
    longmx.test                        MX whose name is longer than DNS allows
"""

import argparse
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time

from dnslib import AAAA, A, DNSHeader, DNSRecord, MX, QTYPE, RCODE, RR, TXT

UDP_MAX = 512
SLOW_DELAY = 0.4


def under(qname, domain):
    return qname == domain or qname.endswith("." + domain)


class Zone:
    def __init__(self, path):
        self.records = {}
        with open(path, encoding="utf-8") as f:
            for rr in RR.fromZone(f.read()):
                name = str(rr.rname).lower().rstrip(".")
                self.records.setdefault(name, []).append(rr)

    def lookup(self, qname, qtype):
        """Return (rcode, answer RRs), following CNAMEs inside the zone."""
        answers = []
        name = qname
        for _ in range(8):
            rrs = self.records.get(name)
            if rrs is None:
                break
            match = [rr for rr in rrs if rr.rtype == qtype]
            if match:
                answers += match
                break
            cnames = [rr for rr in rrs if rr.rtype == QTYPE.CNAME]
            if not cnames or qtype == QTYPE.CNAME:
                break
            answers += cnames
            name = str(cnames[0].rdata.label).lower().rstrip(".")
        if not answers and qname not in self.records:
            return RCODE.NXDOMAIN, []
        return RCODE.NOERROR, answers


def generated(qname, qtype):
    """Answers for generated names, or None when qname is not one of them."""
    rr = []
    if qname == "huge.test":
        if qtype == QTYPE.MX:
            for i in range(200):
                rr.append(RR(qname, QTYPE.MX, ttl=60,
                             rdata=MX("mx%03d.huge.test" % i, (199 - i) // 4)))
        return rr
    m = re.fullmatch(r"mx(\d{3})\.huge\.test", qname)
    if m:
        i = int(m.group(1))
        if qtype == QTYPE.A:
            rr.append(RR(qname, QTYPE.A, ttl=60, rdata=A("127.2.%d.%d" % (i >> 8, i & 255))))
        return rr
    if qname == "manytxt.test":
        if qtype == QTYPE.TXT:
            for i in range(40):
                rr.append(RR(qname, QTYPE.TXT, ttl=60, rdata=TXT("rec%02d" % i)))
        return rr
    if qname == "bigtxt.test":
        if qtype == QTYPE.TXT:
            parts = [chr(ord("a") + k % 26) * 200 for k in range(200)]
            rr.append(RR(qname, QTYPE.TXT, ttl=60, rdata=TXT(parts)))
        return rr
    if qname == "lots.test":
        if qtype == QTYPE.MX:
            rr.append(RR(qname, QTYPE.MX, ttl=60, rdata=MX("lots.test", 10)))
        elif qtype == QTYPE.A:
            for i in range(1, 41):
                rr.append(RR(qname, QTYPE.A, ttl=60, rdata=A("127.3.0.%d" % i)))
        elif qtype == QTYPE.AAAA:
            for i in range(1, 41):
                rr.append(RR(qname, QTYPE.AAAA, ttl=60, rdata=AAAA("2001:db8:3::%x" % i)))
        return rr
    m = re.fullmatch(r"n(\d+)\.many\.test", qname)
    if m:
        i = int(m.group(1))
        if qtype == QTYPE.A:
            rr.append(RR(qname, QTYPE.A, ttl=60, rdata=A("127.1.%d.%d" % (i >> 8, i & 255))))
        elif qtype == QTYPE.AAAA:
            rr.append(RR(qname, QTYPE.AAAA, ttl=60, rdata=AAAA("2001:db8:1::%x" % i)))
        return rr
    if qname == "ok.badmx.test":
        if qtype == QTYPE.A:
            rr.append(RR(qname, QTYPE.A, ttl=60, rdata=A("127.0.0.40")))
        return rr
    return None


def wire_name(labels):
    return b"".join(bytes([len(lab)]) + lab for lab in labels) + b"\0"


# MX answers with exchange names that are not host names, written on the wire
# by hand because dnslib refuses to encode some of them.
RAW_MX = {
    "badmx.test": [
        (10, [b"we ird", b"badmx", b"test"]),
        (11, [b"ctl\x01\xff", b"badmx", b"test"]),
        (12, [b"dot.inside", b"badmx", b"test"]),
        (13, [b"back\\slash", b"badmx", b"test"]),
        (14, [b"*", b"badmx", b"test"]),
        (50, [b"OK", b"BadMX", b"test"]),
    ],
    "allbad.test": [(10, [b"we ird", b"test"])],
    "longmx.test": [(10, [b"b" * 63] * 4 + [b"test"])],
}


def raw_mx(reply, records):
    """The reply followed by MX records whose owner is the question name."""
    data = bytearray(reply.pack())
    struct.pack_into("!H", data, 6, len(records))
    for pref, labels in records:
        rdata = struct.pack("!H", pref) + wire_name(labels)
        data += b"\xc0\x0c" + struct.pack("!HHIH", QTYPE.MX, 1, 60, len(rdata)) + rdata
    return bytes(data)


def garbage(reply):
    """A reply whose header promises three answers but whose answer is cut."""
    data = bytearray(reply.pack())
    struct.pack_into("!H", data, 6, 3)
    return bytes(data) + b"\xc0\x0c\x00\x0f\x00"


class Server:
    def __init__(self, zone, verbose):
        self.zone = zone
        self.verbose = verbose

    def answer(self, data, udp):
        """Return (delay in seconds, reply bytes or None to stay silent)."""
        try:
            req = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - a test server answers nothing to junk
            return 0.0, None
        qname = str(req.q.qname).lower().rstrip(".")
        qtype = req.q.qtype
        if self.verbose:
            print("query %s %s %s" % ("udp" if udp else "tcp", qname, QTYPE[qtype]),
                  file=sys.stderr, flush=True)
        delay = 0.0
        if under(qname, "slow.test") or qname == "30.0.0.127.in-addr.arpa" or (
                qname == "halfslow.test" and qtype == QTYPE.AAAA):
            delay = SLOW_DELAY
        return delay, self.reply(req, data, qname, qtype, udp)

    def reply(self, req, data, qname, qtype, udp):
        """The reply bytes for one query, or None to stay silent."""
        reply = req.reply()
        reply.header.aa = 1

        if under(qname, "timeout.test"):
            return None
        if under(qname, "servfail.test") or qname == "dead.partial.test" or (
                qname in ("halfok.test", "halftemp.test") and qtype == QTYPE.A):
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        if under(qname, "refused.test"):
            reply.header.rcode = RCODE.REFUSED
            return reply.pack()
        if under(qname, "notimp.test"):
            reply.header.rcode = RCODE.NOTIMP
            return reply.pack()
        if under(qname, "formerr.test"):
            reply.header.rcode = RCODE.FORMERR
            return reply.pack()
        if under(qname, "garbage.test") or (qname == "halfbad.test" and qtype == QTYPE.A):
            return garbage(reply)
        if under(qname, "junk.test"):
            return data[:2] + bytes(random.getrandbits(8) for _ in range(40))
        if under(qname, "short.test"):
            return data[:2] + b"\x81\x80\x00\x01\x00"

        if qname in RAW_MX and qtype == QTYPE.MX:
            return raw_mx(reply, RAW_MX[qname])
        answers = generated(qname, qtype)
        if answers is None:
            rcode, answers = self.zone.lookup(qname, qtype)
            reply.header.rcode = rcode
        for rr in answers:
            reply.add_answer(rr)
        packed = reply.pack()
        if udp and len(packed) > UDP_MAX:
            # Too big for UDP without EDNS: truncated, the question kept so
            # the client recognises it, and the client retries over TCP.
            tc = DNSRecord(DNSHeader(id=req.header.id, qr=1, aa=1, ra=1, tc=1,
                                     rd=req.header.rd), q=req.q)
            return tc.pack()
        return packed


def make_handlers(server):
    class UDPHandler(socketserver.BaseRequestHandler):
        # Answered inline, delayed ones from a timer thread: a thread per
        # datagram is too slow for a burst of hundreds of queries.
        def handle(self):
            data, sock = self.request
            delay, out = server.answer(data, True)
            if out is None:
                return
            if delay:
                threading.Timer(delay, sock.sendto, (out, self.client_address)).start()
            else:
                sock.sendto(out, self.client_address)

    class TCPHandler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            while True:
                head = self.recv_exact(sock, 2)
                if head is None:
                    return
                (n,) = struct.unpack("!H", head)
                data = self.recv_exact(sock, n)
                if data is None:
                    return
                delay, out = server.answer(data, False)
                time.sleep(delay)
                if out is not None:
                    sock.sendall(struct.pack("!H", len(out)) + out)

        @staticmethod
        def recv_exact(sock, n):
            buf = b""
            while len(buf) < n:
                chunk = sock.recv(n - len(buf))
                if not chunk:
                    return None
                buf += chunk
            return buf

    return UDPHandler, TCPHandler


class UDP4(socketserver.UDPServer):
    allow_reuse_address = True

    def server_bind(self):
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        super().server_bind()


class TCP4(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class UDP6(UDP4):
    address_family = socket.AF_INET6


class TCP6(TCP4):
    address_family = socket.AF_INET6


def bind_pair(udp_cls, tcp_cls, host, port, handlers):
    """Bind UDP and TCP on the same port; with port 0 retry until both fit."""
    for _ in range(50):
        udp = udp_cls((host, port), handlers[0])
        chosen = udp.server_address[1]
        try:
            tcp = tcp_cls((host, chosen), handlers[1])
        except OSError:
            udp.server_close()
            if port:
                raise
            continue
        return udp, tcp, chosen
    raise OSError("no free port for UDP and TCP")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("zone")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--blackholes", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    server = Server(Zone(args.zone), args.verbose)
    handlers = make_handlers(server)
    servers = []
    udp, tcp, port = bind_pair(UDP4, TCP4, "127.0.0.1", args.port, handlers)
    servers += [udp, tcp]
    lines = ["PORT %d" % port]
    try:
        udp6, tcp6, port6 = bind_pair(UDP6, TCP6, "::1", 0, handlers)
        servers += [udp6, tcp6]
        lines.append("PORT6 %d" % port6)
    except OSError:
        pass
    holes = []
    for _ in range(args.blackholes):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        holes.append(s)
    if holes:
        lines.append("BLACKHOLES " + " ".join(str(s.getsockname()[1]) for s in holes))

    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("\n".join(lines + ["READY"]), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
