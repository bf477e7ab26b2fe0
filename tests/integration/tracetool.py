#!/usr/bin/env python3
# tracetool.py - small independent helpers for tests/integration (stdlib only).
#
#   tracetool.py offsets FILE
#       byte offset of every packet record (pcap record header, pcapng
#       EPB/SPB/PB block, ERF record), one per line; parsed here, not by
#       weir-capture, so tests can cut or corrupt a file at a known packet.
#   tracetool.py blocks FILE
#       every pcapng block as "offset type total_length".
#   tracetool.py poke FILE OFFSET HEXBYTES
#       overwrite bytes in place.
#   tracetool.py prefix MAPFILE [PAIRS] [SEED]
#       MAPFILE has lines "original<TAB>anonymised" (IPv4 or IPv6).  Checks
#       Crypto-PAn's prefix preservation: for PAIRS random pairs of distinct
#       originals of one family (and every pair when there are few), the
#       common prefix length of the anonymised pair equals the original's.
#       Also checks the mapping is a function and one-to-one.  Prints
#       "ok N" or the first problems; exits 1 on a violation.
#   tracetool.py cutcheck MODE IN OUT HDRS
#       HDRS has one line per packet: "hdrend l4start l4kind" (from
#       tshark; hdrend -1 = do not check).  MODE "headers": OUT's caplen is
#       min(hdrend, IN's caplen) and its bytes are IN's first ones.  MODE
#       "zero": caplen and len kept, bytes before hdrend kept (except the
#       transport checksum, which may be updated), every byte after zero.
#       Prints "ok N" or the first problems; exits 1 on a problem.
#   tracetool.py every IN OUT N OFFSET
#       copy record i (0-based) of pcap IN to OUT when i % N == OFFSET.
#   tracetool.py binom N P: the two-sided 99.9% interval "lo hi" of a
#       Binomial(N, P) count (exact tails).
#   tracetool.py mkpcap OUT ADDR...
#       a pcap (Ethernet, us) with one UDP packet per address, from the
#       address to itself, all checksums correct: feeds known addresses
#       (e.g. the published Crypto-PAn vectors) through weir-capture.
import ipaddress
import random
import struct
import sys


def pcap_offsets(b):
    magic = b[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None
    off, out = 24, []
    while off + 16 <= len(b):
        caplen = struct.unpack(e + "I", b[off + 8:off + 12])[0]
        if off + 16 + caplen > len(b):
            break
        out.append(off)
        off += 16 + caplen
    return out


def pcapng_blocks(b):
    off, e, out = 0, "<", []
    while off + 12 <= len(b):
        if b[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if b[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack(e + "II", b[off:off + 8])
        if blen < 12 or off + blen > len(b):
            break
        out.append((off, btype, blen))
        off += blen
    return out


def erf_offsets(b):
    off, out = 0, []
    while off + 16 <= len(b):
        rlen = struct.unpack(">H", b[off + 10:off + 12])[0]
        if rlen < 16 or off + rlen > len(b):
            break
        out.append(off)
        off += rlen
    return out


def offsets(path):
    b = open(path, "rb").read()
    r = pcap_offsets(b)
    if r is not None:
        return r
    if b[:4] == b"\x0a\x0d\x0d\x0a":
        return [o for o, t, _ in pcapng_blocks(b) if t in (2, 3, 6)]
    return erf_offsets(b)


def common_prefix(a, b, bits):
    x = a ^ b
    return bits if x == 0 else bits - x.bit_length()


def prefix(mapfile, npairs, seed):
    fwd, rev = {}, {}
    bad = []
    for line in open(mapfile):
        f = line.split()
        if len(f) != 2:
            continue
        o, a = ipaddress.ip_address(f[0]), ipaddress.ip_address(f[1])
        if o.version != a.version:
            bad.append("family changed: %s -> %s" % (o, a))
            continue
        if fwd.setdefault(o, a) != a:
            bad.append("not a function: %s -> %s and %s" % (o, fwd[o], a))
        if rev.setdefault(a, o) != o:
            bad.append("not one-to-one: %s and %s -> %s" % (rev[a], o, a))
    rnd = random.Random(seed)
    checked = 0
    for ver, bits in ((4, 32), (6, 128)):
        keys = [k for k in fwd if k.version == ver]
        if len(keys) < 2:
            continue
        if len(keys) * (len(keys) - 1) // 2 <= npairs:
            pairs = [(keys[i], keys[j]) for i in range(len(keys))
                     for j in range(i + 1, len(keys))]
        else:
            pairs = []
            for _ in range(npairs):
                i, j = rnd.sample(range(len(keys)), 2)
                pairs.append((keys[i], keys[j]))
            # neighbours in sorted order share long prefixes: test those too
            ks = sorted(keys)
            pairs += list(zip(ks, ks[1:]))
        for o1, o2 in pairs:
            p0 = common_prefix(int(o1), int(o2), bits)
            p1 = common_prefix(int(fwd[o1]), int(fwd[o2]), bits)
            checked += 1
            if p0 != p1:
                bad.append("%s,%s share %d bits; %s,%s share %d" %
                           (o1, o2, p0, fwd[o1], fwd[o2], p1))
    if bad:
        print("%d problems in %d pairs; first:" % (len(bad), checked))
        print("\n".join(bad[:10]))
        return 1
    print("ok %d" % checked)
    return 0


def csum(b):
    if len(b) & 1:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def mkpcap(out, addrs):
    recs = [struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)]
    for i, a in enumerate(addrs):
        ip = ipaddress.ip_address(a)
        payload = b"weir-vector-%03d" % i
        ulen = 8 + len(payload)
        if ip.version == 4:
            pseudo = ip.packed * 2 + struct.pack("!BBH", 0, 17, ulen)
        else:
            pseudo = ip.packed * 2 + struct.pack("!IxxxB", ulen, 17)
        udp = struct.pack("!HHHH", 40000 + i, 9, ulen, 0) + payload
        c = csum(pseudo + udp) or 0xffff
        udp = udp[:6] + struct.pack("!H", c) + udp[8:]
        if ip.version == 4:
            h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, i, 0, 64,
                            17, 0, ip.packed, ip.packed)
            h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
            eth = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"
        else:
            h = struct.pack("!IHBB16s16s", 0x60000000, ulen, 17, 64,
                            ip.packed, ip.packed)
            eth = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x86\xdd"
        frame = eth + h + udp
        recs.append(struct.pack("<IIII", 1700000000 + i, 0, len(frame),
                                len(frame)) + frame)
    open(out, "wb").write(b"".join(recs))


def records(path):
    """(caplen, len, data) of every record of a pcap (us or ns, any order)."""
    b = open(path, "rb").read()
    e = "<" if b[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out = []
    for off in pcap_offsets(b) or []:
        caplen, wlen = struct.unpack(e + "II", b[off + 8:off + 16])
        out.append((caplen, wlen, b[off + 16:off + 16 + caplen]))
    return out


CSOFF = {"tcp": 16, "udp": 6, "icmp": 2, "icmpv6": 2}


def cutcheck(mode, inp, outp, hdrs):
    a, b = records(inp), records(outp)
    h = [l.split() for l in open(hdrs)]
    bad = []
    if not (len(a) == len(b) == len(h)):
        print("packet counts differ: in %d out %d hdrs %d" %
              (len(a), len(b), len(h)))
        return 1
    checked = 0
    for i, ((ic, il, idata), (oc, ol, odata), hl) in enumerate(zip(a, b, h)):
        end, l4, kind = int(hl[0]), int(hl[1]), hl[2]
        if ol != il:
            bad.append("pkt %d: len %d became %d" % (i + 1, il, ol))
        if end < 0:
            continue
        checked += 1
        if mode == "headers":
            want = min(end, ic)
            if oc != want or odata != idata[:want]:
                bad.append("pkt %d: caplen %d (want %d of %d)%s" %
                           (i + 1, oc, want, ic, "" if odata == idata[:oc]
                            else ", bytes differ"))
        else:
            if oc != ic:
                bad.append("pkt %d: caplen %d became %d" % (i + 1, ic, oc))
                continue
            keep_a, keep_b = bytearray(idata[:end]), bytearray(odata[:end])
            if kind in CSOFF and l4 + CSOFF[kind] + 2 <= end:
                c = l4 + CSOFF[kind]
                keep_a[c:c + 2] = keep_b[c:c + 2] = b"\0\0"
            if keep_a != keep_b:
                bad.append("pkt %d: header bytes changed" % (i + 1))
            if any(odata[end:]):
                bad.append("pkt %d: payload not zero after byte %d" %
                           (i + 1, end))
    if bad:
        print("%d problems in %d packets; first:" % (len(bad), checked))
        print("\n".join(bad[:10]))
        return 1
    print("ok %d" % checked)
    return 0


def binom(n, p):
    # exact tails in log space: lo = largest k with P(X < k) <= 0.0005
    import math
    lp = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
          + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(n + 1)]
    pm = [math.exp(x) for x in lp]
    c, lo = 0.0, 0
    for k in range(n + 1):
        if c + pm[k] > 0.0005:
            lo = k
            break
        c += pm[k]
    c, hi = 0.0, n
    for k in range(n, -1, -1):
        if c + pm[k] > 0.0005:
            hi = k
            break
        c += pm[k]
    return lo, hi


def every(inp, outp, n, offset):
    b = open(inp, "rb").read()
    e = "<" if b[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    parts = [b[:24]]
    for i, off in enumerate(pcap_offsets(b)):
        if i % n == offset:
            caplen = struct.unpack(e + "I", b[off + 8:off + 12])[0]
            parts.append(b[off:off + 16 + caplen])
    open(outp, "wb").write(b"".join(parts))


def main(argv):
    if len(argv) == 5 and argv[0] == "every":
        every(argv[1], argv[2], int(argv[3]), int(argv[4]))
        return 0
    if len(argv) == 5 and argv[0] == "cutcheck":
        return cutcheck(argv[1], argv[2], argv[3], argv[4])
    if len(argv) == 3 and argv[0] == "binom":
        print("%d %d" % binom(int(argv[1]), float(argv[2])))
        return 0
    if len(argv) >= 2 and argv[0] == "mkpcap":
        mkpcap(argv[1], argv[2:])
        return 0
    if len(argv) >= 2 and argv[0] == "offsets":
        print("\n".join(str(o) for o in offsets(argv[1])))
        return 0
    if len(argv) >= 2 and argv[0] == "blocks":
        for o, t, n in pcapng_blocks(open(argv[1], "rb").read()):
            print(o, t, n)
        return 0
    if len(argv) == 4 and argv[0] == "poke":
        with open(argv[1], "r+b") as f:
            f.seek(int(argv[2]))
            f.write(bytes.fromhex(argv[3]))
        return 0
    if len(argv) >= 2 and argv[0] == "prefix":
        npairs = int(argv[2]) if len(argv) > 2 else 20000
        seed = int(argv[3]) if len(argv) > 3 else 1
        return prefix(argv[1], npairs, seed)
    sys.stderr.write(__doc__ if __doc__ else "usage: see the header\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
