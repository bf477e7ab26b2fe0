#!/bin/bash
# flowpcap.sh - the per-flow pcap output (packet-headers) against tshark.
#
# For every trace: every flow file is read by tshark (a sample one by one,
# all of them through mergecap, which uses the same reader); for each
# index line, tshark's listing of the input frames of that flow (5-tuple,
# VLAN, time), cut at first_ts + capture_duration, equals tshark's listing
# of the flow file (timestamps, lengths, header fields); the bytes of each
# record are the input's headers, cut at max_header_size, with every byte
# after the TCP/UDP header zero; the index counts match the input; every
# selected input frame is in exactly one flow.  Header ends in the byte
# check come from this script's own parser, fields from tshark.
. "$(dirname "$0")/common.bash"

for t in mergecap zstd; do
	command -v "$t" >/dev/null 2>&1 || { echo "Bail out! '$t' missing"; exit 2; }
done
CHECK="$WEIR_TMP/fpcheck.py"
cat >"$CHECK" <<'PYEOF'
import glob, json, os, struct, subprocess, sys, datetime

def pcap_read(path, data=None):
    """(magic_ns, snaplen, linktype, [(ts_ns, caplen, wirelen, bytes)])"""
    if data is None:
        data = open(path, "rb").read()
    if len(data) < 24:
        raise ValueError("%s: %d bytes, no pcap header" % (path, len(data)))
    magic, = struct.unpack("<I", data[:4])
    if magic not in (0xa1b2c3d4, 0xa1b23c4d):
        raise ValueError("%s: bad magic %08x" % (path, magic))
    ns = magic == 0xa1b23c4d
    _, _, _, _, snap, lt = struct.unpack("<HHiIII", data[4:24])
    recs, off = [], 24
    while off < len(data):
        if off + 16 > len(data):
            raise ValueError("%s: partial record header at %d" % (path, off))
        s, f, cl, wl = struct.unpack("<IIII", data[off:off + 16])
        if off + 16 + cl > len(data):
            raise ValueError("%s: partial record at %d" % (path, off))
        recs.append((s * 10**9 + (f if ns else f * 1000), cl, wl,
                     data[off + 16:off + 16 + cl]))
        off += 16 + cl
    return ns, snap, lt, recs

def load(path):
    if path.endswith(".zst"):
        return pcap_read(path, subprocess.run(["zstd", "-dc", path],
                         check=True, capture_output=True).stdout)
    return pcap_read(path)

def hdr_end(b):
    """(end of the L4 header, kind) by our own walk; kind 'l4' when the
    bytes after it are payload."""
    o, et = 14, None
    if len(b) < 14:
        return len(b), "short"
    et = b[12] << 8 | b[13]
    while et in (0x8100, 0x88a8) and o + 4 <= len(b):
        et = b[o + 2] << 8 | b[o + 3]
        o += 4
    if et == 0x0800 and o + 20 <= len(b):
        ihl = (b[o] & 15) * 4
        fo = (b[o + 6] << 8 | b[o + 7]) & 0x1fff
        proto, o = b[o + 9], o + ihl
        if fo:
            return min(o, len(b)), "frag"
    elif et == 0x86dd and o + 40 <= len(b):
        proto, o = b[o + 6], o + 40
        while proto in (0, 43, 60, 44) and o + 8 <= len(b):
            if proto == 44:
                fo = (b[o + 2] << 8 | b[o + 3]) >> 3
                proto, o = b[o], o + 8
                if fo:
                    return min(o, len(b)), "frag"
                continue
            proto, o = b[o], o + (b[o + 1] + 1) * 8
    else:
        return len(b), "other"
    if proto == 6 and o + 13 <= len(b):
        return min(o + (b[o + 12] >> 4) * 4, len(b)), "l4"
    if proto == 17:
        return min(o + 8, len(b)), "l4"
    if proto in (1, 58):
        return min(o + 8, len(b)), "icmp"
    return min(o, len(b)), "other"

FIELDS = ["frame.number", "frame.time_epoch", "frame.len", "frame.cap_len",
          "vlan.id", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
          "icmp.type", "icmp.code", "icmp.ident", "icmpv6.type",
          "icmpv6.code", "icmpv6.echo.identifier", "ip.len", "ipv6.plen",
          "ip.id", "ip.ttl", "ip.flags", "ip.checksum", "ipv6.hlim",
          "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.window_size_value",
          "tcp.hdr_len", "tcp.len", "tcp.options", "tcp.checksum",
          "udp.length", "udp.checksum", "icmp.checksum", "icmpv6.checksum"]
# compared between input and flow file (not the frame number, not cap_len)
CMP = [f for f in FIELDS if f not in ("frame.number", "frame.cap_len")]

def tshark(path):
    cmd = ["tshark", "-r", path, "-n", "-o", "ip.defragment:FALSE",
           "-o", "ipv6.defragment:FALSE", "-o", "tcp.desegment_tcp_streams:FALSE",
           "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        v = line.split("|")
        rows.append(dict(zip(FIELDS, v)))
    return rows

def ns_of(s, nano):
    a, _, b = s.partition(".")
    b = (b + "000000000")[:9]
    v = int(a) * 10**9 + int(b)
    return v if nano else v - v % 1000

def proto_of(r):
    if r["tcp.srcport"]:
        return 6
    if r["udp.srcport"]:
        return 17
    if r["icmp.type"]:
        return 1
    if r["icmpv6.type"]:
        return 58
    return None

def addrs(r):
    if r["ip.src"]:
        return r["ip.src"], r["ip.dst"]
    return r["ipv6.src"], r["ipv6.dst"]

def rkey(r, p):
    """direction-independent key of an input frame"""
    a, b = addrs(r)
    vlan = int(r["vlan.id"] or 0)
    if p in (6, 17):
        pre = "tcp" if p == 6 else "udp"
        ea = (a, int(r[pre + ".srcport"]))
        eb = (b, int(r[pre + ".dstport"]))
    else:
        ident = r["icmp.ident"] if p == 1 else r["icmpv6.echo.identifier"]
        ea, eb = (a, ident), (b, ident)
    return (p, vlan) + tuple(sorted([ea, eb])), ea

def ikey(x):
    p = x["proto"]
    if p in (6, 17):
        ea, eb = (x["src"], x["sport"]), (x["dst"], x["dport"])
    else:
        ea, eb = (x["src"], x.get("_ident", "")), (x["dst"], x.get("_ident", ""))
    return (p, x["vlan"]) + tuple(sorted([ea, eb])), ea

def rfc3339(ns):
    d = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % (ns % 10**9)

def index_of(d):
    idx = []
    for f in sorted(glob.glob(os.path.join(d, "*/*/*/index.jsonl"))):
        for line in open(f):
            x = json.loads(line)
            x["_dir"] = os.path.dirname(f)
            idx.append(x)
    return idx

def main_check(a):
    inp, outdir, snap, dur, protos, nano, sample, zero = \
        a[0], a[1], int(a[2]), float(a[3]), a[4].split(","), a[5] == "ns", \
        int(a[6]), a[7] == "1"
    want = set()
    for p in protos:
        want |= {"tcp": {6}, "udp": {17}, "icmp": {1, 58}}[p]
    dur_ns = int(round(dur * 1e9))
    errs, stat = [], {}
    def err(m):
        if len(errs) < 30:
            errs.append(m)
        stat["errors"] = stat.get("errors", 0) + 1
    idx = index_of(outdir)
    stat["flows"] = len(idx)
    # files on disk vs index
    names = set()
    for x in idx:
        names.add(os.path.join(x["_dir"], x["file"]))
        if x["file"] != x["uuid"] + (".pcap.zst" if x["file"].endswith(".zst") else ".pcap"):
            err("file %s does not carry uuid %s" % (x["file"], x["uuid"]))
        if x["path"] != os.path.relpath(os.path.join(x["_dir"], x["file"]), outdir):
            err("path %s wrong" % x["path"])
        day = datetime.datetime.fromtimestamp(x["first_ts_ns"] // 10**9,
                                              datetime.timezone.utc).strftime("%Y/%m/%d")
        if not x["path"].startswith(day + "/"):
            err("%s not under the first packet's date %s" % (x["path"], day))
        if x["first_ts"] != rfc3339(x["first_ts_ns"]) or x["last_ts"] != rfc3339(x["last_ts_ns"]):
            err("%s: RFC 3339 times differ from the ns values" % x["uuid"])
        if int(x["uuid"].replace("-", "")[:12], 16) != x["first_ts_ns"] // 10**6 or x["uuid"][14] != "7":
            err("%s: not a UUIDv7 of first_ts" % x["uuid"])
    ondisk = set(f for f in glob.glob(os.path.join(outdir, "*/*/*/*"))
                 if not f.endswith("/index.jsonl"))
    hidden = glob.glob(os.path.join(outdir, "*/*/*/.*"))
    if hidden:
        err("hidden files left: %s" % hidden[:3])
    if ondisk != names:
        err("files on disk and in the index differ: %d vs %d" % (len(ondisk), len(names)))
    if len(names) != len(idx):
        err("an index line is repeated")
    # the flow files, in index order
    files = []
    for x in idx:
        try:
            ns, sn, lt, recs = load(os.path.join(x["_dir"], x["file"]))
        except Exception as e:
            err("unreadable: %s" % e)
            ns, sn, lt, recs = nano, snap, 1, []
        if sn != snap or ns != nano or lt != x["linktype"] or sn != x["snaplen"]:
            err("%s: header snaplen %d precision %s linktype %d" % (x["file"], sn, ns, lt))
        if len(recs) != x["packets_written"]:
            err("%s: %d records, index says %d" % (x["file"], len(recs), x["packets_written"]))
        files.append(recs)
    # tshark reads every file: a sample one by one, all via mergecap
    plain = []
    for x in idx:
        p = os.path.join(x["_dir"], x["file"])
        if p.endswith(".zst"):
            q = os.path.join(os.path.dirname(outdir), "unz", x["file"][:-4])
            os.makedirs(os.path.dirname(q), exist_ok=True)
            subprocess.run(["zstd", "-q", "-f", "-d", p, "-o", q], check=True)
            p = q
        plain.append(p)
    step = max(1, len(plain) // max(1, sample))
    for p in plain[::step][:sample]:
        r = subprocess.run(["tshark", "-r", p, "-q"], capture_output=True, text=True)
        e = "\n".join(l for l in r.stderr.splitlines() if not l.startswith("Running as user"))
        if r.returncode != 0 or e:
            err("tshark on %s: %s" % (p, e[:200]))
    stat["tshark_files"] = len(plain[::step][:sample])
    merged = os.path.join(os.path.dirname(outdir), "merged.pcapng")
    groups = [plain[i:i + 400] for i in range(0, len(plain), 400)]
    parts = []
    for i, g in enumerate(groups):
        m = merged + ".%d" % i
        r = subprocess.run(["mergecap", "-a", "-F", "pcapng", "-w", m] + g,
                           capture_output=True, text=True)
        if r.returncode != 0 or r.stderr.strip():
            err("mergecap: %s" % r.stderr[:300])
        parts.append(m)
    outrows = []
    for m in parts:
        outrows += tshark(m)
        os.unlink(m)
    if len(outrows) != sum(len(f) for f in files):
        err("tshark lists %d packets in the flow files, they hold %d" %
            (len(outrows), sum(len(f) for f in files)))
    # the input
    inrows = tshark(inp)
    _, _, inlt, inrecs = pcap_read(inp)
    if len(inrows) != len(inrecs):
        err("tshark and the parser disagree on the input")
    bykey = {}
    for x in idx:
        if x["proto"] in (1, 58):
            x["_ident"] = None
        bykey.setdefault(ikey(x)[0] if x["proto"] not in (1, 58) else
                         (x["proto"], x["vlan"], tuple(sorted([x["src"], x["dst"]]))), []).append(x)
    for v in bykey.values():
        v.sort(key=lambda x: x["first_ts_ns"])
    assigned = {}
    sel = 0
    for r in inrows:
        p = proto_of(r)
        if p is None or p not in want:
            continue
        sel += 1
        t = ns_of(r["frame.time_epoch"], True)
        if p in (1, 58):
            a, b = addrs(r)
            k = (p, int(r["vlan.id"] or 0), tuple(sorted([a, b])))
            src = a
        else:
            k, ea = rkey(r, p)
            src = ea
        cand = bykey.get(k)
        if not cand:
            err("frame %s (%s) is in no flow" % (r["frame.number"], k))
            continue
        if p in (1, 58):
            # pings between two hosts: the flow whose time span holds it
            c = [x for x in cand if x["first_ts_ns"] - 10**6 <= t <= x["last_ts_ns"]]
            x = c[0] if c else cand[0]
        else:
            x = cand[0]
            for y in cand:
                if y["first_ts_ns"] <= t:
                    x = y
        assigned.setdefault(id(x), []).append((r, t, src))
    stat["selected_frames"] = sel
    pos = 0
    tw = tsk = 0
    for x, recs in zip(idx, files):
        fr = assigned.get(id(x), [])
        rows = outrows[pos:pos + len(recs)]
        pos += len(recs)
        exp = [f for f in fr if dur_ns == 0 or f[1] - x["first_ts_ns"] < dur_ns]
        tw += len(exp)
        tsk += len(fr) - len(exp)
        if len(fr) - len(exp) != x["skipped_after_duration"]:
            err("%s: %d frames after capture_duration, index says %d" %
                (x["uuid"], len(fr) - len(exp), x["skipped_after_duration"]))
        if x["packets_fwd"] + x["packets_rev"] != len(fr):
            err("%s: index counts %d+%d packets, the input has %d" %
                (x["uuid"], x["packets_fwd"], x["packets_rev"], len(fr)))
        if fr and (fr[0][1] != x["first_ts_ns"] or max(f[1] for f in fr) != x["last_ts_ns"]):
            err("%s: first/last ts differ from the input's" % x["uuid"])
        me = (x["src"], x["sport"]) if x["proto"] in (6, 17) else x["src"]
        fwd = [f for f in fr if (f[2] if x["proto"] in (6, 17) else
               (f[2][0] if isinstance(f[2], tuple) else f[2])) == me]
        if len(fwd) != x["packets_fwd"]:
            err("%s: %d frames from src, index says %d" % (x["uuid"], len(fwd), x["packets_fwd"]))
        ipb = sum(int(f[0]["ip.len"] or 0) + (int(f[0]["ipv6.plen"]) + 40 if f[0]["ipv6.plen"] else 0)
                  for f in fr)
        if ipb != x["bytes_fwd"] + x["bytes_rev"]:
            err("%s: IP bytes %d, index says %d" % (x["uuid"], ipb, x["bytes_fwd"] + x["bytes_rev"]))
        if len(exp) != len(rows):
            err("%s: file has %d packets, input flow %d" % (x["uuid"], len(rows), len(exp)))
            continue
        for (ir, t, _), orow, rec in zip(exp, rows, recs):
            a = [ir[f] for f in CMP]
            b = [orow[f] for f in CMP]
            a[CMP.index("frame.time_epoch")] = ns_of(ir["frame.time_epoch"], nano)
            b[CMP.index("frame.time_epoch")] = ns_of(orow["frame.time_epoch"], True)
            if a != b:
                d = [(f, u, v) for f, u, v in zip(CMP, a, b) if u != v]
                err("%s frame %s: fields differ %s" % (x["uuid"], ir["frame.number"], d[:4]))
            n = int(ir["frame.number"]) - 1
            src = inrecs[n][3]
            cl = min(len(src), snap)
            if int(orow["frame.cap_len"]) != cl or rec[1] != cl or rec[2] != inrecs[n][2]:
                err("%s frame %d: caplen %s, want %d" % (x["uuid"], n + 1, orow["frame.cap_len"], cl))
                continue
            h, kind = hdr_end(src[:cl])
            if rec[3][:h] != src[:h]:
                err("%s frame %d: header bytes differ" % (x["uuid"], n + 1))
            tail, itail = rec[3][h:], src[h:cl]
            if not zero:
                if tail != itail:
                    err("%s frame %d: payload not kept" % (x["uuid"], n + 1))
            elif kind in ("l4", "frag"):
                if tail.count(0) != len(tail):
                    err("%s frame %d: payload not zeroed" % (x["uuid"], n + 1))
            elif any(c != 0 and c != d for c, d in zip(tail, itail)):
                err("%s frame %d: bytes after the header neither zero nor kept" % (x["uuid"], n + 1))
            stat["payload_bytes_zeroed"] = stat.get("payload_bytes_zeroed", 0) + \
                sum(1 for c, d in zip(tail, itail) if c == 0 and d != 0)
    stat["written_expected"] = tw
    stat["written_index"] = sum(x["packets_written"] for x in idx)
    stat["skipped_expected"] = tsk
    if stat["written_index"] != tw:
        err("index: %d packets written, the input flows have %d" % (stat["written_index"], tw))
    if sum(len(v) for v in assigned.values()) != sel:
        err("not every selected frame is in a flow")
    stat["errs"] = errs
    print(json.dumps(stat))
    return 1 if errs else 0

def content(d):
    """flow files keyed by flow (5-tuple and first packet), decompressed"""
    m = {}
    for x in index_of(d):
        _, _, _, recs = load(os.path.join(x["_dir"], x["file"]))
        k = (x["proto"], x["src"], x["dst"], x.get("sport"), x.get("dport"),
             x.get("icmp_type"), x["vlan"], x["first_ts_ns"])
        m[k] = ([(r[0], r[1], r[2], r[3]) for r in recs],
                {f: x[f] for f in ("packets_fwd", "packets_rev", "bytes_fwd",
                 "bytes_rev", "packets_written", "skipped_after_duration",
                 "last_ts_ns", "end_reason")})
    return m

def main_same(a):
    x, y = content(a[0]), content(a[1])
    if x == y:
        print(json.dumps({"flows": len(x)}))
        return 0
    d = [k for k in set(x) | set(y) if x.get(k) != y.get(k)]
    print(json.dumps({"flows": [len(x), len(y)], "differ": len(d), "first": str(d[:2])}))
    return 1

def main_killed(a):
    """after kill -9: every index line names a complete published file"""
    idx, bad = index_of(a[0]), []
    for x in idx:
        try:
            _, _, _, recs = load(os.path.join(x["_dir"], x["file"]))
            if len(recs) != x["packets_written"]:
                bad.append(x["file"])
        except Exception as e:
            bad.append(str(e))
    pub = [f for f in glob.glob(os.path.join(a[0], "*/*/*/*")) if not f.endswith("index.jsonl")]
    for f in pub:
        try:
            load(f)
        except Exception as e:
            bad.append(str(e))
    hidden = glob.glob(os.path.join(a[0], "*/*/*/.*.part"))
    print(json.dumps({"indexed": len(idx), "published": len(pub), "hidden": len(hidden),
                      "bad": bad[:5]}))
    return 0 if not bad and len(pub) == len(idx) and idx and hidden else 1

def main_flood(a):
    n, out = int(a[0]), a[1]
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        eth = bytes.fromhex("020000000001020000000002") + b"\x08\x00"
        t0 = 1704067200
        buf = []
        for i in range(n):
            src = 0x0a000000 | ((i * 2654435761) & 0xffffff)
            sport = 1024 + (i * 7919) % 60000
            ip = struct.pack("!BBHHHBBHII", 0x45, 0, 40, i & 0xffff, 0, 64, 6, 0,
                             src, 0xc0000201)
            tcp = struct.pack("!HHIIBBHHH", sport, 80, i * 2654435761 & 0xffffffff,
                              0, 0x50, 0x02, 65535, 0, 0)
            us = i  # 1 Mpps
            buf.append(struct.pack("<IIII", t0 + us // 10**6, us % 10**6, 54, 54) +
                       eth + ip + tcp)
            if len(buf) == 65536:
                f.write(b"".join(buf))
                buf = []
        f.write(b"".join(buf))
    return 0

def main_feed(a):
    """write the first half of a pcap to a FIFO, then hold it open"""
    import time
    data = open(a[0], "rb").read()
    with open(a[1], "wb") as f:
        f.write(data[:int(a[2])])
        f.flush()
        time.sleep(60)
    return 0

sys.exit({"check": main_check, "same": main_same, "killed": main_killed,
          "flood": main_flood, "feed": main_feed}[sys.argv[1]](sys.argv[2:]))
PYEOF

# run_fp NAME INPUT JSON-EXTRA: weir-capture with one flowpcap output into
# $WEIR_TMP/NAME/out; the summary in $WEIR_TMP/NAME.summary.json
mkconf()
{
	local name=$1 in=$2 extra=$3
	rm -rf "${WEIR_TMP:?}/$name"
	mkdir -p "$WEIR_TMP/$name"
	cat >"$WEIR_TMP/$name.json" <<EOF
{"name": "fp-$name", "inputs": [{"path": "$in"}],
 "outputs": [{"type": "flowpcap", "dir": "$WEIR_TMP/$name/out" $extra}]}
EOF
}

run_fp()
{
	mkconf "$@"
	weir_ok "$1" --config "$WEIR_TMP/$1.json" \
	    --summary "$WEIR_TMP/$1.summary.json"
}

# counter NAME KEY: a flowpcap counter from the summary
counter()
{
	python3 -c 'import json, sys; print([o for o in json.load(open(sys.argv[1]))["outputs"] if o["type"] == "flowpcap"][0][sys.argv[2]])' \
	    "$WEIR_TMP/$1.summary.json" "$2"
}

# check NAME INPUT SNAP DURATION PROTOCOLS PRECISION DESC [ZERO]: the
# expected listing is tshark's of the input cut to SNAP bytes (editcap)
check()
{
	local out cut="$WEIR_TMP/$1.cut.pcap"
	if [ "$6" = ns ]; then
		editcap -F nsecpcap -s "$3" "$2" "$cut"
	else
		editcap -F pcap -s "$3" "$2" "$cut"
	fi
	if out=$(python3 "$CHECK" check "$cut" "$WEIR_TMP/$1/out" "$3" "$4" "$5" "$6" 20 "${8:-1}"); then
		pass "$7: $out"
	else
		fail "$7" "$out"
	fi
}

# 1. real traces, packet-headers defaults (tcp, 256 bytes, 30 s, buffered)
for tr in ndpi-1kxun.pcap zeek-echo-connections.pcap \
    arkime-wireshark-retrans.pcap ndpi-reddit-ipv6.pcap; do
	n=${tr%.pcap}
	if run_fp "$n" "$DATA/$tr" ""; then
		check "$n" "$DATA/$tr" 256 30 tcp us \
		    "$tr: flow files hold exactly the flows' headers"
	fi
done
# shorter duration and header size, every protocol, stream mode
if run_fp 1kxun-all "$DATA/ndpi-1kxun.pcap" ', "protocols": ["tcp", "udp", "icmp"],
    "capture_duration": 2, "max_header_size": 64, "mode": "stream",
    "flow_timeout": 5'; then
	check 1kxun-all "$DATA/ndpi-1kxun.pcap" 64 2 tcp,udp,icmp us \
	    "1kxun, tcp+udp+icmp, 64 bytes, 2 s, stream"
	s=$(counter 1kxun-all skipped_after_duration)
	[ "$s" -gt 0 ] && pass "capture_duration cuts packets ($s)" ||
	    fail "capture_duration cuts packets" "skipped_after_duration $s"
fi

# 2. generated traces: stream and buffered give the same files, also when
# files are reopened (LRU) and buffered flows are pushed to stream mode
GEN="$WEIR_TMP/gen.pcap"
python3 "$GENTRACE" --quiet --packets 40000 --seed 5 --rate-pps 4000 \
    --nanosecond --out "$GEN" || fail "gentrace"
COMMON='"protocols": ["tcp", "udp", "icmp"], "capture_duration": 1.5,
    "flow_timeout": 2, "precision": "ns", "max_header_size": 128'
run_fp gen-buf "$GEN" ", $COMMON, \"mode\": \"buffered\"" &&
    check gen-buf "$GEN" 128 1.5 tcp,udp,icmp ns "gentrace 40k, buffered, ns"
run_fp gen-stream "$GEN" ", $COMMON, \"mode\": \"stream\", \"max_open_files\": 3" &&
    check gen-stream "$GEN" 128 1.5 tcp,udp,icmp ns "gentrace 40k, stream, 3 open files"
r=$(counter gen-stream reopened_files)
[ "$r" -gt 0 ] && pass "stream mode reopened files ($r)" ||
    fail "stream mode reopened files" "reopened_files $r"
run_fp gen-mem "$GEN" ", $COMMON, \"mode\": \"buffered\", \"max_memory\": 262144" &&
    check gen-mem "$GEN" 128 1.5 tcp,udp,icmp ns "gentrace 40k, buffered in 256 KiB"
r=$(counter gen-mem switched_to_stream)
[ "$r" -gt 0 ] && pass "memory cap switched flows to stream mode ($r)" ||
    fail "memory cap switched flows to stream mode" "switched_to_stream $r"
run_fp gen-zst "$GEN" ", $COMMON, \"mode\": \"stream\", \"compress\": \"zstd\"" &&
    check gen-zst "$GEN" 128 1.5 tcp,udp,icmp ns "gentrace 40k, stream, zstd"
run_fp gen-bzst "$GEN" ", $COMMON, \"compress\": \"zstd\"" &&
    check gen-bzst "$GEN" 128 1.5 tcp,udp,icmp ns "gentrace 40k, buffered, zstd"
# the writers: inline (no thread), and three threads behind rings of one
# job with a small pool (the pipeline waits for them, nothing is lost)
run_fp gen-inline "$GEN" ", $COMMON, \"mode\": \"stream\", \"writer_threads\": 0, \"compress\": \"zstd\"" &&
    check gen-inline "$GEN" 128 1.5 tcp,udp,icmp ns "gentrace 40k, stream, zstd, inline writer"
is "$(counter gen-inline writer_threads)" 0 "writer_threads 0: no thread"
run_fp gen-q1 "$GEN" ", $COMMON, \"writer_threads\": 3, \"queue_length\": 1, \"max_memory\": 262144" &&
    check gen-q1 "$GEN" 128 1.5 tcp,udp,icmp ns "gentrace 40k, 3 writers, rings of 1 job, 256 KiB"
is "$(counter gen-q1 writer_threads)" 3 "three writer threads ran"
r=$(counter gen-q1 writer_waits)
[ "$r" -gt 0 ] && pass "rings of 1 job: the pipeline waited ($r times), counted" ||
    fail "rings of 1 job: the pipeline waited" "writer_waits $r"
for m in gen-stream gen-mem gen-zst gen-bzst gen-inline gen-q1; do
	if out=$(python3 "$CHECK" same "$WEIR_TMP/gen-buf/out" "$WEIR_TMP/$m/out"); then
		pass "$m and gen-buf hold the same flows and bytes: $out"
	else
		fail "$m and gen-buf hold the same flows and bytes" "$out"
	fi
done
# zero_payload off keeps the payload bytes (up to the header size)
run_fp 1kxun-keep "$DATA/ndpi-1kxun.pcap" ', "zero_payload": false' &&
    check 1kxun-keep "$DATA/ndpi-1kxun.pcap" 256 30 tcp us \
    "zero_payload false: the input's bytes, cut at 256" 0

# 3. configuration errors
weir cfg-bad --config /dev/stdin <<EOF
{"name": "x", "inputs": [{"path": "$DATA/ndpi-1kxun.pcap"}],
 "outputs": [{"type": "flowpcap", "dir": "$WEIR_TMP/bad", "protocols": ["tcp", "sctp"]}]}
EOF
is "$WRC" 2 "unknown protocol is a configuration error"
grep -q "'protocols'\[1\]" "$WERR" && pass "the message names 'protocols'[1]" ||
    fail "the message names 'protocols'[1]" "$(cat "$WERR")"
weir cfg-anon --config /dev/stdin <<EOF
{"name": "x", "inputs": [{"path": "$DATA/ndpi-1kxun.pcap"}],
 "outputs": [{"type": "flowpcap", "dir": "$WEIR_TMP/bad", "anonymize": "netblock"}]}
EOF
is "$WRC" 2 "'anonymize' is refused (the anonymize stage does it)"

# 4. kill -9: published files are complete, every index line names one
FIFO="$WEIR_TMP/fifo"
mkfifo "$FIFO"
half=$(( $(stat -c %s "$GEN") / 2 ))
python3 "$CHECK" feed "$GEN" "$FIFO" "$half" &
feeder=$!
rm -rf "$WEIR_TMP/killed"
cat >"$WEIR_TMP/killed.json" <<EOF
{"name": "killed", "inputs": [{"path": "$FIFO"}],
 "outputs": [{"type": "flowpcap", "dir": "$WEIR_TMP/killed", "mode": "stream"}]}
EOF
"$WEIR" --config "$WEIR_TMP/killed.json" >"$WEIR_TMP/killed.out" 2>&1 &
wpid=$!
for i in $(seq 1 50); do
	sleep 0.2
	ls "$WEIR_TMP"/killed/*/*/*/*.pcap >/dev/null 2>&1 && break
done
sleep 1
kill -9 "$wpid"
wait "$wpid" 2>/dev/null
kill "$feeder" 2>/dev/null
wait "$feeder" 2>/dev/null
if out=$(python3 "$CHECK" killed "$WEIR_TMP/killed"); then
	pass "after kill -9: published files complete, index matches, flows in progress hidden: $out"
else
	fail "after kill -9: published files complete, index matches, flows in progress hidden" "$out"
fi

# 5. SYN flood from 1 million spoofed sources: memory stays bounded
FLOOD="$WEIR_TMP/flood.pcap"
python3 "$CHECK" flood 1000000 "$FLOOD"
FL=', "max_flows": 10000, "min_packets": 2, "max_memory": 33554432'
# baseline: the same configuration on 10 packets
python3 "$CHECK" flood 10 "$WEIR_TMP/flood10.pcap"
rss()
{
	/usr/bin/time -f %M -o "$WEIR_TMP/$1.rss" "$WEIR" --config "$WEIR_TMP/$1.json" \
	    --summary "$WEIR_TMP/$1.summary.json" 2>"$WEIR_TMP/$1.err" >/dev/null
	sanitizer_clean "$WEIR_TMP/$1.err" "$1" || true
	tail -n 1 "$WEIR_TMP/$1.rss"
}
mkconf flood10 "$WEIR_TMP/flood10.pcap" "$FL"
base=$(rss flood10)
mkconf flood "$FLOOD" "$FL"
peak=$(rss flood)
bound=$(counter flood memory_bound_bytes)
started=$(counter flood flows_started)
evicted=$(counter flood flows_evicted)
small=$(counter flood small_flows)
files=$(counter flood files_written)
echo "# flood: peak RSS $peak KiB, baseline $base KiB, bound $((bound / 1024)) KiB"
[ "$peak" -le $((base + bound / 1024)) ] &&
    pass "1M-source SYN flood: peak RSS $peak KiB <= baseline $base + bound $((bound / 1024)) KiB" ||
    fail "1M-source SYN flood stays under the memory cap" "peak $peak KiB, baseline $base, bound $((bound / 1024))"
is "$started" 1000000 "flood: every spoofed source started a flow"
is "$evicted" 990000 "flood: flows beyond max_flows 10000 evicted, counted"
# every flow had one packet: the 990000 evicted ones and the 10000 ended
# at the end of input (the summary is taken after the outputs finish)
is "$small" 1000000 "flood: every one-packet flow counted in small_flows, no file"
is "$files" 0 "flood: no file for flows below min_packets"
# with the default min_packets 1, a (smaller) flood writes one file per SYN
python3 "$CHECK" flood 20000 "$WEIR_TMP/flood20k.pcap"
run_fp flood20k "$WEIR_TMP/flood20k.pcap" ', "max_flows": 1000'
n=$(cat "$WEIR_TMP"/flood20k/out/*/*/*/index.jsonl | wc -l)
is "$n" 20000 "20k-source flood with min_packets 1: one file and index line per SYN"
is "$(counter flood20k flows_evicted)" 19000 "20k flood: 19000 evictions counted"
rm -f "$FLOOD"

done_testing
