#!/usr/bin/env python3
"""gen64.py N OUT: N Ethernet/IPv4/UDP frames of 64 bytes (issue 5's
benchmark load).  Packet i comes from and goes to addresses in the /8
network i % 256, so a `net X/8` filter takes 1/256 of the packets and 256
such filters split the load evenly; ports vary so there are many flows."""
import struct
import sys


def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
        pay = bytes(22)
        recs = []
        for i in range(n):
            x = i % 256
            src = bytes((x, (i >> 8) & 255, (i >> 16) & 255, 1))
            dst = bytes((x, 200, (i >> 8) & 255, 2))
            sport, dport = 1024 + (i * 7) % 60000, 53 + (i >> 8) % 1000
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 50, i & 0xffff, 0,
                             64, 17, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
            udp = struct.pack("!HHHH", sport, dport, 30, 0)
            frame = eth + ip + udp + pay
            ts = 1700000000 * 1000000 + i
            recs.append(struct.pack("<IIII", ts // 1000000, ts % 1000000,
                                    64, 64) + frame)
            if len(recs) == 65536:
                f.write(b"".join(recs))
                recs = []
        f.write(b"".join(recs))


main()
