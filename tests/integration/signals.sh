#!/bin/bash
# signals.sh - process behaviour of weir-capture on a live capture (veth
# in network namespaces of our own; the capture loop wakes at least
# every 100 ms, so signals are served at once, and the test waits on
# status lines, not on sleeps):
#   - SIGUSR1 writes one status line (the pipeline stats JSON, "event":
#     "signal") on --status-fd, whose counts equal what was replayed;
#     "interval" lines come once a second; the last line ("end") equals
#     the --summary; without --status-fd the line goes to stderr;
#   - SIGHUP closes the current file with reason "signal" and the next
#     packets go to a new file: file 1 = part A of the trace, file 2 =
#     part B (tcpdump listings equal editcap's split);
#   - SIGTERM and SIGINT: exit 0, last file published (reason "end");
#   - --term-wait: a drain that cannot finish in time (a 20 s block
#     retire timeout keeps the last packets in the ring) ends after the
#     wait with a message and exit 1, leaving no visible partial file;
#   - kill -9 during a capture rotating every 1 MB: every visible
#     .pcap file is read by tshark without error, the rest are hidden
#     .part files.
# Skips (TAP) only when not root or without `ip netns`.
. tests/integration/common.bash
. tests/integration/netns.bash

netns_require
T=$WEIR_TMP
TR="$DATA/suricata-tls-subjectaltname.pcap"
RATE=5000
P=ws$$
netns_setup "$P" || { echo "Bail out! cannot create namespaces"; exit 2; }
veth_add "${P}a" || { echo "Bail out! cannot create a veth pair"; exit 2; }
IFS_="${P}a-s"
IFC="${P}a-c"

CPID=
cap_start()
{
	local name=$1 i
	shift
	CERR="$T/$name.err"
	ip netns exec "$NETNS_C" "$WEIR" -v "$@" >"$T/$name.out" 2>"$CERR" &
	CPID=$!
	NETNS_PIDS+=("$CPID")
	for i in $(seq 200); do
		grep -q "ring of" "$CERR" 2>/dev/null && return 0
		kill -0 "$CPID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

cap_wait()
{
	wait "$CPID"
	CRC=$?
	sanitizer_clean "$CERR" "$1" || true
}

replay()
{
	local out
	out=$(in_s tcpreplay --pps "$RATE" "${@:2}" -i "$IFS_" "$1" 2>&1)
	SENT=$(printf '%s\n' "$out" | sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p')
	SENT=${SENT:-0}
}

# lastline FILE EVENT: the "read" count of the last status line of that
# event, or "none"
lastread()
{
	python3 - "$1" "$2" <<'EOF'
import json, sys
r = "none"
for l in open(sys.argv[1]):
    try:
        o = json.loads(l)
    except ValueError:
        continue
    if o.get("event") == sys.argv[2]:
        r = o["read"]
print(r)
EOF
}

# usr1_until FILE N: send SIGUSR1 until a "signal" line says read == N
usr1_until()
{
	local i
	for i in $(seq 50); do
		kill -USR1 "$CPID"
		sleep 0.1
		[ "$(lastread "$1" signal)" = "$2" ] && return 0
	done
	return 1
}

meta_reason()
{
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reason"])' "$1" 2>&1
}

listing()
{
	tcpdump -t -nn -e -v -xx -r "$1" 2>/dev/null
}

N=$(npkts "$TR")
NA=1000
editcap -r "$TR" "$T/A.pcap" 1-$NA 2>/dev/null
editcap -r "$TR" "$T/B.pcap" $((NA + 1))-$N 2>/dev/null
NB=$(npkts "$T/B.pcap")

# --- SIGUSR1, SIGHUP, status lines, SIGTERM ---------------------------
mkdir -p "$T/h"
if cap_start hup -i "$IFC" -w "$T/h/x.pcap" -C 1000 --meta \
    --summary "$T/h.sum" --status-fd 3 3>"$T/h.status"; then
	replay "$T/A.pcap"
	if usr1_until "$T/h.status" "$NA"; then
		pass "SIGUSR1: a status line on --status-fd with read = $NA, the packets of part A"
	else
		fail "SIGUSR1: a status line with read = $NA" "$(tail -c 600 "$T/h.status")"
	fi
	kill -HUP "$CPID"
	for i in $(seq 100); do
		ls "$T/h" | grep -q 'meta.json$' && break
		sleep 0.05
	done
	first=$(ls "$T/h" | grep '\.pcap$' | sort | head -n 1)
	is "$(meta_reason "$T/h/$first.meta.json")" signal "SIGHUP: the current file ('$first') is published with reason 'signal' (no packet needed)"
	replay "$T/B.pcap"
	usr1_until "$T/h.status" "$N" >/dev/null
	sleep 1.2
	kill -TERM "$CPID"
	cap_wait hup
	is "$CRC" 0 "SIGTERM: exit 0"
	listing "$T/A.pcap" >"$T/A.want"
	listing "$T/h/$first" >"$T/A.got"
	same_file "$T/A.got" "$T/A.want" "SIGHUP: file 1 holds exactly part A (tcpdump -xx)"
	is "$(ls "$T/h" | grep -c '\.pcap$')" 2 "two files in all"
	next=$(ls "$T/h" | grep '\.pcap$' | sort | sed -n 2p)
	listing "$T/B.pcap" >"$T/B.want"
	listing "$T/h/$next" >"$T/B.got"
	same_file "$T/B.got" "$T/B.want" "SIGHUP: the next file ('$next') holds exactly part B"
	is "$(meta_reason "$T/h/$next.meta.json")" end "SIGTERM: last file published with reason 'end'"
	is "$(ls -A "$T/h" | grep -c '\.part$')" 0 "SIGTERM: no .part file left"
	iv=$(lastread "$T/h.status" interval)
	if [ "$iv" != none ]; then
		pass "status lines once a second ('interval', last read = $iv)"
	else
		fail "status lines once a second" "$(head -c 400 "$T/h.status")"
	fi
	is "$(lastread "$T/h.status" end)" "$N" "the last status line ('end') has every packet"
	is "$(python3 -c 'import json,sys; l=[json.loads(x) for x in open(sys.argv[1])][-1]; s=json.load(open(sys.argv[2])); [l.pop(k) for k in ("event","time","status_lines_skipped")]; print(l == s)' "$T/h.status" "$T/h.sum")" \
	    True "the last status line equals --summary"
else
	fail "capture started" "$(cat "$CERR")"
fi

# --- SIGUSR1 without --status-fd: stderr; SIGINT ---------------------
if cap_start int -i "$IFC" -w "$T/int.pcap"; then
	replay "$T/A.pcap"
	for i in $(seq 50); do
		kill -USR1 "$CPID"
		sleep 0.1
		grep -q '"event": *"signal"' "$CERR" && break
	done
	kill -INT "$CPID"
	cap_wait int
	if grep '"event": *"signal"' "$CERR" | tail -n 1 | grep -q "\"read\": *$NA"; then
		pass "SIGUSR1 without --status-fd: the line goes to stderr"
	else
		fail "SIGUSR1 without --status-fd: the line goes to stderr" "$(tail -c 600 "$CERR")"
	fi
	is "$CRC/$(npkts "$T/int.pcap")" "0/$NA" "SIGINT: exit 0, every packet in the file"
else
	fail "capture started (SIGINT)" "$(cat "$CERR")"
fi

# --- --term-wait bounds the drain --------------------------------------
mkdir -p "$T/tw"
if cap_start tw -i "$IFC" -w "$T/tw/x.pcap" --block-timeout 20000 \
    --term-wait 1; then
	replay "$T/A.pcap" --limit 20
	t0=$(date +%s%N)
	kill -TERM "$CPID"
	cap_wait tw
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	is "$CRC" 1 "--term-wait 1: a drain that cannot finish ends with exit 1"
	if [ "$ms" -ge 900 ] && [ "$ms" -lt 6000 ]; then
		pass "--term-wait 1: it ended after about 1 s ($ms ms; the drain alone would take 20 s)"
	else
		fail "--term-wait 1: it ended after about 1 s" "$ms ms"
	fi
	if grep -q "term-wait" "$CERR"; then
		pass "--term-wait: a message says why"
	else
		fail "--term-wait: a message says why" "$(cat "$CERR")"
	fi
	is "$(ls "$T/tw" | wc -l)" 0 "--term-wait: no visible partial file"
else
	fail "capture started (--term-wait)" "$(cat "$CERR")"
fi

# --- kill -9 leaves only complete files --------------------------------
mkdir -p "$T/k"
if cap_start k9 -i "$IFC" -w "$T/k/x.pcap" -C 1 --meta; then
	in_s tcpreplay --pps 20000 --loop 3 -i "$IFS_" "$TR" >/dev/null 2>&1 &
	RP=$!
	sleep 0.8
	kill -KILL "$CPID"
	wait "$CPID" 2>/dev/null
	wait "$RP" 2>/dev/null
	vis=$(ls "$T/k" | grep -c '\.pcap$')
	bad=""
	for f in "$T"/k/*.pcap; do
		[ -e "$f" ] || continue
		why=$(tshark_clean "$f") || bad="$bad $f: $why"
	done
	if [ "$vis" -ge 1 ] && [ -z "$bad" ]; then
		pass "kill -9: $vis visible files, every one read by tshark without error"
	else
		fail "kill -9: every visible file complete" "$vis visible" "$bad"
	fi
	other=$(ls -A "$T/k" | grep -v -E '\.pcap$|\.pcap\.meta\.(json|xml)$|^\..*\.part$')
	is "$other" "" "kill -9: nothing else but hidden .part debris"
else
	fail "capture started (kill -9)" "$(cat "$CERR")"
fi

done_testing
