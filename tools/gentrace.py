#!/usr/bin/env python3
# Usage: gentrace.py --packets N [--flows F] [--seed S] [--ipv6-fraction X] [--snaplen L]
#                    [--rate-pps R] [--format pcap|pcapng] [--nanosecond] [--bulk-fraction B]
#                    [--net4 CIDR] [--net6 CIDR] [--start-time EPOCH] --out FILE
# Origin: copied unchanged from the project's shared tool /work/shared/tools/gentrace.py
"""gentrace.py - deterministic synthetic Ethernet packet trace generator (python3 stdlib only).

Writes a classic pcap (default) or pcapng (--format pcapng, or an --out name ending in
.pcapng) of exactly --packets packets. Same arguments + same --seed => byte-identical file.

The traffic model, meant to look like a tapped campus uplink:
  * --flows flows (default packets/16) of kinds: TCP (55%), TCP SYN scans (8%), DNS (20%),
    QUIC-like UDP/443 (7%), other UDP (5%), ICMP echo (5%); --ipv6-fraction of them IPv6.
  * heavy-tailed flow sizes: TCP/QUIC/UDP sizes are Pareto (alpha 1.2) scaled so the total
    is exactly --packets, capped at 2.5% of the trace per flow; DNS/ICMP/scans are small.
  * TCP flows have a 3-way handshake, consistent seq/ack numbers, SYN options, data and a
    FIN/FIN/ACK close (flows shorter than 6 packets end in RST or are bare SYN probes).
  * packet sizes are bimodal: 54-90 B (ACKs, SYNs, DNS queries) and ~1500 B (MSS data),
    with a minority of medium packets (request/response, DNS answers, RTP-like UDP).
    --bulk-fraction sets the share of larger TCP flows that are bulk transfers and so
    moves the mean packet size (default 0.3 gives ~410 B mean; 0.2 ~380, 0.4 ~440).
  * addresses: a local site (a /16, a /20 and a /22) talks to ~4000 remote prefixes
    (/12../24) with Zipf-popular servers; remote clients/scanners are drawn fresh, so there
    are many distinct addresses. IPv6 similar (/32../48 remote, a /48 local).
    --net4/--net6 CIDR force every address into that prefix (host bits kept), e.g. to replay
    on a private veth pair with only addresses you own.
  * IPv4 header, TCP, UDP and ICMP/ICMPv6 checksums are all correct (computed over the full
    packet even when --snaplen truncates what is stored).
  * packets are ordered by per-flow schedules (flows overlap in time); timestamps form a
    Poisson process at --rate-pps starting at --start-time (default 2024-01-01 00:00:00 UTC).
"""
import argparse
import ipaddress
import math
import random
import struct
import sys
import time

FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
K_TCP, K_SCAN, K_DNS, K_QUIC, K_UDP, K_ICMP = range(6)
KIND_W = (0.55, 0.08, 0.20, 0.07, 0.05, 0.05)
ST_DOWN, ST_UP, ST_INTER, ST_RR = range(4)

# per-flow record (a list) field indexes; fields ending in 0/1 are per direction
# (0 = client->server, 1 = server->client)
(POS, SIZE, KIND, STYLE, V6, SEQ0, SEQ1, IPID0, IPID1, ETH0, ETH1, AP0, AP1, IPS0, IPS1,
 L4S0, L4S1, TTL0, TTL1, WIN0, WIN1, P1, P2, P3, CLOSER, FLOWLBL) = range(26)
NFIELDS = 26

RESERVED4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3")]
RES4 = [(int(n.network_address), int(n.broadcast_address)) for n in RESERVED4]

SYNOPT = bytes([2, 4, 5, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2])  # MSS 1460, NOP, WS 7, NOP NOP, SACKOK
SYNOPT_SUM = sum(struct.unpack("!6H", SYNOPT))
SERVER_TCP = [(443, 50), (80, 15), (22, 3), (25, 2), (993, 2), (8080, 2), (3389, 1), (5222, 1),
              (8443, 2), (21, 1), (110, 1), (143, 1), (587, 1), (1935, 1), (5228, 1)]
UDP_PORTS = [(5004, 3), (3478, 2), (1194, 2), (500, 1), (4500, 2), (27015, 1), (5060, 1),
             (19302, 1), (9987, 1), (161, 1)]
DNS_NAMES = ["www", "mail", "api", "cdn", "static", "login", "updates", "img", "video", "ntp",
             "time", "ocsp", "push", "edge", "m", "docs", "s3", "chat", "ads", "dl"]
DNS_DOMS = ["example.com", "example.net", "example.org", "test.invalid", "campus.example.edu",
            "cdn.example", "video.example.net", "cloud.example.org", "mirror.example.com"]


# Checksums: for a sum s of 16-bit words, the ones'-complement checksum is (-s) % 0xffff
# (0x0000, never 0xffff, as Wireshark expects for IP/TCP/ICMP); UDP sends a computed 0 as
# 0xffff, i.e. 0xffff - s % 0xffff.


def words_sum(b):
    if len(b) & 1:
        b = b + b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def parse_args(argv):
    p = argparse.ArgumentParser(description="deterministic synthetic pcap/pcapng generator",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--packets", type=int, required=True)
    p.add_argument("--flows", type=int, default=0, help="0 = packets/16")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ipv6-fraction", type=float, default=0.1)
    p.add_argument("--snaplen", type=int, default=262144)
    p.add_argument("--rate-pps", type=float, default=500000.0)
    p.add_argument("--format", choices=("pcap", "pcapng"), default=None,
                   help="default: pcapng if --out ends in .pcapng, else pcap")
    p.add_argument("--nanosecond", action="store_true", help="ns timestamps (pcap magic a1b23c4d)")
    p.add_argument("--bulk-fraction", type=float, default=0.3)
    p.add_argument("--net4", default=None, help="map every IPv4 address into this CIDR")
    p.add_argument("--net6", default=None, help="map every IPv6 address into this CIDR")
    p.add_argument("--start-time", type=float, default=1704067200.0)
    p.add_argument("--out", required=True)
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.packets < 1:
        p.error("--packets must be >= 1")
    if a.flows <= 0:
        a.flows = max(1, a.packets // 16)
    if a.flows > a.packets:
        a.flows = a.packets
    if not 0.0 <= a.ipv6_fraction <= 1.0:
        p.error("--ipv6-fraction must be in [0,1]")
    if a.snaplen < 1:
        p.error("--snaplen must be >= 1")
    if a.format is None:
        a.format = "pcapng" if a.out.endswith(".pcapng") else "pcap"
    return a


class AddrGen:
    def __init__(self, rng, nflows, net4, net6):
        self.rng = rng
        self.net4 = ipaddress.ip_network(net4, strict=False) if net4 else None
        self.net6 = ipaddress.ip_network(net6, strict=False) if net6 else None
        r = rng
        # local site: a /16, a /20, a /22
        self.local4 = [self._pfx4(16), self._pfx4(20), self._pfx4(22)]
        self.local4_w = [0.6, 0.3, 0.1]
        self.remote4 = [self._pfx4(r.choice((12, 14, 16, 16, 18, 19, 20, 21, 22, 22, 23, 24, 24, 24,
                                              24, 24))) for _ in range(4000)]
        self.local6 = self._pfx6(48)
        self.remote6 = [self._pfx6(r.choice((32, 32, 36, 40, 44, 48, 48))) for _ in range(1500)]
        # popular remote servers (Zipf over a pool) and local hosts (Zipf, flatter)
        nsrv = max(256, nflows // 6)
        self.srv4 = [self._host4(r.choice(self.remote4)) for _ in range(nsrv)]
        self.srv6 = [self._host6(r.choice(self.remote6), server=True) for _ in range(max(64, nsrv // 4))]
        nloc = max(64, nflows // 25)
        self.loc4 = [self._host4(r.choices(self.local4, self.local4_w)[0]) for _ in range(nloc)]
        self.loc6 = [self._host6(self.local6, server=False) for _ in range(max(32, nloc // 4))]
        self.srv4_cw = self._zipf_cw(len(self.srv4), 1.0)
        self.srv6_cw = self._zipf_cw(len(self.srv6), 1.0)
        self.loc4_cw = self._zipf_cw(len(self.loc4), 0.7)
        self.loc6_cw = self._zipf_cw(len(self.loc6), 0.7)
        self.scanners4 = [self._host4(r.choice(self.remote4)) for _ in range(40)]

    @staticmethod
    def _zipf_cw(n, s):
        cw, acc = [], 0.0
        for i in range(1, n + 1):
            acc += 1.0 / i ** s
            cw.append(acc)
        return cw

    def _pfx4(self, plen):
        r = self.rng
        while True:
            base = r.getrandbits(32) & ~((1 << (32 - plen)) - 1) & 0xffffffff
            end = base | ((1 << (32 - plen)) - 1)
            if all(end < lo or base > hi for lo, hi in RES4):
                return (base, plen)

    def _pfx6(self, plen):
        r = self.rng
        top = r.choice((0x2001, 0x2003, 0x2400 + r.randrange(16), 0x2600 + r.randrange(16),
                        0x2800 + r.randrange(16), 0x2a00 + r.randrange(16), 0x2c0f))
        while True:
            second = r.getrandbits(16)
            if not (top == 0x2001 and (second == 0x0db8 or second < 0x0200)):
                break
        rest = r.getrandbits(96)
        val = (top << 112) | (second << 96) | rest
        val &= ~((1 << (128 - plen)) - 1) & ((1 << 128) - 1)
        return (val, plen)

    def _host4(self, pfx):
        base, plen = pfx
        hb = 32 - plen
        while True:
            h = self.rng.getrandbits(hb)
            low = h & 0xff
            if 0 < low < 255:
                break
        a = base | h
        if self.net4 is not None:
            m = (1 << (32 - self.net4.prefixlen)) - 1
            a = int(self.net4.network_address) | (a & m)
            if m >= 3 and (a & m) in (0, m):
                a ^= 1 if (a & m) == 0 else 2
        return a.to_bytes(4, "big")

    def _host6(self, pfx, server):
        base, plen = pfx
        r = self.rng
        subnet = r.getrandbits(64 - plen) << 64 if plen < 64 else 0
        iid = r.randrange(1, 4096) if server and r.random() < 0.5 else r.getrandbits(64)
        a = base | subnet | iid
        if self.net6 is not None:
            m = (1 << (128 - self.net6.prefixlen)) - 1
            a = int(self.net6.network_address) | (a & m)
            if (a & m) == 0:
                a |= 1
        return a.to_bytes(16, "big")

    def server(self, v6):
        if v6:
            return self.rng.choices(self.srv6, cum_weights=self.srv6_cw)[0]
        return self.rng.choices(self.srv4, cum_weights=self.srv4_cw)[0]

    def local(self, v6):
        if v6:
            return self.rng.choices(self.loc6, cum_weights=self.loc6_cw)[0]
        return self.rng.choices(self.loc4, cum_weights=self.loc4_cw)[0]

    def fresh_remote(self, v6):
        if v6:
            return self._host6(self.rng.choice(self.remote6), server=False)
        return self._host4(self.rng.choice(self.remote4))

    def fresh_local(self, v6):
        if v6:
            return self._host6(self.local6, server=False)
        return self._host4(self.rng.choices(self.local4, self.local4_w)[0])

    def scanner(self):
        return self.rng.choice(self.scanners4)


def wchoice(rng, pairs):
    tot = sum(w for _, w in pairs)
    x = rng.random() * tot
    for v, w in pairs:
        x -= w
        if x < 0:
            return v
    return pairs[-1][0]


def dns_payloads(rng):
    name = rng.choice(DNS_NAMES) + str(rng.randrange(100)) + "." + rng.choice(DNS_DOMS)
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    tid = rng.getrandbits(16)
    qtype = rng.choice((1, 1, 1, 28, 28, 65))
    q = struct.pack("!HHHHHH", tid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)
    nans = rng.choice((1, 1, 1, 2, 3, 4, 6))
    rr = b""
    for _ in range(nans):
        if qtype == 28:
            rr += struct.pack("!HHHIH", 0xc00c, 28, 1, rng.randrange(30, 86400), 16) + \
                rng.getrandbits(128).to_bytes(16, "big")
        elif qtype == 65:
            rr += struct.pack("!HHHIH", 0xc00c, 1, 1, rng.randrange(30, 86400), 4) + \
                rng.getrandbits(32).to_bytes(4, "big")
        else:
            rr += struct.pack("!HHHIH", 0xc00c, 1, 1, rng.randrange(30, 86400), 4) + \
                rng.getrandbits(32).to_bytes(4, "big")
    resp = struct.pack("!HHHHHH", tid, 0x8180, 1, nans, 0, 0) + qname + \
        struct.pack("!HH", qtype, 1) + rr
    return q, resp


def build_flows(a, rng):
    N, F = a.packets, a.flows
    ag = AddrGen(rng, F, a.net4, a.net6)
    kinds_cw = []
    acc = 0.0
    for w in KIND_W:
        acc += w
        kinds_cw.append(acc)
    flows = []
    heavy = []          # (fid, raw, min)
    fixed_total = 0
    routers = [(bytes([0x02, 0x1a, 0x2b, rng.getrandbits(8), rng.getrandbits(8), 2 * i]),
                bytes([0x02, 0x5c, 0x6d, rng.getrandbits(8), rng.getrandbits(8), 2 * i + 1]))
               for i in range(4)]
    pv = rng.paretovariate
    for fid in range(F):
        f = [0] * NFIELDS
        kind = rng.choices(range(6), cum_weights=kinds_cw)[0]
        v6 = rng.random() < a.ipv6_fraction
        if kind == K_SCAN and v6:
            kind = K_TCP
        f[KIND], f[V6] = kind, v6
        inbound = False
        if kind == K_SCAN:
            cli, srv = ag.scanner(), ag.fresh_local(False)
            sport, dport = rng.randrange(1024, 65536), rng.randrange(1, 65536)
            size = 1 if rng.random() < 0.7 else 2
            inbound = True
        elif kind == K_TCP:
            inbound = rng.random() < 0.13
            if inbound:
                cli, srv = ag.fresh_remote(v6), ag.local(v6)
                dport = wchoice(rng, [(443, 5), (22, 3), (80, 3), (25, 2)])
            else:
                cli, srv = ag.local(v6), ag.server(v6)
                dport = wchoice(rng, SERVER_TCP)
            sport = rng.randrange(32768, 61000)
            size = None
        elif kind == K_DNS:
            cli, srv = ag.local(v6), ag.server(v6)
            sport, dport = rng.randrange(1024, 65536), 53
            x = rng.random()
            size = 2 if x < 0.85 else (1 if x < 0.9 else 4)
        elif kind == K_QUIC:
            cli, srv = ag.local(v6), ag.server(v6)
            sport, dport = rng.randrange(32768, 61000), 443
            size = None
        elif kind == K_UDP:
            cli, srv = ag.local(v6), (ag.server(v6) if rng.random() < 0.5 else ag.fresh_remote(v6))
            if rng.random() < 0.25:
                cli, srv = srv, cli
                inbound = True
            sport, dport = rng.randrange(1024, 65536), wchoice(rng, UDP_PORTS)
            if rng.random() < 0.15:
                sport = dport = 123
            size = None
        else:  # ICMP echo
            inbound = rng.random() < 0.3
            cli, srv = (ag.fresh_remote(v6), ag.local(v6)) if inbound else (ag.local(v6), ag.server(v6))
            sport, dport = rng.getrandbits(16), 0
            size = rng.randint(1, 8)
        # heavy-tailed sizes decided later
        if size is None:
            if kind == K_TCP:
                mn = 6 if rng.random() < 0.93 else 3
                heavy.append((fid, pv(1.2), mn))
            elif kind == K_QUIC:
                heavy.append((fid, pv(1.2), 4))
            else:
                heavy.append((fid, pv(1.0), 2))
            f[SIZE] = 0
        else:
            f[SIZE] = size
            fixed_total += size
        # L2: a tap between a local router (lr) and an upstream router (ur)
        lr, ur = routers[rng.randrange(4)]
        if inbound:
            f[ETH0], f[ETH1] = lr + ur, ur + lr     # dst MAC, src MAC
        else:
            f[ETH0], f[ETH1] = ur + lr, lr + ur
        f[ETH0] += (b"\x86\xdd" if v6 else b"\x08\x00")
        f[ETH1] += (b"\x86\xdd" if v6 else b"\x08\x00")
        proto = (58 if v6 else 1) if kind == K_ICMP else (17 if kind in (K_DNS, K_QUIC, K_UDP) else 6)
        if kind == K_ICMP:
            f[AP0], f[AP1] = cli + srv, srv + cli
        else:
            f[AP0] = cli + srv + struct.pack("!HH", sport, dport)
            f[AP1] = srv + cli + struct.pack("!HH", dport, sport)
        asum = words_sum(cli + srv)
        psum = sport + dport
        # TTL/hop limit: local side near (63/64), remote side after 8..25 hops
        rttl = rng.choice((64, 64, 128, 255, 64)) - rng.randrange(8, 26)
        lttl = rng.choice((64, 64, 128)) - 1
        f[TTL0], f[TTL1] = (rttl, lttl) if inbound else (lttl, rttl)
        f[WIN0], f[WIN1] = rng.choice((502, 501, 2048, 64240, 1026)), rng.choice((501, 285, 1040, 65535, 8192))
        if not v6:
            for d in (0, 1):
                f[IPS0 + d] = 0x4500 + 0x4000 + ((f[TTL0 + d] << 8) | proto) + asum
        else:
            f[FLOWLBL] = 0x60000000 | rng.getrandbits(20)
        if kind == K_ICMP:
            ident = sport
            f[P1] = ident
            if v6:
                f[L4S0] = asum + 58 + (128 << 8) + ident
                f[L4S1] = asum + 58 + (129 << 8) + ident
            else:
                f[L4S0] = (8 << 8) + ident
                f[L4S1] = ident
        else:
            base = asum + proto + psum
            f[L4S0] = base + (f[WIN0] if proto == 6 else 0)
            f[L4S1] = base + (f[WIN1] if proto == 6 else 0)
        f[SEQ0], f[SEQ1] = rng.getrandbits(32), rng.getrandbits(32)
        f[IPID0], f[IPID1] = rng.getrandbits(16), rng.getrandbits(16)
        f[CLOSER] = 0 if rng.random() < 0.6 else 1
        if kind == K_DNS:
            q, resp = dns_payloads(rng)
            f[P1], f[P2] = q, resp
            f[P3] = (words_sum(q), words_sum(resp))
        elif kind == K_QUIC:
            f[P1] = rng.choice((1252, 1350, 1232, 1280))   # server datagram payload
            f[P2] = rng.randrange(25, 60)                    # client ack datagram payload
        elif kind == K_UDP:
            f[P1] = 48 if dport == 123 else rng.choice((172, 172, 92, 214, 60, 120, 320, 1100))
        flows.append(f)

    # scale heavy-tailed flow sizes so the total is exactly N
    budget = N - fixed_total
    if heavy:
        minsum = sum(m for _, _, m in heavy)
        if budget < minsum:
            sys.exit("gentrace: too many flows for %d packets; use --flows <= %d" % (N, max(1, N // 12)))
        cap = max(1000, N // 40)

        def total(sc):
            return sum(min(cap, max(m, int(r * sc + 0.5))) for _, r, m in heavy)
        lo, hi = 0.0, 1.0
        while total(hi) < budget and hi < 1e12:
            hi *= 2.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if total(mid) < budget:
                lo = mid
            else:
                hi = mid
        sc = lo
        sizes = [min(cap, max(m, int(r * sc + 0.5))) for _, r, m in heavy]
        diff = budget - sum(sizes)
        order = list(range(len(heavy)))
        rng.shuffle(order)
        i = 0
        while diff != 0 and i < 10 * len(order) + 10:
            j = order[i % len(order)]
            if diff > 0 and sizes[j] < cap:
                sizes[j] += 1
                diff -= 1
            elif diff < 0 and sizes[j] > heavy[j][2]:
                sizes[j] -= 1
                diff += 1
            i += 1
        if diff > 0:      # everything at cap: put the rest in one flow
            sizes[order[0]] += diff
        elif diff < 0:
            sys.exit("gentrace: cannot fit flows into %d packets; lower --flows" % N)
        for (fid, _, _), s in zip(heavy, sizes):
            flows[fid][SIZE] = s
    elif budget != 0:
        # only fixed-size flows: trim/extend the last ones
        fid = 0
        while budget > 0:
            flows[fid % F][SIZE] += 1
            budget -= 1
            fid += 1
        fid = 0
        while budget < 0:
            if flows[fid % F][SIZE] > 1:
                flows[fid % F][SIZE] -= 1
                budget += 1
            fid += 1

    # TCP styles (by size): bulk download/upload, request-response, interactive
    for f in flows:
        if f[KIND] != K_TCP:
            continue
        s = f[SIZE]
        x = rng.random()
        if s >= 20 and x < a.bulk_fraction:
            f[STYLE] = ST_DOWN if rng.random() < 0.85 else ST_UP
        elif x < a.bulk_fraction + (1 - a.bulk_fraction) * 0.6:
            f[STYLE] = ST_RR
        else:
            f[STYLE] = ST_INTER
        f[P1] = rng.randrange(60, 600)                     # request size
        f[P2] = 1440 if f[V6] else 1460                    # MSS payload
        if f[STYLE] == ST_RR:
            f[P3] = math.log(f[P2] / 80.0)                 # response: log-uniform 80..MSS
        else:
            f[P3] = rng.randrange(1, f[P2] + 1)            # last data segment
    return flows, ag


def schedule(a, rng, flows):
    """return the flow id of each packet, in time order (list of ints, as sort keys)."""
    N, F = a.packets, len(flows)
    D = N / a.rate_pps
    Q = float(1 << 32) / D
    fb = max(1, (F - 1).bit_length())
    keys = []
    ext = keys.extend
    lnv = rng.lognormvariate
    rnd = rng.random
    ln200 = math.log(200.0)
    for fid, f in enumerate(flows):
        s = f[SIZE]
        if s <= 0:
            continue
        r = lnv(ln200, 1.5)
        if r < 1.0:
            r = 1.0
        dur = (s - 1) / r if s > 1 else 0.0
        if dur > 0.9 * D:
            dur = 0.9 * D * (0.5 + 0.5 * rnd())
        start = rnd() * (D - dur)
        sq = int(start * Q)
        dq = max(1, int(dur * Q / (s - 1))) if s > 1 else 1
        base = (sq << fb) | fid
        step = dq << fb
        ext(range(base, base + s * step, step))
    keys.sort()
    return keys, (1 << fb) - 1


def write_trace(a, rng, flows, keys, fmask, out):
    N = a.packets
    snap = a.snaplen
    ns = a.nanosecond
    pcapng = a.format == "pcapng"
    # payload pool with prefix sums of big-endian 16-bit words
    POOLB = 65536 + 4096
    pool = bytes(rng.getrandbits(8) for _ in range(POOLB))
    poolmv = memoryview(pool)
    words = struct.unpack("!%dH" % (POOLB // 2), pool)
    pfx = [0] * (len(words) + 1)
    acc = 0
    for i, w in enumerate(words):
        acc += w
        pfx[i + 1] = acc
    CHUNK = 32 << 20
    buf = bytearray(CHUNK + 8192)
    o = 0
    # headers
    if pcapng:
        shb_opts = b""
        shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28 + len(shb_opts), 0x1A2B3C4D, 1, 0, -1) + shb_opts + \
            struct.pack("<I", 28 + len(shb_opts))
        idb_opts = b""
        if ns:
            idb_opts += struct.pack("<HHB3x", 9, 1, 9)        # if_tsresol = 10^-9
        idb_opts += struct.pack("<HH", 0, 0)
        idb_len = 20 + len(idb_opts)
        idb = struct.pack("<IIHHI", 1, idb_len, 1, 0, snap) + idb_opts + struct.pack("<I", idb_len)
        out.write(shb + idb)
    else:
        magic = 0xa1b23c4d if ns else 0xa1b2c3d4
        out.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snap, 1))
    tsdiv = 1 if ns else 1000
    rec_pcap = struct.Struct("<IIII").pack_into
    rec_ng = struct.Struct("<IIIIIII").pack_into
    ng_tail = struct.Struct("<I").pack_into
    t4 = struct.Struct("!14sBBHHHBBH12sIIHHHH").pack_into      # eth+ipv4+tcp (54)
    u4 = struct.Struct("!14sBBHHHBBH12sHH").pack_into          # eth+ipv4+udp (42)
    i4 = struct.Struct("!14sBBHHHBBH8sBBHHH").pack_into        # eth+ipv4+icmp echo (42)
    t6 = struct.Struct("!14sIHBB36sIIHHHH").pack_into          # eth+ipv6+tcp (74)
    u6 = struct.Struct("!14sIHBB36sHH").pack_into              # eth+ipv6+udp (62)
    i6 = struct.Struct("!14sIHBB32sBBHHH").pack_into           # eth+ipv6+icmpv6 echo (62)
    rnd = rng.random
    grb = rng.getrandbits
    log = math.log
    exp = math.exp
    LN80 = math.log(80.0)
    mean_gap = 1e9 / a.rate_pps
    tns = int(a.start_time * 1e9)
    frac = 0.0
    nbytes = 0
    npk = 0
    hb = 16 if not pcapng else 28
    for key in keys:
        f = flows[key & fmask]
        k = f[POS]
        f[POS] = k + 1
        s = f[SIZE]
        kind = f[KIND]
        # Poisson arrivals
        frac += -log(1.0 - rnd()) * mean_gap
        g = int(frac)
        frac -= g
        tns += g
        if kind == K_TCP or kind == K_SCAN:
            opt = 0
            if kind == K_SCAN:
                if k == 0:
                    d, fl = 0, SYN
                    opt = 1
                else:
                    d, fl = 1, RST | ACK
                pl = 0
            elif s >= 6:
                if k < 3:
                    if k == 0:
                        d, fl, opt = 0, SYN, 1
                    elif k == 1:
                        d, fl, opt = 1, SYN | ACK, 1
                    else:
                        d, fl = 0, ACK
                    pl = 0
                elif k >= s - 3:
                    j = k - (s - 3)
                    c = f[CLOSER]
                    if j == 0:
                        d, fl = c, FIN | ACK
                    elif j == 1:
                        d, fl = 1 - c, FIN | ACK
                    else:
                        d, fl = c, ACK
                    pl = 0
                else:
                    m = k - 3
                    st = f[STYLE]
                    last = k == s - 4
                    if st == ST_DOWN or st == ST_UP:
                        if m == 0:
                            d, fl, pl = 0, PSH | ACK, f[P1]
                        elif m % 3 == 0:
                            d, fl, pl = 0, ACK, 0
                        else:
                            d, fl, pl = 1, ACK, (f[P3] if last else f[P2])
                            if last:
                                fl = PSH | ACK
                        if st == ST_UP and m:
                            d = 1 - d
                    elif st == ST_RR:
                        # request, response (log-uniform 80..MSS bytes), ack
                        r3 = m % 3
                        if r3 == 0:
                            d, fl, pl = 0, PSH | ACK, f[P1]
                        elif r3 == 2:
                            d, fl, pl = 0, ACK, 0
                        else:
                            d, fl, pl = 1, PSH | ACK, int(exp(LN80 + rnd() * f[P3]))
                    else:
                        d = m & 1
                        fl = PSH | ACK
                        pl = 36 + (grb(8) if rnd() < 0.7 else grb(10))
            else:
                # short TCP: SYN [SYN-ACK [ACK [data]]] RST
                if k == s - 1 and k > 0:
                    d, fl, pl = (1 if k == 1 else 0), (RST | ACK if k == 1 else RST), 0
                elif k == 0:
                    d, fl, pl, opt = 0, SYN, 0, 1
                elif k == 1:
                    d, fl, pl, opt = 1, SYN | ACK, 0, 1
                elif k == 2:
                    d, fl, pl = 0, ACK, 0
                else:
                    d, fl, pl = 0, PSH | ACK, f[P1]
            seq = f[SEQ0 + d]
            ack = f[SEQ1 - d] if fl & ACK else 0
            nseq = seq + pl
            if fl & (SYN | FIN):
                nseq += 1
            f[SEQ0 + d] = nseq & 0xffffffff
            hl = 32 if opt else 20
            ofl = (hl << 10) | fl
            a2 = grb(15)
            psum = pfx[a2 + (pl >> 1)] - pfx[a2]
            if pl & 1:
                psum += pool[2 * a2 + pl - 1] << 8
            tl4 = hl + pl
            cs = f[L4S0 + d] + tl4 + (seq >> 16) + (seq & 0xffff) + (ack >> 16) + (ack & 0xffff) + \
                ofl + psum + (SYNOPT_SUM if opt else 0)
            if f[V6]:
                flen = 54 + tl4
                cap = flen if flen < snap else snap
                t6(buf, o + hb, f[ETH0 + d], f[FLOWLBL], tl4, 6, f[TTL0 + d], f[AP0 + d], seq, ack, ofl,
                   f[WIN0 + d], -cs % 0xffff, 0)
                ho = 74
            else:
                iplen = 20 + tl4
                flen = 14 + iplen
                cap = flen if flen < snap else snap
                ipid = f[IPID0 + d]
                f[IPID0 + d] = (ipid + 1) & 0xffff
                t4(buf, o + hb, f[ETH0 + d], 0x45, 0, iplen, ipid, 0x4000, f[TTL0 + d], 6,
                   -(f[IPS0 + d] + iplen + ipid) % 0xffff, f[AP0 + d], seq, ack, ofl,
                   f[WIN0 + d], -cs % 0xffff, 0)
                ho = 54
            if opt:
                buf[o + hb + ho:o + hb + ho + 12] = SYNOPT
                ho += 12
        elif kind == K_ICMP:
            d = k & 1
            pl = 56
            a2 = grb(15)
            psum = pfx[a2 + 28] - pfx[a2]
            sq = (k >> 1) + 1
            if f[V6]:
                tl4 = 8 + pl
                flen = 54 + tl4
                cap = flen if flen < snap else snap
                cs = f[L4S0 + d] + tl4 + sq + psum
                i6(buf, o + hb, f[ETH0 + d], f[FLOWLBL], tl4, 58, f[TTL0 + d], f[AP0 + d], 129 if d else 128, 0,
                   -cs % 0xffff, f[P1], sq)
                ho = 62
            else:
                iplen = 28 + pl
                flen = 14 + iplen
                cap = flen if flen < snap else snap
                ipid = f[IPID0 + d]
                f[IPID0 + d] = (ipid + 1) & 0xffff
                cs = f[L4S0 + d] + sq + psum
                i4(buf, o + hb, f[ETH0 + d], 0x45, 0, iplen, ipid, 0, f[TTL0 + d], 1,
                   -(f[IPS0 + d] - 0x4000 + iplen + ipid) % 0xffff, f[AP0 + d],
                   0 if d else 8, 0, -cs % 0xffff, f[P1], sq)
                ho = 42
        else:
            # UDP: DNS, QUIC-like, other
            fixed = None
            if kind == K_DNS:
                d = k & 1
                fixed = f[P2] if d else f[P1]
                pl = len(fixed)
                psum = f[P3][d]
            else:
                if kind == K_QUIC:
                    if k == 0:
                        d, pl = 0, 1200
                    elif k % 4 == 0:
                        d, pl = 0, f[P2]
                    else:
                        d, pl = 1, f[P1]
                else:
                    d = 1 if rnd() < 0.5 else 0
                    pl = f[P1]
                a2 = grb(15)
                psum = pfx[a2 + (pl >> 1)] - pfx[a2]
                if pl & 1:
                    psum += pool[2 * a2 + pl - 1] << 8
                if kind == K_QUIC:
                    # first byte 0x40|x: a QUIC short header, so dissectors do not choke
                    b0 = pool[2 * a2]
                    psum += ((0x40 | (b0 & 0x3f)) - b0) << 8
            ul = 8 + pl
            cs = f[L4S0 + d] + ul + ul + psum
            if f[V6]:
                flen = 54 + ul
                cap = flen if flen < snap else snap
                u6(buf, o + hb, f[ETH0 + d], f[FLOWLBL], ul, 17, f[TTL0 + d], f[AP0 + d], ul,
                   0xffff - (cs % 0xffff))
                ho = 62
            else:
                iplen = 20 + ul
                flen = 14 + iplen
                cap = flen if flen < snap else snap
                ipid = f[IPID0 + d]
                f[IPID0 + d] = (ipid + 1) & 0xffff
                u4(buf, o + hb, f[ETH0 + d], 0x45, 0, iplen, ipid, 0x4000, f[TTL0 + d], 17,
                   -(f[IPS0 + d] + iplen + ipid) % 0xffff, f[AP0 + d], ul,
                   0xffff - (cs % 0xffff))
                ho = 42
            if fixed is not None:
                c = cap - ho
                if c > 0:
                    buf[o + hb + ho:o + hb + ho + c] = fixed[:c]
                ho = 1 << 30    # payload done
            elif kind == K_QUIC:
                c = cap - ho
                if c > 0:
                    buf[o + hb + ho:o + hb + ho + c] = poolmv[2 * a2:2 * a2 + c]
                    buf[o + hb + ho] = 0x40 | (pool[2 * a2] & 0x3f)
                ho = 1 << 30
        # payload (random pool bytes) up to the capture length
        c = cap - ho
        if c > 0:
            buf[o + hb + ho:o + hb + ho + c] = poolmv[2 * a2:2 * a2 + c]
        if pcapng:
            t = tns // tsdiv
            padded = (cap + 3) & ~3
            blen = 32 + padded
            rec_ng(buf, o, 6, blen, 0, t >> 32, t & 0xffffffff, cap, flen)
            if padded != cap:
                buf[o + 28 + cap:o + 28 + padded] = b"\0" * (padded - cap)
            ng_tail(buf, o + 28 + padded, blen)
            o += blen
        else:
            sec, sub = divmod(tns, 1000000000)
            rec_pcap(buf, o, sec, sub // tsdiv, cap, flen)
            o += 16 + cap
        nbytes += flen
        npk += 1
        if o >= CHUNK:
            out.write(memoryview(buf)[:o])
            o = 0
    if o:
        out.write(memoryview(buf)[:o])
    return npk, nbytes, tns


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    t0 = time.time()
    rng = random.Random(a.seed)
    flows, ag = build_flows(a, rng)
    t1 = time.time()
    keys, fmask = schedule(a, rng, flows)
    t2 = time.time()
    with open(a.out, "wb") as out:
        npk, nbytes, tend = write_trace(a, rng, flows, keys, fmask, out)
    t3 = time.time()
    if not a.quiet:
        kinds = [0] * 6
        for f in flows:
            kinds[f[KIND]] += f[SIZE]
        print("gentrace: %s %d packets, %d flows, %.1f MB wire bytes (mean %.0f B/pkt), %.3f s of traffic; "
              "packets by kind tcp=%d scan=%d dns=%d quic=%d udp=%d icmp=%d; "
              "time: flows %.1fs schedule %.1fs write %.1fs"
              % (a.out, npk, len(flows), nbytes / 1e6, nbytes / max(1, npk), a.packets / a.rate_pps,
                 *kinds, t1 - t0, t2 - t1, t3 - t2), file=sys.stderr)


if __name__ == "__main__":
    main()
