#!/bin/bash
# bench/live.sh [BUILD] - live capture for many tenants against tcpdump
# (issue 5), side by side in one run.
#
# Two network namespaces joined by a veth pair; `tcpreplay --topspeed -K`
# sends BENCH_LIVE_PACKETS (default 1 M) 64-byte frames (bench/gen64.py:
# packet i is in the /8 network i % 256) from one end; on the other end:
#   tcpdump-1      one `tcpdump -s 64 -w`
#   weir-1         one `weir-capture -i -s 64 -w`
#   tcpdump-N      N tcpdump processes, each `net X/8`, the GIMS design
#   weir-capture-N N weir-capture processes with a socket each (the same
#                  design with our capture)
#   weir-tap-N     one weir-tap and N tenant processes, `net X/8` each
# for N in BENCH_LIVE_TENANTS (default "16 64 256").  On a veth pair the
# kernel's capture work runs in the sender's context, so costly capture
# shows as a lower rate achieved by tcpreplay as well as drops: both are
# reported, with the packets captured and the CPU time (user, system) of
# the capture processes per packet sent (perf stat's user_time and
# system_time of each capture and its children).  Results: a Markdown table on
# stdout and in bench/work/live.md.  Needs root.
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WEIR="$PWD/$BUILD/weir-capture"
TAPB="$PWD/$BUILD/weir-tap"
CACHE="$PWD/bench/work"
NPK=${BENCH_LIVE_PACKETS:-1000000}
TENANTS=${BENCH_LIVE_TENANTS:-"16 64 256"}
P=wb$$
S=${P}s
C=${P}c
W=$(mktemp -d /dev/shm/weir-live.XXXXXX)
TRACE="$CACHE/gen64-$NPK.pcap"
OUT="$CACHE/live.md"

if [ "$(id -u)" -ne 0 ]; then
	echo "bench/live.sh: needs root (network namespaces)" >&2
	exit 2
fi
for b in "$WEIR" "$TAPB"; do
	[ -x "$b" ] || { echo "bench/live.sh: '$b' missing: run make" >&2; exit 2; }
done
for t in tcpreplay tcpdump perf; do
	command -v "$t" >/dev/null || { echo "bench/live.sh: '$t' missing" >&2; exit 2; }
done
mkdir -p "$CACHE"
[ -s "$TRACE" ] || python3 bench/gen64.py "$NPK" "$TRACE" || exit 2
cp "$TRACE" "$W/in.pcap"

cleanup()
{
	pkill -KILL -f "$W/" 2>/dev/null
	ip netns del "$S" 2>/dev/null
	ip netns del "$C" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$S" && ip netns add "$C" || exit 2
ip link add v-s netns "$S" type veth peer name v-c netns "$C" || exit 2
for n in "$S v-s" "$C v-c"; do
	set -- $n
	ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"
	ip -n "$1" link set "$2" up
done
for _ in $(seq 60); do
	ip -n "$C" link show v-c | grep -q 'state UP' && break
	sleep 0.05
done

# wait_for FILE PATTERN COUNT: until FILE has COUNT lines matching
wait_for()
{
	local i
	for i in $(seq 600); do
		[ "$(cat $1 2>/dev/null | grep -c "$2")" -ge "$3" ] && return 0
		sleep 0.05
	done
	echo "bench/live.sh: timeout waiting for '$2' in $1" >&2
	return 1
}

# replay: sets RATE (pps achieved) and SENT
replay()
{
	local o
	o=$(ip netns exec "$S" tcpreplay --topspeed -K -i v-s "$W/in.pcap" 2>&1)
	SENT=$(printf '%s\n' "$o" | sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p')
	RATE=$(printf '%s\n' "$o" | sed -n 's/.*Rated: .* \([0-9.]*\) pps.*/\1/p' | head -n 1)
}

# cpu FILES...: "user sys" seconds summed over perf stat -x, outputs
# (user_time and system_time include the children perf waited for)
cpu()
{
	cat "$@" 2>/dev/null | awk -F, '$3 == "user_time" {u += $1}
	    $3 == "system_time" {s += $1}
	    END {printf "%.6f %.6f", u / 1e9, s / 1e9}'
}

ROWS="$W/rows"
: >"$ROWS"
row()
{
	# name captured drops cpu_user cpu_sys
	awk -v n="$1" -v sent="$SENT" -v rate="$RATE" -v cap="$2" \
	    -v drop="$3" -v u="$4" -v s="$5" 'BEGIN {
	    printf "| %s | %.0f | %d | %d | %d | %.2f | %.2f |\n", n,
	    rate / 1000, sent, cap, drop, u * 1e9 / sent, s * 1e9 / sent }' |
	    tee -a "$ROWS"
}

failed()
{
	echo "| $1 | failed (timeout starting the captures) | | | | | |" >>"$ROWS"
	pkill -KILL -f "$W/o\." 2>/dev/null
	pkill -KILL -f "$W/ts/" 2>/dev/null
	sleep 1
}

# tcpdump_n N: N tcpdumps (N=1: no filter)
tcpdump_n()
{
	local n=$1 i f pids=() buf=65536
	rm -f "$W"/td.* "$W"/o.*
	# one capture: a 64 MiB buffer, as weir's default ring; many: 4 MiB
	# each (256 x 64 MiB would not fit in memory)
	[ "$n" -gt 1 ] && buf=4096
	for i in $(seq 0 $((n - 1))); do
		f="net $i.0.0.0/8"
		[ "$n" -eq 1 ] && f=""
		ip netns exec "$C" perf stat -x, -e user_time,system_time -o "$W/td.$i.time" \
		    tcpdump -n -s 64 -B "$buf" -i v-c -w "$W/o.$i.pcap" $f \
		    2>"$W/td.$i.err" &
		pids+=($!)
	done
	for i in $(seq 0 $((n - 1))); do
		wait_for "$W/td.$i.err" "listening on" 1 || { failed "tcpdump x $n"; return; }
	done
	replay
	sleep 1
	# (the patterns match the capture, not perf above it)
	for i in $(seq 0 $((n - 1))); do
		pkill -INT -f "^tcpdump .* -w $W/o.$i.pcap( |\$)"
	done
	wait "${pids[@]}"
	local capd drop
	capd=$(cat "$W"/td.*.err | awk '/packets captured/ {s += $1} END {print s + 0}')
	drop=$(cat "$W"/td.*.err | awk '/dropped by kernel/ {s += $1} END {print s + 0}')
	row "tcpdump x $n" "$capd" "$drop" $(cpu "$W"/td.*.time)
}

# weir_n N: N weir-capture processes, one socket each
weir_n()
{
	local n=$1 i f pids=() blocks=64
	rm -f "$W"/wc.* "$W"/o.*
	[ "$n" -gt 1 ] && blocks=4
	for i in $(seq 0 $((n - 1))); do
		f="net $i.0.0.0/8"
		[ "$n" -eq 1 ] && f=""
		ip netns exec "$C" perf stat -x, -e user_time,system_time -o "$W/wc.$i.time" \
		    "$WEIR" -v -i v-c --ring-blocks "$blocks" -s 64 \
		    -w "$W/o.$i.pcap" \
		    --summary "$W/wc.$i.sum" $f 2>"$W/wc.$i.err" &
		pids+=($!)
	done
	for i in $(seq 0 $((n - 1))); do
		wait_for "$W/wc.$i.err" "ring of" 1 || { failed "weir-capture x $n"; return; }
	done
	replay
	sleep 1
	for i in $(seq 0 $((n - 1))); do
		pkill -TERM -f "^$WEIR .* -w $W/o.$i.pcap "
	done
	wait "${pids[@]}"
	local capd drop
	capd=$(python3 -c 'import json, sys; print(sum(json.load(open(f))["passed"] for f in sys.argv[1:]))' "$W"/wc.*.sum)
	drop=$(python3 -c 'import json, sys; print(sum(sum(i["kernel_dropped"] for i in json.load(open(f))["inputs"]) for f in sys.argv[1:]))' "$W"/wc.*.sum)
	row "weir-capture x $n" "$capd" "$drop" $(cpu "$W"/wc.*.time)
}

# tap_n N: one weir-tap, N tenants
tap_n()
{
	local n=$1 i args=() pid
	rm -rf "$W"/tp.* "$W"/o.* "$W/ts"
	mkdir -p "$W/ts"
	for i in $(seq 0 $((n - 1))); do
		f="net $i.0.0.0/8"
		[ "$n" -eq 1 ] && f=""
		cat >"$W/tp.$i.json" <<EOF
{"name": "t$i", "stages": [{"type": "filter", "expr": "$f"},
 {"type": "truncate", "snaplen": 64}],
 "outputs": [{"type": "pcap", "path": "$W/o.$i.pcap"}]}
EOF
		args+=("$W/tp.$i.json")
	done
	ip netns exec "$C" perf stat -x, -e user_time,system_time -o "$W/tp.time" \
	    "$TAPB" -v -i v-c --ring-size 4 --summary "$W/tp.sum" \
	    --tenant-summaries "$W/ts" "${args[@]}" 2>"$W/tp.err" &
	pid=$!
	wait_for "$W/tp.err" "ring of" 1 || { failed "weir-tap + $n tenants"; return; }
	for i in $(seq 100); do
		[ "$(pgrep -c -f "$W/ts/")" -ge "$n" ] && break
		sleep 0.05
	done
	replay
	sleep 1
	pkill -TERM -f "^$TAPB -v -i v-c"
	wait "$pid"
	local capd drop
	capd=$(python3 -c 'import json, sys; print(sum(t["written"] for t in json.load(open(sys.argv[1]))["tenants"]))' "$W/tp.sum")
	drop=$(python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(j["kernel"]["dropped"] + sum(t["ring_full_drops"] for t in j["tenants"]))' "$W/tp.sum")
	row "weir-tap + $n tenants" "$capd" "$drop" $(cpu "$W/tp.time")
}

{
	echo "Live capture, $(date -u +%Y-%m-%d), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r)"
	echo "$NPK frames of 64 bytes, tcpreplay --topspeed -K on a veth pair"
	echo
	echo "| capture | Kpps sent | packets sent | captured | dropped | user ns/pkt | sys ns/pkt |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT"
SENT=0 RATE=0
# one replay to warm up, then one with no capture at all: the rig's rate
ip netns exec "$S" tcpreplay --topspeed -K -i v-s "$W/in.pcap" >/dev/null 2>&1
replay
echo "| none (no capture) | $(awk -v r="$RATE" 'BEGIN {printf "%.0f", r / 1000}') | $SENT | - | - | - | - |" | tee -a "$OUT"
for n in 1 $TENANTS; do
	tcpdump_n "$n" >/dev/null; tail -n 1 "$ROWS" | tee -a "$OUT"
	weir_n "$n" >/dev/null; tail -n 1 "$ROWS" | tee -a "$OUT"
	tap_n "$n" >/dev/null; tail -n 1 "$ROWS" | tee -a "$OUT"
done
