#!/bin/bash
# live.sh - live capture (-i, AF_PACKET TPACKET_V3 ring) against tcpreplay.
#
# Two network namespaces joined by veth pairs (names unique per run);
# tcpreplay sends real Ethernet traces from tests/data on one end, and
# weir-capture -i captures on the other end inside its namespace.  IPv6
# is off on both ends and no address is set, so the link carries only
# the replayed frames (see netns.bash).  Checks:
#   - count captured = count tcpreplay sent (its "Actual" line, no
#     failures), for several traces, including 802.1Q, QinQ (802.1ad)
#     and triple-tagged ones whose outer tag the kernel takes off;
#   - same bytes: `tcpdump -t -nn -e -v -xx` listings of our file and of
#     the replayed trace are identical;
#   - with a BPF filter, our file equals `tcpdump -r trace -w ref FILTER`,
#     with the filter in the kernel and with --no-kernel-filter;
#   - accounting: kernel_received = kernel_dropped + packets + read_ahead
#     + frames_skipped + ring_unread, kernel_dropped = 0 at the rate used,
#     bad_frames = 0;
#   - SIGTERM mid-replay: exit 0, complete readable file holding every
#     packet the kernel counted (ring drained);
#   - -c and --duration end the run;
#   - an idle link still ticks (counter intervals appear while idle);
#   - two interfaces at once (-i a -i b): every packet, each with its
#     own interface, and each interface's packets equal its trace.
# Skips (TAP) only when not root or without `ip netns`.
. tests/integration/common.bash
. tests/integration/netns.bash

netns_require
T=$WEIR_TMP
P=wl$$
RATE=${LIVE_PPS:-20000}
netns_setup "$P" || { echo "Bail out! cannot create namespaces"; exit 2; }
veth_add "${P}a" || { echo "Bail out! cannot create a veth pair"; exit 2; }
IFS_="${P}a-s"
IFC="${P}a-c"

# sumcheck SUMMARY: the live accounting of every input adds up
sumcheck()
{
	python3 - "$1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
bad = []
for i in s["inputs"]:
    lhs = i["kernel_received"]
    rhs = (i["kernel_dropped"] + i["packets"] + i["read_ahead"] +
           i["frames_skipped"] + i.get("before_start", 0) + i["ring_unread"])
    if lhs != rhs:
        bad.append("%s: received %d != %d" % (i["interface"], lhs, rhs))
    if i["bad_frames"]:
        bad.append("%s: %d bad frames" % (i["interface"], i["bad_frames"]))
if s["read"] != sum(i["packets"] for i in s["inputs"]):
    bad.append("read != sum of packets")
print("; ".join(bad) if bad else "ok")
EOF
}

field()
{
	python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print('"$2"')' "$1"
}

# cap_start NAME ARGS...: weir-capture in the capture namespace, in the
# background; waits until its NRINGS (default 1) rings are open (its -v
# lines say so).
CPID=
cap_start()
{
	local name=$1 i
	shift
	CERR="$T/$name.err"
	# not through in_c: a function in the background is a subshell,
	# and the signal must reach weir-capture itself
	ip netns exec "$NETNS_C" "$WEIR" -v "$@" >"$T/$name.out" 2>"$CERR" &
	CPID=$!
	NETNS_PIDS+=("$CPID")
	for i in $(seq 100); do
		[ "$(grep -c "ring of" "$CERR" 2>/dev/null)" -ge "${NRINGS:-1}" ] &&
		    return 0
		kill -0 "$CPID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

# cap_stop NAME: SIGTERM, wait; sets CRC to the exit status
cap_stop()
{
	kill -TERM "$CPID" 2>/dev/null
	wait "$CPID"
	CRC=$?
	sanitizer_clean "$CERR" "$1" || true
}

# replay IFACE TRACE [ARGS]: sets SENT (tcpreplay's "Actual" count) and
# RFAIL (its failed packets)
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

listing()
{
	tcpdump -t -nn -e -v -xx -r "$1" 2>/dev/null
}

# --- every packet, byte for byte, several traces ---
for tr in suricata-tls-subjectaltname.pcap ndpi-nintendo.pcap \
    ndpi-reddit-ipv6.pcap libtrace-vlan.pcap zeek-vlan-qinqinq.pcap \
    tcpdump-802.1ad_QinQ.pcap arkime-socks5-http-302-frag.pcap \
    zeek-erspan.pcap; do
	n=$(npkts "$DATA/$tr")
	if ! cap_start "t.$tr" -i "$IFC" -w "$T/$tr" --summary "$T/$tr.sum"; then
		fail "$tr: capture started" "$(cat "$CERR")"
		continue
	fi
	replay "$IFS_" "$DATA/$tr"
	sleep 0.3
	cap_stop "t.$tr"
	is "$CRC" 0 "$tr: weir-capture exits 0 on SIGTERM"
	is "$SENT/$RFAIL" "$n/0" "$tr: tcpreplay sent all $n packets"
	is "$(npkts "$T/$tr")" "$SENT" "$tr: captured as many as sent"
	listing "$DATA/$tr" >"$T/$tr.want"
	listing "$T/$tr" >"$T/$tr.got"
	same_file "$T/$tr.got" "$T/$tr.want" "$tr: same bytes as the trace (tcpdump -xx)"
	is "$(sumcheck "$T/$tr.sum")" ok "$tr: accounting adds up"
	is "$(field "$T/$tr.sum" 's["inputs"][0]["kernel_dropped"]')" 0 \
	    "$tr: no kernel drops at $RATE pps"
done
tcpdump -r "$DATA/libtrace-vlan.pcap" -w "$T/vlan.ref" vlan 2>/dev/null
is "$(field "$T/libtrace-vlan.pcap.sum" 's["inputs"][0]["vlan_reinserted"]')" \
    "$(npkts "$T/vlan.ref")" "VLAN: a tag put back on every tagged packet (tcpdump 'vlan')"

# --- filters: in the kernel and in user space, against tcpdump ---
I=0
for f in "suricata-tls-subjectaltname.pcap|tcp port 443" \
    "ndpi-nintendo.pcap|udp" "ndpi-reddit-ipv6.pcap|ip6 and tcp[13] & 2 != 0" \
    "libtrace-vlan.pcap|tcp" "libtrace-vlan.pcap|vlan and tcp" \
    "libtrace-vlan.pcap|vlan 32"; do
	tr=${f%%|*}
	flt=${f#*|}
	I=$((I + 1))
	words "$flt"
	tcpdump -r "$DATA/$tr" -w "$T/f$I.ref" "${WORDS[@]}" 2>/dev/null
	listing "$T/f$I.ref" >"$T/f$I.want"
	for mode in kernel user; do
		o="$T/f$I.$mode.pcap"
		extra=()
		[ $mode = user ] && extra=(--no-kernel-filter)
		if ! cap_start "f$I.$mode" -i "$IFC" "${extra[@]}" -w "$o" \
		    --summary "$o.sum" "${WORDS[@]}"; then
			fail "'$flt' ($mode): capture started" "$(cat "$CERR")"
			continue
		fi
		replay "$IFS_" "$DATA/$tr"
		sleep 0.3
		cap_stop "f$I.$mode"
		listing "$o" >"$o.got"
		same_file "$o.got" "$T/f$I.want" \
		    "$tr '$flt' ($mode filter): same packets and bytes as tcpdump ($(npkts "$T/f$I.ref"))"
		is "$(sumcheck "$o.sum")" ok "$tr '$flt' ($mode filter): accounting adds up"
		kf=$(field "$o.sum" 's["inputs"][0]["kernel_filter"]')
		if [ $mode = kernel ]; then
			is "$kf" True "'$flt': the filter went to the kernel"
		else
			is "$kf" False "'$flt': --no-kernel-filter keeps it in user space"
		fi
	done
	# without VLAN tags the kernel saw exactly what tcpdump selects
	case $tr in
	libtrace-vlan.pcap) ;;
	*) is "$(field "$T/f$I.kernel.pcap.sum" 's["inputs"][0]["kernel_received"]')" \
	    "$(npkts "$T/f$I.ref")" "'$flt': the kernel let through only the selected packets" ;;
	esac
done

# --- SIGTERM in the middle of a replay: complete file, ring drained ---
tr=zeek-echo-connections.pcap
if cap_start term -i "$IFC" -w "$T/term.pcap" --summary "$T/term.sum"; then
	in_s tcpreplay --pps "$RATE" -i "$IFS_" "$DATA/$tr" >/dev/null 2>&1 &
	RP=$!
	NETNS_PIDS+=("$RP")
	sleep 1.5
	cap_stop term
	wait "$RP"
	is "$CRC" 0 "SIGTERM mid-replay: exit 0"
	tshark_reads "$T/term.pcap" "SIGTERM mid-replay: tshark reads the file"
	got=$(npkts "$T/term.pcap")
	is "$got" "$(field "$T/term.sum" 's["outputs"][0]["written"]')" \
	    "SIGTERM mid-replay: the file holds every packet written ($got)"
	is "$(sumcheck "$T/term.sum")" ok "SIGTERM mid-replay: accounting adds up"
	is "$(field "$T/term.sum" 's["inputs"][0]["ring_unread"]')" 0 \
	    "SIGTERM mid-replay: the ring was drained"
	n=$(npkts "$DATA/$tr")
	if [ "$got" -gt 0 ] && [ "$got" -lt "$n" ]; then
		pass "SIGTERM mid-replay: stopped part way ($got of $n)"
	else
		fail "SIGTERM mid-replay: stopped part way" "$got of $n"
	fi
	# the packets are the trace's first ones, in order
	editcap -r "$DATA/$tr" "$T/term.want.pcap" "1-$got" 2>/dev/null
	listing "$T/term.want.pcap" >"$T/term.want"
	listing "$T/term.pcap" >"$T/term.got"
	same_file "$T/term.got" "$T/term.want" "SIGTERM mid-replay: the first $got packets of the trace"
	ls -a "$T" | grep -q '\.part$' && fail "no .part file left" "$(ls -a "$T")" ||
	    pass "no .part file left"
else
	fail "SIGTERM: capture started" "$(cat "$CERR")"
fi

# --- -c ends the run; accounting still adds up ---
if cap_start cnt -i "$IFC" -c 100 -w "$T/cnt.pcap" --summary "$T/cnt.sum"; then
	replay "$IFS_" "$DATA/ndpi-nintendo.pcap"
	for i in $(seq 40); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$CPID" 2>/dev/null && fail "-c 100: exits by itself" || pass "-c 100: exits by itself"
	cap_stop cnt
	is "$CRC" 0 "-c 100: exit 0"
	is "$(npkts "$T/cnt.pcap")" 100 "-c 100: 100 packets written"
	is "$(sumcheck "$T/cnt.sum")" ok "-c 100: accounting adds up (the rest is read_ahead or ring_unread)"
else
	fail "-c: capture started" "$(cat "$CERR")"
fi

# --- idle link: --duration ends the run, and ticks go on ---
if cap_start idle -i "$IFC" --duration 4 --counters "$T/idle.jsonl" \
    -w "$T/idle.pcap" --summary "$T/idle.sum"; then
	t0=$(date +%s.%N)
	replay "$IFS_" "$DATA/tcpdump-802.1ad_QinQ.pcap"
	sleep 2.6
	# counters go to a regular file only at the end; the summary of a
	# running capture is not there yet either, so look at it after.
	wait "$CPID"
	CRC=$?
	t1=$(date +%s.%N)
	sanitizer_clean "$CERR" idle || true
	is "$CRC" 0 "--duration 4: exit 0"
	el=$(python3 -c "print(int($t1 - $t0))")
	if [ "$el" -ge 2 ] && [ "$el" -le 6 ]; then
		pass "--duration 4: the run ended by itself (${el}s after the replay)"
	else
		fail "--duration 4: the run ended by itself" "${el}s"
	fi
	# the packets came in the first second; intervals after it were
	# written because the idle loop ticked with the current time
	lines=$(wc -l <"$T/idle.jsonl")
	pk=$(python3 -c '
import json, sys
print(sum(json.loads(l)["packets"] for l in open(sys.argv[1])))' "$T/idle.jsonl")
	if [ "$lines" -ge 3 ] && [ "$pk" = 2 ]; then
		pass "idle link: $lines counter intervals for 2 packets (ticks while idle)"
	else
		fail "idle link: counter intervals while idle" "$lines lines, $pk packets" "$(cat "$T/idle.jsonl")"
	fi
else
	fail "idle: capture started" "$(cat "$CERR")"
fi

# --- two interfaces at once, merged, each packet keeping its interface ---
veth_add "${P}b" || fail "second veth pair"
tra=suricata-tls-subjectaltname.pcap
trb=ndpi-nintendo.pcap
if NRINGS=2 cap_start two -i "$IFC" -i "${P}b-c" -w "$T/two.pcapng" --summary "$T/two.sum"; then
	replay "$IFS_" "$DATA/$tra" &
	R1=$!
	in_s tcpreplay --pps "$RATE" -i "${P}b-s" "$DATA/$trb" >"$T/two.rb" 2>&1
	wait "$R1"
	sleep 0.3
	cap_stop two
	is "$CRC" 0 "two interfaces: exit 0"
	na=$(npkts "$DATA/$tra")
	nb=$(npkts "$DATA/$trb")
	is "$(npkts "$T/two.pcapng")" $((na + nb)) "two interfaces: all $na + $nb packets"
	is "$(sumcheck "$T/two.sum")" ok "two interfaces: accounting adds up"
	for k in 0 1; do
		[ $k = 0 ] && tr=$tra || tr=$trb
		[ $k = 0 ] && ifn=$IFC || ifn=${P}b-c
		tshark -r "$T/two.pcapng" -Y "frame.interface_name == \"$ifn\"" \
		    -w "$T/two.$k.pcapng" 2>/dev/null
		listing "$T/two.$k.pcapng" >"$T/two.$k.got"
		listing "$DATA/$tr" >"$T/two.$k.want"
		same_file "$T/two.$k.got" "$T/two.$k.want" \
		    "two interfaces: interface $ifn holds exactly $tr"
	done
	is "$(tsh "$T/two.pcapng" -T fields -e frame.interface_name | sort -u | tr '\n' ' ')" \
	    "$IFC ${P}b-c " "two interfaces: pcapng names both interfaces"
	ooo=$(field "$T/two.sum" 's["out_of_order"]')
	pass "two interfaces: $ooo packets out of time order across rings (reported, not asserted)"
else
	fail "two interfaces: capture started" "$(cat "$CERR")"
fi

# --- configuration: -n prints the input object; mistakes are refused ---
weir_ok n -n -i eth9 -p --ring-blocks 8 --block-size 65536 \
    --block-timeout 5 --no-kernel-filter --duration 2.5 -w "$T/x.pcap"
is "$(python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
i = e["inputs"][0]
print(i["interface"], i["promisc"], i["blocks"], i["block_size"],
      i["block_timeout_ms"], i["kernel_filter"], i["timestamps"], e["duration"])' "$WOUT")" \
    "eth9 True 8 65536 5 False software 2.5" "-n prints the interface object with its ring settings"
weir bad1 -n -i "$IFC" --block-size 5000 -w "$T/x.pcap"
is "$WRC" 2 "--block-size not a power of two: exit 2 ($(head -c 90 "$WERR"))"
weir bad2 -n -i "$IFC" -r "$DATA/$tra" -w "$T/x.pcap"
is "$WRC" 2 "-i and -r mixed: exit 2 ($(head -c 90 "$WERR"))"
weir bad3 -n -i "$IFC" -i "$IFC" -w "$T/x.pcap"
is "$WRC" 2 "same interface twice: exit 2 ($(head -c 90 "$WERR"))"
weir bad4 -i nosuch0 -w "$T/x.pcap"
is "$WRC" 1 "unknown interface: exit 1 ($(head -c 90 "$WERR"))"

done_testing
