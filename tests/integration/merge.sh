#!/bin/bash
# merge.sh - several -r inputs merged in time order into one pcapng, each
# packet keeping its interface.
#
# Every output packet is found in exactly one input (by time, lengths,
# addresses, ports and IP id); the output's interface ids map one-to-one
# onto (input, input interface) pairs; no input packet is lost or
# duplicated; timestamps never go back.
. tests/integration/common.bash

T=$WEIR_TMP
T0=1704067200
A="$T/a.pcap"
B="$T/b.pcap"
python3 "$GENTRACE" --quiet --packets 3000 --rate-pps 1000 --seed 1 \
    --start-time "$T0" --out "$A"
python3 "$GENTRACE" --quiet --packets 2000 --rate-pps 700 --seed 2 \
    --start-time "$T0.5" --out "$B"

KEYF="-e frame.time_epoch -e frame.len -e frame.cap_len -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e tcp.srcport -e udp.srcport -e ip.id -e frame.interface_id"

# mergecheck NAME OUT IN...: the checks above; prints "ok ..." or problems
mergecheck()
{
	local name=$1 out=$2 i=0 f
	shift 2
	: >"$T/$name.inkeys"
	for f in "$@"; do
		i=$((i + 1))
		# shellcheck disable=SC2086
		tsh "$f" -T fields $KEYF | sed "s/^/$i\t/" >>"$T/$name.inkeys"
	done
	# shellcheck disable=SC2086
	tsh "$out" -T fields $KEYF >"$T/$name.outkeys"
	python3 - "$T/$name.inkeys" "$T/$name.outkeys" <<'EOF'
import sys
from collections import Counter
def key(f):
    # time to the microsecond: resolutions of the inputs differ
    s, _, frac = f[0].partition(".")
    return (s, (frac + "000000")[:6]) + tuple(f[1:-1])
ins, src = Counter(), {}
for l in open(sys.argv[1]):
    f = l.rstrip("\n").split("\t")
    k = key(f[1:])
    ins[k] += 1
    src.setdefault(k, set()).add((f[0], f[-1]))
outs = Counter()
ifmap, bad, last = {}, [], None
n = 0
for l in open(sys.argv[2]):
    n += 1
    f = l.rstrip("\n").split("\t")
    k = key(f)
    outs[k] += 1
    t = (int(k[0]), int(k[1]))
    if last is not None and t < last:
        bad.append("packet %d: time goes back" % n)
    last = t
    cands = src.get(k)
    if not cands:
        bad.append("packet %d: in no input" % n)
        continue
    ifmap.setdefault(f[-1], set()).update(cands)
if outs != ins:
    lost = sum((ins - outs).values())
    extra = sum((outs - ins).values())
    bad.append("%d input packets missing, %d extra" % (lost, extra))
# each output interface must come from one (input, interface) pair, and
# no pair may be split over two output interfaces
back = {}
for oif, pairs in ifmap.items():
    if len(pairs) != 1:
        bad.append("output interface %s holds packets of %s" % (oif, sorted(pairs)))
    for p in pairs:
        back.setdefault(p, set()).add(oif)
for p, oifs in back.items():
    if len(oifs) != 1:
        bad.append("input %s interface %s became %s" % (p[0], p[1], sorted(oifs)))
if bad:
    print("\n".join(bad[:8]))
else:
    print("ok %d packets, %d interfaces" % (n, len(ifmap)))
EOF
}

# merge NAME NIFS INPUT...: one merge run with its checks; NIFS is the
# number of (input, interface) pairs tshark sees in the inputs
merge()
{
	local name=$1 nifs=$2 out="$T/$1.pcapng" want res f
	shift 2
	local args=()
	want=0
	for f in "$@"; do
		args+=(-r "$f")
		want=$((want + $(npkts "$f")))
	done
	weir_ok "$name" -q "${args[@]}" -w "$out" || return
	is "$(npkts "$out")" "$want" "$name: $want packets = the sum of the inputs"
	res=$(mergecheck "$name" "$out" "$@")
	case $res in
	"ok $want packets, $nifs interfaces")
		pass "$name: time order, every packet once, $nifs interfaces kept" ;;
	*) fail "$name: time order, every packet once, interfaces kept" "$res" ;;
	esac
	tshark_reads "$out" "$name: tshark reads the merged file"
}

# two generated traces overlapping in time
merge gen 2 "$A" "$B"
# the same, the other way round
merge gen-rev 2 "$B" "$A"
# real traces of three link types (Linux cooked, raw IP, Ethernet)
merge real-sll-raw 3 "$DATA/ndpi-KakaoTalk_talk-sll.pcap" \
    "$DATA/ndpi-ocs-rawip.pcap" "$DATA/ndpi-nfsv3-bigendian.pcap"
# pcapng with two interfaces (ns and us) + a pcap + ERF (two ERF ports:
# tshark gives each its interface)
merge real-multi 5 "$DATA/zeek-pcapng-multi-interface.pcapng" \
    "$DATA/zeek-dns-edns-ecs.pcap" "$DATA/libtrace-100_packets.erf"

# interleaving really happened: packets of both inputs alternate in the
# output more than a few times
tsh "$T/gen.pcapng" -T fields -e frame.interface_id | uniq | wc -l >"$T/runs"
runs=$(cat "$T/runs")
if [ "$runs" -gt 100 ]; then
	pass "gen: the inputs interleave ($runs runs of one interface)"
else
	fail "gen: the inputs interleave" "$runs runs"
fi

# into a pcap, one link type only: other link types are dropped and counted
weir_ok topcap -q --summary "$T/topcap.json" -r "$A" \
    -r "$DATA/ndpi-ocs-rawip.pcap" -w "$T/topcap.pcap"
if [ "$WRC" -eq 0 ] || [ "$WRC" -eq 1 ]; then
	res=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
o = s["outputs"][0]
print(s["read"], s["passed"], o["written"], o["dropped"])' "$T/topcap.json" 2>&1)
	set -- $res
	n=$(npkts "$T/topcap.pcap")
	if [ "$#" -eq 4 ] && [ "$1" -eq 3946 ] && [ "$3" -eq "$n" ] &&
	    [ $(($3 + $4)) -eq "$2" ] && [ "$4" -gt 0 ]; then
		pass "Ethernet + raw IP into one pcap: $3 written, $4 dropped and counted"
	else
		fail "Ethernet + raw IP into one pcap: drops counted" \
		    "read passed written dropped: $res; file has $n"
	fi
fi

done_testing
