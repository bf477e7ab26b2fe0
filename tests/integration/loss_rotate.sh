#!/bin/bash
# loss_rotate.sh - rotate.on_loss on a live capture (docs/outputs.md
# "Rotation", docs/live.md "Losses").
#
# Two network namespaces joined by a veth pair; tcpreplay sends real
# traces.  weir-capture -i runs with a small ring (4 blocks of 256 KiB, less than
# B's 2.5 MB) and
# a pcap output with "rotate": {"on_loss": true}.  It captures trace A,
# is then stopped (SIGSTOP) while trace B is replayed, so its ring fills
# and the kernel drops the rest of B; it is let go (SIGCONT), A is
# replayed again, and it is ended with SIGTERM.  Checks (expected values
# from tcpdump, capinfos, editcap and the summary's kernel counters):
#   - the kernel dropped packets (kernel_dropped > 0);
#   - exactly two files: the first closed with reason "loss", the second
#     with "end"; every file readable by capinfos;
#   - the second file's lost_before = the summary's kernel_dropped, all
#     of it kernel (lost_before_kernel), none within or after a file;
#   - packets in the files = kernel_received - kernel_dropped;
#   - the boundary is exact: the first file is A followed by the first n
#     packets of B (tcpdump -xx listings equal editcap's cut), n + the
#     lost count = B's packet count, and the second file is A again.
# Skips (TAP) only when not root or without `ip netns`.
. tests/integration/common.bash
. tests/integration/netns.bash

netns_require
T=$WEIR_TMP
P=wr$$
RATE=${LIVE_PPS:-5000}
netns_setup "$P" || { echo "Bail out! cannot create namespaces"; exit 2; }
veth_add "${P}a" || { echo "Bail out! cannot create a veth pair"; exit 2; }
IFS_="${P}a-s"
IFC="${P}a-c"
# B has frames of up to 11.6 kB: the largest MTU a veth takes
ip -n "$NETNS_S" link set "$IFS_" mtu 65535
ip -n "$NETNS_C" link set "$IFC" mtu 65535
A="$DATA/suricata-tls-subjectaltname.pcap"
B="$DATA/ndpi-1kxun.pcap"

jget()
{
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

replay()
{
	local out
	out=$(in_s tcpreplay --pps "$RATE" -i "$IFS_" "$1" 2>&1)
	SENT=$(printf '%s\n' "$out" | sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p')
	SENT=${SENT:-0}
}

listing()
{
	tcpdump -t -nn -e -v -xx -r "$1" 2>/dev/null
}

# --- live: a stopped capture's ring overflows ---------------------------
mkdir -p "$T/lr"
cat >"$T/exp.json" <<EOF
{"name": "lossrot",
 "inputs": [{"interface": "$IFC", "blocks": 4, "block_size": 262144}],
 "outputs": [{"type": "pcap", "path": "$T/lr/l.pcap",
              "rotate": {"on_loss": true}}]}
EOF
ip netns exec "$NETNS_C" "$WEIR" -v --config "$T/exp.json" \
    --summary "$T/l.sum" >"$T/l.out" 2>"$T/l.err" &
LP=$!
NETNS_PIDS+=("$LP")
for _ in $(seq 100); do grep -q "ring of" "$T/l.err" && break; sleep 0.05; done
replay "$A"
NA=$SENT
sleep 0.5
kill -STOP "$LP"
replay "$B"
NB=$SENT
kill -CONT "$LP"
sleep 0.5
replay "$A"
sleep 0.5
kill -TERM "$LP"
wait "$LP"
is "$?" 0 "weir-capture exits 0 on SIGTERM"
sanitizer_clean "$T/l.err" "loss rotation" || true

kd=$(jget "$T/l.sum" 'j["inputs"][0]["kernel_dropped"]')
kr=$(jget "$T/l.sum" 'j["inputs"][0]["kernel_received"]')
[ "$kd" -gt 0 ] 2>/dev/null && pass "the stopped capture's ring overflowed: $kd kernel drops" ||
    fail "kernel drops while stopped" "kernel_dropped '$kd'"

# every file's metadata, in sequence order: "file reason packets
# lost_before lost_before_kernel lost_before_ring lost_within lost_after"
python3 - "$T/lr" >"$T/files.txt" <<'PY'
import glob, json, sys
docs = [json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.meta.json")]
for j in sorted(docs, key=lambda j: j["sequence"]):
    print(j["file"], j["reason"], j["packets"], j["lost_before"],
          j["lost_before_kernel"], j["lost_before_ring"], j["lost_within"],
          j.get("lost_after", "-"))
PY
sed 's/^/# /' "$T/files.txt"
nf=$(wc -l <"$T/files.txt")
[ "$nf" -ge 2 ] && pass "$nf files: the loss split the capture" ||
    fail "the loss split the capture" "$(cat "$T/files.txt")"
is "$(awk '{ r = r $2 " " } END { print r }' "$T/files.txt")" \
    "$(printf 'loss %.0s' $(seq $((nf - 1))))end " \
    "every file but the last is closed for 'loss', the last at the end"
bad=
tot=0
while read -r f _ n _; do
	capinfos -c "$T/lr/$f" >/dev/null 2>&1 || bad="$bad $f"
	c=$(npkts "$T/lr/$f")
	[ "$c" = "$n" ] || bad="$bad $f:$c!=$n"
	[ "$c" -gt 0 ] || bad="$bad $f:empty"
	tot=$((tot + c))
done <"$T/files.txt"
is "$bad" "" "every file is readable by capinfos, not empty, and holds the packets its metadata says"
is "$tot" "$((kr - kd))" "packets in the files = kernel_received - kernel_dropped ($kr - $kd)"
is "$(awk '{ b += $4; k += $5; g += $6; w += $7 } END { print b, k, g, w }' "$T/files.txt") $(tail -n 1 "$T/files.txt" | awk '{ print $8 }')" \
    "$kd $kd 0 0 0" "the files' lost_before add up to the summary's kernel_dropped, all kernel; nothing lost within a file or after the last"
is "$(head -n 1 "$T/files.txt" | awk '{ print $4 }')" 0 "no loss before the first file"

# the boundary, when the stall was the only loss: the files before it
# hold A then B[1..n], the files after it hold A again
if [ "$nf" -eq 2 ]; then
	read -r F1 _ n1 _ <"$T/files.txt"
	F2=$(tail -n 1 "$T/files.txt" | awk '{ print $1 }')
	nb=$((n1 - NA))
	if [ "$nb" -ge 1 ]; then
		editcap -r "$B" "$T/bcut.pcap" "1-$nb" >/dev/null 2>&1
		{ listing "$A"; listing "$T/bcut.pcap"; } >"$T/want1.txt"
	else
		listing "$A" >"$T/want1.txt"
	fi
	listing "$T/lr/$F1" >"$T/got1.txt"
	same_file "$T/got1.txt" "$T/want1.txt" "the first file is A then the first $nb packets of B, byte for byte"
	is "$((nb + kd))" "$NB" "those $nb packets and the $kd lost make up B ($NB sent)"
	listing "$A" >"$T/want2.txt"
	listing "$T/lr/$F2" >"$T/got2.txt"
	same_file "$T/got2.txt" "$T/want2.txt" "the second file is A again: it starts right after the loss"
else
	for d in "exact boundary: first file" "exact boundary: count" \
	    "exact boundary: second file"; do
		TAP_N=$((TAP_N + 1))
		echo "ok $TAP_N - $d # SKIP losses outside the stall (a busy machine): $nf files"
	done
fi

# --- weir-tap: a stalled tenant's ring overflows -------------------------
# The trace comes through a FIFO we feed, so the order of events is ours
# (as in tap.sh): the tenant is stopped after the first records, 10 MB
# more are fed into its 4 MiB ring (the rest is dropped and counted as
# ring drops), it is let go and drains its ring, then one more copy of
# the trace (C, later times) is fed: C must open a new file with reason
# "loss" behind it and the ring drops recorded as its lost_before_ring.
TAPBIN="$(dirname "$WEIR")/weir-tap"
IN="$B"
# shifted K: the records of IN with K * 100000 s added to their times
shifted()
{
	tail -c +25 "$IN" | python3 -c '
import sys, struct
k = int(sys.argv[1]); d = sys.stdin.buffer.read(); o = 0; out = bytearray()
while o + 16 <= len(d):
    s, us, cl, wl = struct.unpack_from("<IIII", d, o)
    out += struct.pack("<IIII", s + 100000 * k, us, cl, wl) + d[o + 16:o + 16 + cl]
    o += 16 + cl
sys.stdout.buffer.write(out)' "$1"
}
mkdir -p "$T/tr"
{ head -c 24 "$IN"; shifted 4; } >"$T/c.pcap"
NC=$(npkts "$T/c.pcap")
cat >"$T/slow.json" <<EOF
{"name": "slow", "stages": [{"type": "filter", "expr": ""}],
 "outputs": [{"type": "pcap", "path": "$T/tr/slow.pcap",
              "rotate": {"on_loss": true}}]}
EOF
mkfifo "$T/fifo"
"$TAPBIN" -q -r "$T/fifo" --ring-size 4 --summary "$T/tap.sum" \
    --tenant-summaries "$T/tr" "$T/slow.json" 2>"$T/tap.err" &
TP=$!
exec 5>"$T/fifo"
head -c 4096 "$IN" >&5
SLOW=""
for _ in $(seq 1 200); do
	SLOW=$(pgrep -f "$T/tr/slow.summary.json" || true)
	[ -n "$SLOW" ] && break
	sleep 0.05
done
[ -n "$SLOW" ] && kill -STOP "$SLOW"
tail -c +4097 "$IN" >&5
for k in 1 2 3; do shifted "$k"; done >&5
# let the tenant go and wait until its hidden file stops growing (it
# has drained its ring), then feed C
[ -n "$SLOW" ] && kill -CONT "$SLOW"
last=-1
for _ in $(seq 1 100); do
	cur=$(stat -c %s "$T"/tr/.slow*.part 2>/dev/null | head -n 1)
	[ -n "$cur" ] && [ "$cur" = "$last" ] && break
	last=$cur
	sleep 0.2
done
tail -c +25 "$T/c.pcap" >&5
exec 5>&-
wait "$TP"
is "$?" 0 "weir-tap exits 0 ($(head -c 300 "$T/tap.err"))"
sanitizer_clean "$T/tap.err" "weir-tap loss rotation" || true
sd=$(jget "$T/tap.sum" "j['tenants'][0]['ring_full_drops']")
sw=$(jget "$T/tap.sum" "j['tenants'][0]['written']")
[ "$sd" -gt 0 ] 2>/dev/null && pass "the stalled tenant's ring overflowed: $sd ring drops" ||
    fail "ring drops while the tenant was stopped" "ring_full_drops '$sd'"
python3 - "$T/tr" >"$T/tfiles.txt" <<'PY'
import glob, json, sys
docs = [json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.meta.json")]
for j in sorted(docs, key=lambda j: j["sequence"]):
    print(j["file"], j["reason"], j["packets"], j["lost_before"],
          j["lost_before_kernel"], j["lost_before_ring"], j["lost_within"],
          j.get("lost_after", "-"))
PY
sed 's/^/# /' "$T/tfiles.txt"
is "$(awk '{ r = r $2 " " } END { print r }' "$T/tfiles.txt")" "loss end " \
    "tenant: two files, the first closed for 'loss', the second at the end"
is "$(awk 'NR == 2 { print $4, $5, $6, $7, $8 }' "$T/tfiles.txt")" "$sd 0 $sd 0 0" \
    "tenant: the second file's lost_before is the $sd ring drops, all ring; none within or after"
is "$(awk '{ n += $3 } END { print n }' "$T/tfiles.txt")" "$sw" \
    "tenant: the files hold what its ring carried ($sw)"
F2=$(awk 'NR == 2 { print $1 }' "$T/tfiles.txt")
listing "$T/c.pcap" >"$T/wantc.txt"
listing "$T/tr/$F2" >"$T/gotc.txt" 2>/dev/null
same_file "$T/gotc.txt" "$T/wantc.txt" "tenant: the second file is exactly C ($NC packets fed after the drain)"

done_testing
