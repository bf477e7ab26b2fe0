#!/usr/bin/env python3
# ipfix_dump.py - read ipfixDump's text output (libfixbuf-tools) for
# tests/integration/ipfix.sh.  Nothing here decodes IPFIX itself: the
# values are ipfixDump's.
#
#   ipfix_dump.py sum DUMP      "records packets bytes uniflows" where packets
#                               and bytes add both directions and uniflows
#                               counts records plus those with reverse packets
#   ipfix_dump.py uniproto DUMP "tcp udp other dns icmp": uniflow counts
#                               (a record with reverse packets is two
#                               uniflows), DNS packets after the first of
#                               each direction, ICMP packets
#   ipfix_dump.py tuples DUMP   one "proto src sport dst dport" per record
#   ipfix_dump.py records DUMP  every record as one sorted line of fields
#   ipfix_dump.py addrs DUMP    the source addresses, one per record
#   ipfix_dump.py norm          stdin to stdout, addresses made canonical
#   ipfix_dump.py intrace DUMP TSHARK_FIELDS
#       every record's 5-tuple is a packet's (either way) in the trace, as
#       tshark lists it (fields: proto, ip.src, ip.dst, ipv6.src, ipv6.dst,
#       tcp/udp srcport, tcp/udp dstport); prints "ok N" or the misses
import ipaddress
import re
import sys

FIELD = re.compile(r"^\s*\((?:(\d+)/)?(\d+)\)\s+(\S+)\s*:\s*(.*)$")


def records(path):
    recs, cur = [], None
    for line in open(path, errors="replace"):
        if line.startswith("--- data record"):
            cur = {}
            recs.append(cur)
            continue
        if line.startswith("---") or line.startswith("***"):
            cur = None
            continue
        m = FIELD.match(line)
        if m and cur is not None:
            cur[m.group(3)] = m.group(4).strip()
    return recs


def norm(a):
    try:
        return str(ipaddress.ip_address(a))
    except ValueError:
        return a


def addr(r, k):
    return norm(r.get(k + "IPv4Address", r.get(k + "IPv6Address", "?")))


def tup(r):
    return "%s %s %s %s %s" % (r.get("protocolIdentifier"), addr(r, "source"),
                               r.get("sourceTransportPort"),
                               addr(r, "destination"),
                               r.get("destinationTransportPort"))


def main(a):
    if a[0] == "norm":
        for line in sys.stdin:
            print(" ".join(norm(w) for w in line.split()))
        return 0
    recs = records(a[1])
    if a[0] == "sum":
        p = sum(int(r["packetDeltaCount"]) + int(r["reversePacketDeltaCount"])
                for r in recs)
        b = sum(int(r["octetDeltaCount"]) + int(r["reverseOctetDeltaCount"])
                for r in recs)
        u = sum(1 + (int(r["reversePacketDeltaCount"]) > 0) for r in recs)
        print(len(recs), p, b, u)
    elif a[0] == "uniproto":
        c = {}
        dns = icmp = 0
        for r in recs:
            pr = r["protocolIdentifier"]
            k = {"6": "TCP", "17": "UDP"}.get(pr, "other")
            n = (int(r["packetDeltaCount"]), int(r["reversePacketDeltaCount"]))
            c[k] = c.get(k, 0) + 1 + (n[1] > 0)
            if pr == "17" and "53" in (r["sourceTransportPort"],
                                       r["destinationTransportPort"]):
                dns += sum(max(x - 1, 0) for x in n)
            if pr in ("1", "58"):
                icmp += n[0] + n[1]
        print(c.get("TCP", 0), c.get("UDP", 0), c.get("other", 0), dns, icmp)
    elif a[0] == "tuples":
        for r in recs:
            print(tup(r))
    elif a[0] == "records":
        for r in sorted(";".join("%s=%s" % kv for kv in sorted(r.items()))
                        for r in recs):
            print(r)
    elif a[0] == "addrs":
        for r in recs:
            print(addr(r, "source"))
    elif a[0] == "intrace":
        seen = set()
        for line in open(a[2]):
            f = line.rstrip("\n").split("\t")
            f += [""] * (7 - len(f))
            proto, s4, d4, s6, d6, sp, dp = f[:7]
            src = norm((s4 or s6).split(",")[0])
            dst = norm((d4 or d6).split(",")[0])
            sp, dp = sp.split(",")[0] or "0", dp.split(",")[0] or "0"
            proto = proto.split(",")[-1]
            seen.add("%s %s %s %s %s" % (proto, src, sp, dst, dp))
            seen.add("%s %s %s %s %s" % (proto, dst, dp, src, sp))
        miss = [tup(r) for r in recs
                if r.get("protocolIdentifier") in ("6", "17")
                and tup(r) not in seen]
        if miss:
            print("%d of %d records not in the trace: %s" % (
                len(miss), len(recs), "; ".join(miss[:5])))
            return 1
        print("ok %d" % len(recs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
