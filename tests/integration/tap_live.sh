#!/bin/bash
# tap_live.sh - weir-tap on a live interface: 16 experiments with
# different filters on one veth each get exactly the packets their filter
# selects from a tcpreplay replay, and nothing else.
#
# Two network namespaces joined by a veth pair (netns.bash); tcpreplay
# sends a real trace on one end; weir-tap -i captures on the other end and
# feeds 16 tenant weir-capture processes.  For every tenant its file's
# `tcpdump -t -nn -e -v -xx` listing equals that of
# `tcpdump -r TRACE -w REF FILTER`; weir-tap's counts agree (matched =
# written = tcpdump's count, nothing dropped); the kernel's accounting adds
# up; a tenant under a 64-byte policy gets 64 bytes of each packet.
# Skips (TAP) only when not root or without `ip netns`.
. tests/integration/common.bash
. tests/integration/netns.bash

netns_require
T=$WEIR_TMP
TAPBIN="$(dirname "$WEIR")/weir-tap"
P=wt$$
RATE=${LIVE_PPS:-20000}
netns_setup "$P" || { echo "Bail out! cannot create namespaces"; exit 2; }
veth_add "${P}a" || { echo "Bail out! cannot create a veth pair"; exit 2; }
IFS_="${P}a-s"
IFC="${P}a-c"
# the trace has frames of up to 11.6 kB (captured after segmentation
# offload): the largest MTU a veth takes lets every one through
ip -n "$NETNS_S" link set "$IFS_" mtu 65535
ip -n "$NETNS_C" link set "$IFC" mtu 65535
TR=ndpi-1kxun.pcap
IN="$DATA/$TR"

jget()
{
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

listing()
{
	tcpdump -t -nn -e -v -xx -r "$1" 2>/dev/null
}

# tap_start NAME ARGS...: weir-tap in the capture namespace, in the
# background; waits until its ring is open and its tenants are running
TPID=
tap_start()
{
	local name=$1 i
	shift
	TERR="$T/$name.err"
	ip netns exec "$NETNS_C" "$TAPBIN" -v "$@" >"$T/$name.out" 2>"$TERR" &
	TPID=$!
	NETNS_PIDS+=("$TPID")
	for i in $(seq 200); do
		grep -q "ring of" "$TERR" 2>/dev/null &&
		    [ "$(pgrep -c -P "$TPID" 2>/dev/null)" -ge "$NTEN" ] &&
		    return 0
		kill -0 "$TPID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

tap_stop()
{
	kill -TERM "$TPID" 2>/dev/null
	wait "$TPID"
	TRC=$?
	sanitizer_clean "$TERR" "$1" || true
}

replay()
{
	local out
	out=$(in_s tcpreplay --pps "$RATE" -i "$IFS_" "$1" 2>&1)
	SENT=$(printf '%s\n' "$out" | sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p')
	RFAIL=$(printf '%s\n' "$out" | sed -n 's/.*Failed packets: *\([0-9]*\).*/\1/p')
	SENT=${SENT:-0}
	RFAIL=${RFAIL:-?}
}

HOST=$(tsh "$IN" -T fields -e ip.src | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}')
UPORT=$(tsh "$IN" -Y udp -T fields -e udp.dstport | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}')
FILTERS=("tcp" "udp" "port 53" "tcp port 80" "tcp port 443" "icmp"
    "ip6" "tcp[tcpflags] & tcp-syn != 0" "net 192.168.0.0/16"
    "host $HOST" "src host $HOST and tcp" "udp port $UPORT"
    "greater 1000" "less 100" "not ip" "")
NTEN=${#FILTERS[@]}
mkdir -p "$T/o"
args=()
for i in "${!FILTERS[@]}"; do
	cat >"$T/t$i.json" <<EOF
{"name": "t$i", "stages": [{"type": "filter", "expr": "${FILTERS[$i]}"}],
 "outputs": [{"type": "pcap", "path": "$T/o/t$i.pcap"},
  {"type": "counters", "path": "$T/o/t$i.counters.jsonl", "interval": 0.5}]}
EOF
	args+=("$T/t$i.json")
done

N=$(npkts "$IN")
if tap_start t16 -i "$IFC" --summary "$T/t16.sum" --tenant-summaries "$T/o" "${args[@]}"; then
	pass "weir-tap started on $IFC with $NTEN tenants"
else
	fail "weir-tap started" "$(cat "$TERR")"
fi
replay "$IN"
sleep 0.3
tap_stop t16
is "$TRC" 0 "weir-tap exits 0 on SIGTERM ($(grep -v 'ring of' "$TERR" | head -c 300))"
is "$SENT/$RFAIL" "$N/0" "tcpreplay sent all $N packets"
is "$(jget "$T/t16.sum" 'j["read"]')" "$SENT" "weir-tap read as many as were sent"
is "$(jget "$T/t16.sum" 'j["kernel"]["dropped"]')" 0 "no kernel drops at $RATE pps"
is "$(jget "$T/t16.sum" 'j["kernel"]["received"] - j["kernel"]["dropped"] - j["read"] - j["kernel"]["frames_skipped"] - j["kernel"]["ring_unread"]')" 0 \
    "kernel accounting adds up: received = dropped + read + skipped + unread"
bad=""
for i in "${!FILTERS[@]}"; do
	words "${FILTERS[$i]}"
	tcpdump -r "$IN" -w "$T/ref$i.pcap" "${WORDS[@]}" 2>/dev/null
	want=$(tcpdump -r "$T/ref$i.pcap" 2>/dev/null | wc -l)
	listing "$T/ref$i.pcap" >"$T/ref$i.txt"
	listing "$T/o/t$i.pcap" >"$T/got$i.txt"
	cmp -s "$T/ref$i.txt" "$T/got$i.txt" ||
	    bad="$bad [t$i '${FILTERS[$i]}': $(wc -l <"$T/got$i.txt") vs $(wc -l <"$T/ref$i.txt") lines]"
	m=$(jget "$T/t16.sum" "j['tenants'][$i]['matched']")
	w=$(jget "$T/t16.sum" "j['tenants'][$i]['written']")
	d=$(jget "$T/t16.sum" "j['tenants'][$i]['ring_full_drops']")
	[ "$m/$w/$d" = "$want/$want/0" ] ||
	    bad="$bad [t$i: matched $m written $w dropped $d, tcpdump $want]"
	r=$(jget "$T/o/t$i.summary.json" 'j["read"]')
	k=$(jget "$T/o/t$i.summary.json" 'j["inputs"][0]["kernel_received"]')
	[ "$r" = "$want" ] || bad="$bad [t$i: tenant read $r, tcpdump $want]"
	[ "$k" = "$(jget "$T/t16.sum" 'j["kernel"]["received"]')" ] ||
	    bad="$bad [t$i: its summary says kernel_received $k]"
done
# per-interval capture losses in every tenant's counters: the lines'
# kernel_received add up to the capture's, ring drops to the tenant's own
# (a tenant that got no packet has no interval, hence no line)
for i in "${!FILTERS[@]}"; do
	[ -s "$T/o/t$i.counters.jsonl" ] || continue
	k=$(python3 -c 'import json, sys; print(sum(json.loads(l)["kernel_received"] for l in open(sys.argv[1])), sum(json.loads(l)["ring_dropped"] for l in open(sys.argv[1])))' "$T/o/t$i.counters.jsonl" 2>&1)
	[ "$k" = "$(jget "$T/t16.sum" 'j["kernel"]["received"]') 0" ] ||
	    bad="$bad [t$i counters: kernel_received, ring_dropped sums '$k']"
done
if [ -z "$bad" ]; then
	pass "each of 16 live tenants got exactly tcpdump's packets for its filter, byte for byte, and the counts agree"
else
	fail "each of 16 live tenants got exactly tcpdump's packets" "$bad"
fi

# --- weir-capture -i: capture losses per counter interval ----------------
NTEN=0
ip netns exec "$NETNS_C" "$WEIR" -v -i "$IFC" --ring-blocks 2 --block-size 65536 \
    -w "$T/loss.pcap" --counters "$T/loss.jsonl" --summary "$T/loss.sum" \
    2>"$T/loss.err" &
LP=$!
NETNS_PIDS+=("$LP")
for _ in $(seq 100); do grep -q "ring of" "$T/loss.err" && break; sleep 0.05; done
# stopped while the replay runs: its 128 KiB ring overflows, for sure
kill -STOP "$LP"
replay "$IN"
kill -CONT "$LP"
sleep 0.5
kill -TERM "$LP"
wait "$LP"
sums=$(python3 -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
print(sum(x["kernel_received"] for x in r), sum(x["kernel_dropped"] for x in r))' "$T/loss.jsonl" 2>&1)
want="$(jget "$T/loss.sum" 'j["inputs"][0]["kernel_received"]') $(jget "$T/loss.sum" 'j["inputs"][0]["kernel_dropped"]')"
is "$sums" "$want" "weir-capture -i: counters' per-interval kernel_received and kernel_dropped add up to the summary's"
kd=${want#* }
[ "$kd" -gt 0 ] && pass "a stopped capture's ring overflowed: $kd kernel drops, counted per interval" ||
    fail "kernel drops while stopped" "summary: $want"

# --- a tenant under a snaplen policy: the kernel copies 64 bytes --------
echo '{"max_snaplen": 64}' >"$T/policy.json"
cat >"$T/snap.json" <<EOF
{"name": "snap", "stages": [{"type": "filter", "expr": "tcp"}],
 "outputs": [{"type": "pcap", "path": "$T/o/snap.pcap"}]}
EOF
NTEN=1
if tap_start snap -i "$IFC" --policy "$T/policy.json" --summary "$T/snap.sum" "$T/snap.json"; then
	replay "$IN"
	sleep 0.3
	tap_stop snap
	editcap -s 64 "$T/ref0.pcap" "$T/ref0s.pcap" >/dev/null 2>&1
	listing "$T/ref0s.pcap" >"$T/refs.txt"
	listing "$T/o/snap.pcap" >"$T/gots.txt"
	same_file "$T/gots.txt" "$T/refs.txt" "64-byte policy tenant: its file equals editcap -s 64 of tcpdump's 'tcp'"
else
	fail "weir-tap started (snaplen)" "$(cat "$TERR")"
fi

done_testing
