#!/bin/bash
# accounting.sh - the --summary adds up, and agrees with tcpdump and the
# files written; the counters output totals agree with tcpdump.
#
# Identities checked on every summary: read == sum(stage drops) + passed;
# each stage's "in" is the previous stage's in - dropped (the first's is
# read); each output's in == passed and in == written + dropped.  Then the
# numbers themselves: filter drops == read - tcpdump's count, 1-in-3
# sampling keeps ceil(count / 3), written == the packets in the file.
. tests/integration/common.bash

T=$WEIR_TMP
IN="$DATA/ndpi-1kxun.pcap"

# sumcheck SUMMARY: the identities; prints "ok" or what is wrong
sumcheck()
{
	python3 - "$1" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except Exception as e:
    print("unreadable summary: %s" % e); sys.exit()
bad = []
read, passed = s["read"], s["passed"]
drops = sum(st["dropped"] for st in s["stages"])
if read != drops + passed:
    bad.append("read %d != stage drops %d + passed %d" % (read, drops, passed))
if sum(i.get("packets", 0) for i in s.get("inputs", [])) not in (0, read):
    bad.append("inputs' packets do not sum to read %d" % read)
prev = read
for st in s["stages"]:
    if "in" in st and st["in"] != prev:
        bad.append("stage %s: in %d, expected %d" % (st["type"], st["in"], prev))
    prev -= st["dropped"]
for o in s["outputs"]:
    if o.get("in", passed) != passed:
        bad.append("output %s: in %d != passed %d" % (o["type"], o["in"], passed))
    if o["written"] + o["dropped"] != passed:
        bad.append("output %s: written %d + dropped %d != %d" %
                   (o["type"], o["written"], o["dropped"], passed))
print("; ".join(bad) if bad else "ok")
EOF
}

# field SUMMARY PATH: one number from the summary (python expression on s)
field()
{
	python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# --- filter + sample + truncate + two files + counters ---
cat >"$T/p.json" <<EOF
{"inputs": [{"path": "$IN"}],
 "stages": [{"type": "filter", "expr": "tcp"},
	    {"type": "sample", "mode": "count", "n": 3, "offset": 0},
	    {"type": "truncate", "snaplen": 96}],
 "outputs": [{"type": "pcap", "path": "$T/p1.pcap"},
	     {"type": "pcapng", "path": "$T/p2.pcapng"},
	     {"type": "counters", "path": "$T/p.jsonl", "format": "json",
	      "interval": 1}]}
EOF
if weir_ok p -q --config "$T/p.json" --summary "$T/p.sum.json"; then
	S="$T/p.sum.json"
	is "$(sumcheck "$S")" ok "filter+sample+truncate, 3 outputs: the summary adds up"
	tcpdump -r "$IN" -w "$T/tcp.pcap" tcp 2>/dev/null
	ntcp=$(npkts "$T/tcp.pcap")
	nin=$(npkts "$IN")
	is "$(field "$S" 's["read"]')" "$nin" "read = $nin packets in the file (capinfos)"
	is "$(field "$S" 's["stages"][0]["dropped"]')" $((nin - ntcp)) \
	    "filter dropped = $nin - tcpdump's $ntcp"
	is "$(field "$S" 's["passed"]')" $(((ntcp + 2) / 3)) \
	    "1-in-3 sampling passed ceil($ntcp / 3)"
	# packets longer than 96 among the kept: the truncate stage's count
	python3 "$TOOLS/tracetool.py" every "$T/tcp.pcap" "$T/kept.pcap" 3 0
	long=$(tsh "$T/kept.pcap" -T fields -e frame.cap_len | awk '$1 > 96' | wc -l)
	is "$(field "$S" '[x for x in s["stages"] if x["type"] == "truncate"][0]["truncated"]')" \
	    "$long" "truncate counted $long packets longer than 96"
	is "$(npkts "$T/p1.pcap") $(npkts "$T/p2.pcapng")" \
	    "$(field "$S" 's["outputs"][0]["written"]') $(field "$S" 's["outputs"][1]["written"]')" \
	    "pcap and pcapng files hold 'written' packets"
	# counters: totals and every 1 s interval against the selected packets
	# (bytes on the wire, before truncation: frame.len)
	tsh "$T/kept.pcap" -T fields -e frame.time_epoch -e frame.len |
	    awk '{ split($1, a, "."); n[a[1]]++; b[a[1]] += $2 }
	    END { for (k in n) print k, n[k], b[k] }' | sort -n >"$T/c.want"
	python3 - "$T/p.jsonl" >"$T/c.got" <<'EOF'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("packets"):
        print(r["start_ns"] // 10**9, r["packets"], r["bytes"])
EOF
	sort -n -o "$T/c.got" "$T/c.got"
	same_file "$T/c.got" "$T/c.want" "counters: packets and wire bytes of every 1 s interval"
fi

# --- counters alone: totals equal tcpdump's count and byte sum ---
for f in "udp|ndpi-1kxun.pcap" "tcp|libtrace-100_packets.pcap" \
    "vlan|libtrace-vlan.pcap"; do
	flt=${f%%|*}
	tr=${f#*|}
	weir_ok "cnt.$tr" -q --counters "$T/cnt.$tr.jsonl" \
	    --summary "$T/cnt.$tr.sum.json" -r "$DATA/$tr" "$flt" || continue
	want=$(tcpdump -r "$DATA/$tr" -w - "$flt" 2>/dev/null |
	    tsh - -T fields -e frame.len | awk '{ n++; b += $1 } END { print n + 0, b + 0 }')
	got=$(python3 -c '
import json, sys
n = b = 0
for l in open(sys.argv[1]):
    r = json.loads(l); n += r["packets"]; b += r["bytes"]
print(n, b)' "$T/cnt.$tr.jsonl")
	is "$got" "$want" "counters '$flt' on $tr: total packets and bytes as tcpdump (frame.len)"
	is "$(sumcheck "$T/cnt.$tr.sum.json")" ok "counters '$flt' on $tr: the summary adds up"
done

# --- random + flow sampling, anonymize, headers-only, -c ---
echo 8f3c5a7e91b2d4c6e8fa1c3e5a7b9d2f4e6a8c1b3d5f7e9a2c4b6d8f1a3c5e7b >"$T/k"
cat >"$T/q.json" <<EOF
{"inputs": [{"path": "$IN"}, {"path": "$DATA/ndpi-dns_fragmented.pcap"}],
 "stages": [{"type": "filter", "expr": "ip or ip6"},
	    {"type": "sample", "mode": "random", "p": 0.7, "seed": 3},
	    {"type": "sample", "mode": "flow", "n": 2, "offset": 0, "seed": 3},
	    {"type": "anonymize", "method": "cryptopan", "key_file": "$T/k",
	     "addresses": "both", "checksums": "update"},
	    {"type": "truncate", "headers_only": true}],
 "outputs": [{"type": "pcap", "path": "$T/q1.pcap"},
	     {"type": "counters", "path": "$T/q.jsonl"}]}
EOF
if weir_ok q -q --config "$T/q.json" --summary "$T/q.sum.json"; then
	is "$(sumcheck "$T/q.sum.json")" ok "two inputs, 5 stages: the summary adds up"
	is "$(field "$T/q.sum.json" 's["read"]')" \
	    $(($(npkts "$IN") + $(npkts "$DATA/ndpi-dns_fragmented.pcap"))) \
	    "two inputs: read = the sum of their packets"
	is "$(npkts "$T/q1.pcap")" "$(field "$T/q.sum.json" 's["passed"]')" \
	    "two inputs: the file holds 'passed' packets"
fi
if weir_ok c10 -q -c 10 --summary "$T/c10.sum.json" -r "$IN" -w "$T/c10.pcap" udp; then
	is "$(field "$T/c10.sum.json" 's["passed"]') $(npkts "$T/c10.pcap")" "10 10" \
	    "-c 10: 10 passed, 10 in the file"
	is "$(sumcheck "$T/c10.sum.json")" ok "-c 10: the summary adds up"
fi

# --- a truncated input: the summary is still written and adds up ---
weir trunc -q --summary "$T/t.sum.json" \
    -r "$DATA/suricata-http-mime-truncated.pcap" -w "$T/t.pcap"
is "$WRC" 1 "truncated input: exit status 1"
is "$(sumcheck "$T/t.sum.json")" ok "truncated input: the summary adds up"
is "$(field "$T/t.sum.json" 's["read"]') $(npkts "$T/t.pcap")" "2696 2696" \
    "truncated input: 2696 read, 2696 written (tshark/capinfos count)"

done_testing
