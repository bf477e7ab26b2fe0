#!/bin/bash
# workers.sh - weir-capture --workers N: N pipelines on one interface,
# sharing it through one PACKET_FANOUT hash group (docs/live.md "Workers").
#
# Two network namespaces joined by a veth pair (netns.bash); tcpreplay
# sends real traces from tests/data, weir-capture --workers 2 (and 4)
# captures on the other end.  Checks:
#   - the workers' files together hold exactly the replayed packets:
#     counts, and the sorted one-line-per-packet `tcpdump -nn -e -v -xx`
#     listing of all worker files equals that of the trace;
#   - every flow (tshark: protocol, addresses, ports, either direction)
#     lies in one worker's file only, fragments included;
#   - the summary's totals are the sums of the workers' summaries, read =
#     packets replayed, and the live accounting adds up for the total
#     and for each worker;
#   - per-worker names: pcap "x.w<i>.pcap", ipfix "f.w<i>.ipfix",
#     flowpcap "dir/w<i>", and each file's metadata says its worker;
#   - SIGTERM mid-replay: exit 0, every worker's file complete and
#     readable, no .part left, rings drained;
#   - SIGHUP rotates every worker's file; -c counts per worker; a status
#     line carries the totals and each worker;
#   - combinations that make no sense are refused, with their message.
# Skips (TAP) only when not root or without `ip netns`.
. tests/integration/common.bash
. tests/integration/netns.bash

netns_require
T=$WEIR_TMP
P=ww$$
RATE=${LIVE_PPS:-20000}
netns_setup "$P" || { echo "Bail out! cannot create namespaces"; exit 2; }
veth_add "${P}a" || { echo "Bail out! cannot create a veth pair"; exit 2; }
IFS_="${P}a-s"
IFC="${P}a-c"

# sumcheck SUMMARY: totals = sums of the workers, and the live accounting
# adds up for the total and for every worker
sumcheck()
{
	python3 - "$1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
bad = []
def acct(x, who):
    for i in x["inputs"]:
        lhs = i["kernel_received"]
        rhs = (i["kernel_dropped"] + i["packets"] + i["read_ahead"] +
               i["frames_skipped"] + i["before_start"] + i["ring_unread"])
        if lhs != rhs:
            bad.append("%s: received %d != %d" % (who, lhs, rhs))
        if i["bad_frames"]:
            bad.append("%s: %d bad frames" % (who, i["bad_frames"]))
    if x["read"] != sum(i["packets"] for i in x["inputs"]):
        bad.append("%s: read != sum of packets" % who)
    if x["read"] != sum(st["dropped"] for st in x["stages"]) + x["passed"]:
        bad.append("%s: read != dropped + passed" % who)
    for o in x["outputs"]:
        if o["in"] != o["written"] + o["dropped"]:
            bad.append("%s: output %s in != written + dropped" % (who, o["type"]))
acct(s, "total")
ws = s["workers"]
for k, w in enumerate(ws):
    if w["worker"] != k:
        bad.append("workers[%d] says worker %d" % (k, w["worker"]))
    acct(w, "worker %d" % k)
for key in ("read", "passed"):
    if s[key] != sum(w[key] for w in ws):
        bad.append("total %s %d != sum %d" % (key, s[key], sum(w[key] for w in ws)))
for key in ("kernel_received", "kernel_dropped", "packets", "ring_unread",
            "before_start"):
    for j, i in enumerate(s["inputs"]):
        t = sum(w["inputs"][j][key] for w in ws)
        if i[key] != t:
            bad.append("total inputs[%d].%s %d != sum %d" % (j, key, i[key], t))
for j, o in enumerate(s["outputs"]):
    t = sum(w["outputs"][j]["written"] for w in ws)
    if o["written"] != t:
        bad.append("total outputs[%d].written %d != sum %d" % (j, o["written"], t))
print("; ".join(bad) if bad else "ok")
EOF
}

field()
{
	python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print('"$2"')' "$1"
}

# cap_start NAME ARGS...: weir-capture in the capture namespace, in the
# background; waits until NRINGS rings are open (-v lines)
CPID=
cap_start()
{
	local name=$1 i
	shift
	CERR="$T/$name.err"
	ip netns exec "$NETNS_C" "$WEIR" -v "$@" >"$T/$name.out" 2>"$CERR" &
	CPID=$!
	NETNS_PIDS+=("$CPID")
	for i in $(seq 100); do
		grep -q "privileges dropped" "$CERR" 2>/dev/null &&
		    [ "$(grep -c "ring of" "$CERR")" -ge "${NRINGS:-1}" ] &&
		    return 0
		kill -0 "$CPID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

cap_stop()
{
	kill -TERM "$CPID" 2>/dev/null
	wait "$CPID"
	CRC=$?
	sanitizer_clean "$CERR" "$1" || true
}

replay()
{
	local ifc=$1 tr=$2 out
	shift 2
	out=$(in_s tcpreplay --pps "$RATE" "$@" -i "$ifc" "$tr" 2>&1)
	SENT=$(printf '%s\n' "$out" | sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p')
	RFAIL=$(printf '%s\n' "$out" | sed -n 's/.*Failed packets: *\([0-9]*\).*/\1/p')
	SENT=${SENT:-0}
	RFAIL=${RFAIL:-?}
}

# lines FILE...: one line per packet (tcpdump -t -nn -e -v -xx), sorted
lines()
{
	local f
	for f in "$@"; do
		tcpdump -t -nn -e -v -xx -r "$f" 2>/dev/null
	done | awk '/^[^\t ]/ { if (p != "") print p; p = $0; next }
	    { p = p " " $0 } END { if (p != "") print p }' | sort
}

# flowsplit FILE...: "ok N M" if no flow (tshark: protocol, addresses
# and ports, either direction) has unfragmented packets in two of the
# files (N flows), and no fragmented IPv4 datagram (addresses, protocol,
# IP id) has fragments in two of them (M datagrams)
flowsplit()
{
	python3 - "$@" <<'EOF'
import subprocess, sys
owner, frag, bad = {}, {}, []
for k, f in enumerate(sys.argv[1:]):
    out = subprocess.run(["tshark", "-r", f, "-o", "ip.defragment:FALSE",
        "-T", "fields", "-E", "separator=|", "-E", "occurrence=f",
        "-e", "ip.proto", "-e", "ipv6.nxt", "-e", "ip.src", "-e", "ip.dst",
        "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "tcp.srcport",
        "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport",
        "-e", "ip.flags.mf", "-e", "ip.frag_offset", "-e", "ip.id"],
        capture_output=True, text=True).stdout
    for l in out.splitlines():
        v = l.split("|")
        if v[10] in ("1", "True") or v[11] not in ("", "0"):
            key = (v[0], v[2], v[3], v[12])
            if frag.setdefault(key, k) != k:
                bad.append("datagram %s in workers %d and %d" % (key, frag[key], k))
            continue
        sport = v[6] or v[8]
        dport = v[7] or v[9]
        if not sport:
            continue
        a = (v[2] or v[4], sport)
        b = (v[3] or v[5], dport)
        key = (v[0] or v[1],) + tuple(sorted([a, b]))
        if owner.setdefault(key, k) != k:
            bad.append("%s in workers %d and %d" % (key, owner[key], k))
print("; ".join(bad[:5]) if bad else "ok %d %d" % (len(owner), len(frag)))
EOF
}

# --- every packet once, each flow in one worker, several traces ---
for run in "2|suricata-tls-subjectaltname.pcap" "2|ndpi-nintendo.pcap" \
    "2|ndpi-reddit-ipv6.pcap" "2|libtrace-vlan.pcap" \
    "2|ndpi-dns_fragmented.pcap" "4|suricata-tls-subjectaltname.pcap" \
    "4|ndpi-reddit-ipv6.pcap"; do
	nw=${run%%|*}
	tr=${run#*|}
	id="$nw.$tr"
	n=$(npkts "$DATA/$tr")
	if ! NRINGS=$nw cap_start "t.$id" --workers "$nw" -i "$IFC" \
	    -w "$T/$id" --summary "$T/$id.sum"; then
		fail "$id: capture started" "$(cat "$CERR")"
		continue
	fi
	replay "$IFS_" "$DATA/$tr"
	sleep 0.3
	cap_stop "t.$id"
	is "$CRC" 0 "$tr, $nw workers: exit 0 on SIGTERM"
	is "$SENT/$RFAIL" "$n/0" "$tr, $nw workers: tcpreplay sent all $n packets"
	files=()
	got=0
	per=""
	for i in $(seq 0 $((nw - 1))); do
		f="$T/${id%.pcap}.w$i.pcap"
		if [ -f "$f" ]; then
			files+=("$f")
			k=$(npkts "$f")
		else
			k=0
		fi
		got=$((got + k))
		per="$per $k"
		is "$k" "$(field "$T/$id.sum" "s['workers'][$i]['outputs'][0]['written']")" \
		    "$tr, $nw workers: worker $i's file holds what it wrote ($k)"
	done
	is "$got" "$SENT" "$tr, $nw workers: the workers' files hold as many packets as sent (${per# })"
	lines "${files[@]}" >"$T/$id.got"
	lines "$DATA/$tr" >"$T/$id.want"
	same_file "$T/$id.got" "$T/$id.want" \
	    "$tr, $nw workers: the union of the workers' files is the trace (sorted tcpdump -xx lines)"
	fs=$(flowsplit "${files[@]}")
	case $fs in
	ok*) set -- $fs
	    pass "$tr, $nw workers: each of $2 flows (unfragmented packets) and each of $3 fragmented datagrams in one worker's file only" ;;
	*) fail "$tr, $nw workers: each flow in one worker's file only" "$fs" ;;
	esac
	is "$(sumcheck "$T/$id.sum")" ok "$tr, $nw workers: totals are the workers' sums, accounting adds up"
	is "$(field "$T/$id.sum" 's["read"]')" "$SENT" "$tr, $nw workers: summary read = packets sent"
	is "$(field "$T/$id.sum" 's["inputs"][0]["kernel_dropped"]')" 0 \
	    "$tr, $nw workers: no kernel drops at $RATE pps"
done
# 4 workers over 108 flows: the kernel spread them (not a fixed count)
nonempty=$(field "$T/4.suricata-tls-subjectaltname.pcap.sum" 'sum(1 for w in s["workers"] if w["read"] > 0)')
if [ "$nonempty" -ge 2 ]; then
	pass "4 workers over 108 flows: $nonempty workers got packets"
else
	fail "4 workers over 108 flows: the flows were spread" "$nonempty workers got packets"
fi

# --- traffic already flowing while the workers start ---
# A socket must be bound before it joins the fanout group, and what it
# receives in between also reaches the group: frames stamped before
# the last worker joined are discarded and counted (before_start), so no
# frame is captured twice.  40 000 distinct UDP frames (a sequence number
# in each) over 256 flows are replayed; the capture starts and stops in
# the middle.
python3 - "$T/uniq.pcap" <<'EOF'
import struct, sys
out = open(sys.argv[1], "wb")
out.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
for n in range(40000):
    f = n % 256
    payload = struct.pack(">I", n) + bytes(20)
    udp = struct.pack(">HHHH", 10000 + f, 53, 8 + len(payload), 0) + payload
    tl = 20 + len(udp)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, tl, n & 0xffff, 0, 64, 17, 0,
                     bytes([10, 1, f, 1]), bytes([10, 2, 0, 1]))
    s = sum(struct.unpack(">10H", ip))
    while s > 0xffff:
        s = (s & 0xffff) + (s >> 16)
    ip = ip[:10] + struct.pack(">H", ~s & 0xffff) + ip[12:]
    fr = bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0]) + ip + udp
    out.write(struct.pack("<IIII", 1700000000 + n // 1000, (n % 1000) * 1000,
                          len(fr), len(fr)) + fr)
EOF
in_s tcpreplay --pps "$RATE" -i "$IFS_" "$T/uniq.pcap" >"$T/uniq.replay" 2>&1 &
RP=$!
NETNS_PIDS+=("$RP")
sleep 0.3
if NRINGS=4 cap_start start4 --workers 4 -i "$IFC" -w "$T/st.pcap" \
    --summary "$T/st.sum"; then
	sleep 0.3
	cap_stop start4
	wait "$RP"
	is "$CRC" 0 "traffic during start-up, 4 workers: exit 0 on SIGTERM"
	stf=()
	for i in 0 1 2 3; do
		[ -f "$T/st.w$i.pcap" ] && stf+=("$T/st.w$i.pcap")
	done
	lines "${stf[@]}" >"$T/st.lines"
	is "$(uniq -d "$T/st.lines" | wc -l)/$([ -s "$T/st.lines" ] && echo some)" "0/some" \
	    "traffic during start-up, 4 workers: $(wc -l <"$T/st.lines") distinct frames captured, none twice"
	is "$(sumcheck "$T/st.sum")" ok \
	    "traffic during start-up: the accounting adds up, frames before the start counted"
	echo "# frames stamped before the start, discarded: $(field "$T/st.sum" 's["inputs"][0]["before_start"]')"
else
	fail "traffic during start-up: capture started" "$(cat "$CERR")"
	wait "$RP"
fi

# --- flow outputs and metadata: per-worker names ---
tr=suricata-tls-subjectaltname.pcap
cat >"$T/flows.json" <<EOF
{"name": "wk", "inputs": [{"interface": "$IFC"}], "workers": 2,
 "outputs": [{"type": "pcap", "path": "$T/m.pcap", "metadata": true},
  {"type": "ipfix", "transport": "file", "path": "$T/f.ipfix"},
  {"type": "flowpcap", "dir": "$T/flows/", "protocols": ["tcp", "udp"]},
  {"type": "counters", "path": "$T/c.csv", "format": "csv"}]}
EOF
if NRINGS=2 cap_start flows --config "$T/flows.json" --summary "$T/flows.sum"; then
	replay "$IFS_" "$DATA/$tr"
	sleep 0.3
	cap_stop flows
	is "$CRC" 0 "flow outputs, 2 workers: exit 0"
	for i in 0 1; do
		ok=1
		for f in "$T/m.w$i.pcap" "$T/f.w$i.ipfix" "$T/c.w$i.csv" "$T/flows/w$i"; do
			[ -e "$f" ] || { ok=0; fail "worker $i: '$f' exists" "$(ls "$T")"; }
		done
		[ $ok = 1 ] && pass "worker $i: m.w$i.pcap, f.w$i.ipfix, c.w$i.csv and flows/w$i/"
		is "$(field "$T/m.w$i.pcap.meta.json" 's["config"]["worker"], s["config"]["outputs"][0]["path"].endswith("m.w%d.pcap" % s["config"]["worker"])')" \
		    "$i True" "worker $i: its file's metadata names the worker"
	done
	# as many per-flow files as one pipeline makes of the same replay
	# (each flow whole in one worker: none split into two files)
	nf=$(find "$T/flows" -name '*.pcap' | wc -l)
	cat >"$T/flows1.json" <<EOF
{"name": "wk1", "inputs": [{"interface": "$IFC"}],
 "outputs": [{"type": "flowpcap", "dir": "$T/flows1", "protocols": ["tcp", "udp"]}]}
EOF
	if cap_start flows1 --config "$T/flows1.json"; then
		replay "$IFS_" "$DATA/$tr"
		sleep 0.3
		cap_stop flows1
	fi
	is "$nf" "$(find "$T/flows1" -name '*.pcap' | wc -l)" \
	    "flowpcap, 2 workers: as many per-flow files as one worker makes ($nf)"
	is "$(field "$T/flows.sum" 's["outputs"][1]["flows_exported"] == sum(w["outputs"][1]["flows_exported"] for w in s["workers"])')" \
	    True "ipfix, 2 workers: flows exported = sum of the workers'"
	is "$(sumcheck "$T/flows.sum")" ok "flow outputs, 2 workers: accounting adds up"
else
	fail "flow outputs: capture started" "$(cat "$CERR")"
fi

# --- SIGTERM in the middle of a replay: every worker's file complete ---
tr=zeek-echo-connections.pcap
if NRINGS=2 cap_start term --workers 2 -i "$IFC" -w "$T/term.pcap" --summary "$T/term.sum"; then
	in_s tcpreplay --pps "$RATE" -i "$IFS_" "$DATA/$tr" >/dev/null 2>&1 &
	RP=$!
	NETNS_PIDS+=("$RP")
	sleep 1.5
	cap_stop term
	wait "$RP"
	is "$CRC" 0 "SIGTERM mid-replay, 2 workers: exit 0"
	tot=0
	for i in 0 1; do
		f="$T/term.w$i.pcap"
		tshark_reads "$f" "SIGTERM mid-replay: tshark reads worker $i's file"
		k=$(npkts "$f")
		tot=$((tot + k))
		is "$k" "$(field "$T/term.sum" "s['workers'][$i]['outputs'][0]['written']")" \
		    "SIGTERM mid-replay: worker $i's file holds every packet it wrote ($k)"
		is "$(field "$T/term.sum" "s['workers'][$i]['inputs'][0]['ring_unread']")" 0 \
		    "SIGTERM mid-replay: worker $i's ring was drained"
	done
	is "$tot" "$(field "$T/term.sum" 's["read"]')" "SIGTERM mid-replay: the files hold every packet read ($tot)"
	is "$(sumcheck "$T/term.sum")" ok "SIGTERM mid-replay: accounting adds up"
	n=$(npkts "$DATA/$tr")
	if [ "$tot" -gt 0 ] && [ "$tot" -lt "$n" ]; then
		pass "SIGTERM mid-replay: stopped part way ($tot of $n)"
	else
		fail "SIGTERM mid-replay: stopped part way" "$tot of $n"
	fi
	ls -a "$T" | grep -q '\.part$' && fail "no .part file left" "$(ls -a "$T")" ||
	    pass "SIGTERM mid-replay: no .part file left"
else
	fail "SIGTERM: capture started" "$(cat "$CERR")"
fi

# --- SIGHUP rotates every worker; status lines carry every worker ---
tr=ndpi-nintendo.pcap
if NRINGS=2 cap_start hup --workers 2 -i "$IFC" -w "$T/hup.pcap" \
    --status-fd 1 --status-interval 0 --summary "$T/hup.sum"; then
	replay "$IFS_" "$DATA/$tr"
	sleep 0.3
	kill -USR1 "$CPID"
	sleep 0.5
	kill -HUP "$CPID"
	sleep 0.3
	replay "$IFS_" "$DATA/$tr"
	sleep 0.3
	cap_stop hup
	is "$CRC" 0 "SIGHUP, 2 workers: exit 0"
	for i in 0 1; do
		nf=$(ls "$T" | grep -c "^hup\.w$i.*\.pcap$")
		is "$nf" 2 "SIGHUP: worker $i rotated its file (2 files)"
	done
	tot=0
	for f in "$T"/hup.w*.pcap; do tot=$((tot + $(npkts "$f"))); done
	is "$tot" $((2 * $(npkts "$DATA/$tr"))) "SIGHUP: the rotated files hold both replays"
	is "$(python3 -c '
import json, sys
ls = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
sig = [l for l in ls if l["event"] == "signal"]
end = [l for l in ls if l["event"] == "end"]
s = sig[0]
print(len(sig), len(end), len(s["workers"]), s["read"] == sum(w["read"] for w in s["workers"]) == 1000,
      end[0]["read"] == sum(w["read"] for w in end[0]["workers"]) == 2000)' "$T/hup.out")" \
	    "1 1 2 True True" "SIGUSR1 and the end: one status line each, totals = the 2 workers' sums"
else
	fail "SIGHUP: capture started" "$(cat "$CERR")"
fi

# --- -c counts per worker ---
tr=ndpi-nintendo.pcap
if NRINGS=2 cap_start cnt --workers 2 -i "$IFC" -c 50 -w "$T/cnt.pcap" --summary "$T/cnt.sum"; then
	replay "$IFS_" "$DATA/$tr"
	for i in $(seq 40); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$CPID" 2>/dev/null && fail "-c 50, 2 workers: exits by itself" ||
	    pass "-c 50, 2 workers: exits by itself once each worker has 50"
	cap_stop cnt
	is "$CRC" 0 "-c 50, 2 workers: exit 0"
	is "$(npkts "$T/cnt.w0.pcap") $(npkts "$T/cnt.w1.pcap")" "50 50" "-c 50, 2 workers: 50 packets in each worker's file"
	is "$(sumcheck "$T/cnt.sum")" ok "-c 50, 2 workers: accounting adds up"
else
	fail "-c: capture started" "$(cat "$CERR")"
fi

# --- configuration: -n, and what makes no sense is refused ---
weir_ok n -n --workers 3 -i eth9 -w "$T/x.pcap"
is "$(field "$WOUT" 's["workers"]')" 3 "-n prints \"workers\": 3"
weir r1 -n --workers 2 -r "$DATA/ndpi-nintendo.pcap" -w "$T/x.pcap"
is "$WRC" 2 "--workers 2 with a trace file: exit 2"
grep -q "workers need live interfaces" "$WERR" && pass "... says: $(head -c 120 "$WERR")" || fail "trace refused with a message" "$(cat "$WERR")"
weir r2 -n --workers 2 -i eth9 -w -
is "$WRC" 2 "--workers 2 -w -: exit 2"
grep -q "stdout" "$WERR" && pass "... says: $(head -c 120 "$WERR")" || fail "stdout refused with a message" "$(cat "$WERR")"
weir r3 -n --workers 65 -i eth9 -w "$T/x.pcap"
is "$WRC" 2 "--workers 65: exit 2 ($(head -c 80 "$WERR"))"
echo '{"inputs": [{"interface": "eth9"}], "workers": 0, "outputs": [{"type": "pcap", "path": "x.pcap"}]}' >"$T/w0.json"
weir r4 -n --config "$T/w0.json"
is "$WRC" 2 "\"workers\": 0 in the config: exit 2 ($(head -c 80 "$WERR"))"
echo '{"inputs": [{"ring_fd": 3}], "workers": 2, "outputs": [{"type": "pcap", "path": "x.pcap"}]}' >"$T/ring.json"
weir r5 -n --config "$T/ring.json"
is "$WRC" 2 "a weir-tap ring with 2 workers: exit 2"
grep -q "weir-tap ring" "$WERR" && pass "... says: $(head -c 120 "$WERR")" || fail "ring refused with a message" "$(cat "$WERR")"
mkfifo "$T/ctl"
cat >"$T/fifo.json" <<EOF
{"inputs": [{"interface": "eth9"}], "workers": 2,
 "outputs": [{"type": "sessions", "path": "$T/s.jsonl", "control": "$T/ctl"}]}
EOF
weir r6 -n --config "$T/fifo.json"
is "$WRC" 2 "a sessions control FIFO with 2 workers: exit 2"
grep -q "control FIFO" "$WERR" && pass "... says: $(head -c 120 "$WERR")" || fail "control FIFO refused with a message" "$(cat "$WERR")"
weir r7 -n --workers 2 -i eth8 -i eth9 --fanout 7 -w "$T/x.pcapng"
is "$WRC" 2 "one --fanout group for two interfaces with workers: exit 2"
grep -q "belongs to one interface" "$WERR" && pass "... says: $(head -c 120 "$WERR")" || fail "shared group refused with a message" "$(cat "$WERR")"

done_testing
