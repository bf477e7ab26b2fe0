#!/bin/bash
# ipfix.sh - the "ipfix" output as real collectors see it.
#
# - files: ipfixDump (libfixbuf) reads them without a complaint; packets
#   and bytes over all records (both directions) equal the trace's IP
#   totals as tshark counts them; every record's 5-tuple is in the trace;
# - UDP to nfcapd on loopback: nfdump finds the same records and totals;
# - UDP to a python collector writing each datagram into a pcap: tshark's
#   IPFIX dissector (cflow) finds no malformed message, the same packet
#   counts, and nanosecond flow start times;
# - TCP to a small python collector: down at start then up, nothing is
#   lost (records equal the file run's); never up: the records are
#   counted as dropped and weir-capture exits within close_wait;
# - anonymization: the exported addresses are the published Crypto-PAn
#   vectors' outputs;
# - flow counts against softflowd and nfpcapd with timeouts longer than
#   the trace: our biflows, split into uniflows, are their flows.
# Ports: 127.0.0.1 above 20000 only; every server started here is killed
# on exit.
. tests/integration/common.bash

for t in ipfixDump nfcapd nfdump; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "1..0 # SKIP '$t' is not installed (scripts/install-deps.sh)"
		exit 0
	fi
done

T=$WEIR_TMP
PY="python3 $TOOLS/ipfix_dump.py"
# a port base per run, so parallel runs do not collide
BASE=$((20000 + ($$ % 4000) * 10))
PIDS=()
cleanup()
{
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
}
trap cleanup EXIT

# conf NAME TRACE OUTPUT-JSON [STAGES-JSON]: an experiment document
conf()
{
	cat >"$T/$1.json" <<EOF
{"name": "$1", "inputs": [{"path": "$2"}], "stages": [${4:-}],
 "outputs": [$3]}
EOF
}

# dump FILE NAME: ipfixDump FILE into $T/NAME.dump; stderr must be empty
dump()
{
	ipfixDump --in "$1" >"$T/$2.dump" 2>"$T/$2.dumperr"
	if [ -s "$T/$2.dumperr" ] || ! grep -q '^\*\*\* File Stats' "$T/$2.dump"; then
		fail "ipfixDump reads $2 cleanly" "$(head -c 600 "$T/$2.dumperr")"
		return 1
	fi
	pass "ipfixDump reads $2 cleanly"
}

# totals TRACE: "packets bytes" of IP packets as tshark counts them
# (IPv4 total length, IPv6 payload length + 40, outermost header)
totals()
{
	tsh "$1" -o ip.defragment:FALSE -o ipv6.defragment:FALSE \
	    -Y 'ip or ipv6' -T fields -E occurrence=f -e ip.len -e ipv6.plen |
	    awk -F'\t' '{ n++; b += ($1 != "") ? $1 : $2 + 40 } END { print n + 0, b + 0 }'
}

# tuples TRACE: the tshark fields ipfix_dump.py intrace wants
tuples()
{
	tsh "$1" -o ip.defragment:FALSE -o ipv6.defragment:FALSE \
	    -Y 'tcp or udp' -T fields -e ip.proto -e ip.src -e ip.dst \
	    -e ipv6.src -e ipv6.dst -e tcp.srcport -e tcp.dstport \
	    -e udp.srcport -e udp.dstport -E occurrence=a |
	    awk -F'\t' 'BEGIN { OFS = "\t" } { p = $1; if (p == "") p = ($6 != "") ? 6 : 17;
	        print p, $2, $3, $4, $5, $6 $8, $7 $9 }'
}

GEN="$T/gen.pcap"
python3 "$GENTRACE" --quiet --packets 20000 --seed 4 --out "$GEN" ||
	echo "Bail out! gentrace failed"
TRACES="$DATA/ndpi-1kxun.pcap $DATA/zeek-echo-connections.pcap
$DATA/libtrace-fragtest-ether-ns.pcap $DATA/ndpi-reddit-ipv6.pcap $GEN"

# --- files, read by ipfixDump ---
for tr in $TRACES; do
	n=$(basename "$tr" .pcap)
	for ts in ms ns; do
		conf "f.$n.$ts" "$tr" "{\"type\": \"ipfix\", \"path\": \"$T/$n.$ts.ipfix\", \"timestamps\": \"$ts\", \"metadata\": false}"
		weir_ok "f.$n.$ts" -q --config "$T/f.$n.$ts.json" || continue
		dump "$T/$n.$ts.ipfix" "$n.$ts" || continue
		read -r recs pk by uni <<<"$($PY sum "$T/$n.$ts.dump")"
		is "$pk $by" "$(totals "$tr")" "$n ($ts): packets and IP bytes over $recs records = the trace's IP totals (tshark)"
	done
	tuples "$tr" >"$T/$n.tuples"
	why=$($PY intrace "$T/$n.ms.dump" "$T/$n.tuples")
	case "$why" in
	ok*) pass "$n: every TCP/UDP record's addresses, ports, protocol are a packet's of the trace ($why)" ;;
	*) fail "$n: records match the trace's packets" "$why" ;;
	esac
	# ms and ns runs hold the same flows, times aside
	is "$(grep -c 'flowStartNanoseconds' "$T/$n.ns.dump")" \
	    "$(grep -c 'flowStartMilliseconds' "$T/$n.ms.dump")" \
	    "$n: ns run exports as many records as the ms run"
done
# --- UDP to a python collector that keeps each datagram in a pcap, for
# tshark's IPFIX dissector (cflow); ns timestamps are checked there, as
# ipfixDump prints dateTimeNanoseconds without the fraction ---
P=$((BASE + 5))
tr=$DATA/libtrace-fragtest-ether-ns.pcap
python3 "$TOOLS/ipfix_udpcol.py" "$P" "$T/udp.pcap" 3 &
UCP=$!
PIDS+=("$UCP")
sleep 0.5
conf udpns "$tr" "{\"type\": \"ipfix\", \"transport\": \"udp\", \"collector\": \"127.0.0.1:$P\", \"timestamps\": \"ns\"}"
weir_ok udpns -v --config "$T/udpns.json"
wait "$UCP" 2>/dev/null
CF=(-d "udp.port==$P,cflow")
mal=$(tsh "$T/udp.pcap" "${CF[@]}" -Y '_ws.malformed || _ws.expert.severity >= "Warning"' -T fields -e frame.number | wc -l)
msgs=$(tsh "$T/udp.pcap" "${CF[@]}" -Y 'cflow.version == 10' -T fields -e frame.number | wc -l)
is "$mal" 0 "tshark cflow dissector: $msgs IPFIX messages over UDP, none malformed or warned"
is "$msgs" "$(sed -n 's/.* in \([0-9]*\) messages.*/\1/p' "$WERR")" \
    "tshark sees every message weir-capture sent"
is "$(tsh "$T/udp.pcap" "${CF[@]}" -T fields -e cflow.packets -E occurrence=a | tr ',' '\n' | awk '{ s += $1 } END { print s + 0 }')" \
    "$($PY sum "$T/libtrace-fragtest-ether-ns.ns.dump" | cut -d' ' -f2)" \
    "tshark: (reverse)packetDeltaCount over the datagrams = ipfixDump's of the file run"
first=$(tsh "$tr" -c 1 -T fields -e frame.time_epoch)
got=$(tsh "$T/udp.pcap" "${CF[@]}" -T fields -e cflow.abstimestart -E occurrence=a |
    tr ',' '\n' | grep -v ' 1970 ' | sed -n 's/.* \([0-9:]*\.[0-9]*\) UTC/\1/p' | sort | head -n 1)
is "$got" "$(date -u -d "@${first%.*}" +%H:%M:%S).${first#*.}" \
    "tshark: the earliest flowStartNanoseconds is the first packet's time to the ns"


# --- UDP template refresh (RFC 7011 section 8.4), in packet time: over a
# 20 s trace exporting all along, template_refresh 1 resends the templates
# about once a second; 3600 sends them once, at the start ---
python3 "$GENTRACE" --packets 20000 --seed 3 --rate-pps 1000 --out "$T/r20.pcap" --quiet
dur=$(capinfos -u "$T/r20.pcap" | sed -n 's/.*duration: *\([0-9]*\).*/\1/p')
for r in 1 3600; do
	P=$((BASE + 6 + r % 2))
	python3 "$TOOLS/ipfix_udpcol.py" "$P" "$T/refresh$r.pcap" 2 &
	UCP=$!
	PIDS+=("$UCP")
	sleep 0.5
	conf refresh$r "$T/r20.pcap" "{\"type\": \"ipfix\", \"transport\": \"udp\", \"collector\": \"127.0.0.1:$P\", \"idle_timeout\": 1, \"template_refresh\": $r}"
	weir_ok refresh$r --config "$T/refresh$r.json"
	wait "$UCP" 2>/dev/null
	tm[$r]=$(tsh "$T/refresh$r.pcap" -d "udp.port==$P,cflow" -Y 'cflow.flowset_id == 2' -T fields -e frame.number | wc -l)
done
is "${tm[3600]}" 1 "template_refresh 3600: the templates are sent once, first"
if [ "${tm[1]}" -ge $((dur - 3)) ] && [ "${tm[1]}" -le $((dur + 2)) ]; then
	pass "template_refresh 1: ${tm[1]} template messages over a ${dur} s trace"
else
	fail "template_refresh 1: about one template message a second" "${tm[1]} over ${dur} s"
fi

# --- UDP to nfcapd ---
P=$((BASE + 1))
rm -rf "$T/nf"
mkdir -p "$T/nf"
nfcapd -b 127.0.0.1 -p "$P" -w "$T/nf" -t 3600 >"$T/nfcapd.log" 2>&1 &
NFP=$!
PIDS+=("$NFP")
sleep 1
tr=$DATA/ndpi-1kxun.pcap
conf udp "$tr" "{\"type\": \"ipfix\", \"transport\": \"udp\", \"collector\": \"127.0.0.1:$P\", \"mtu\": 1400}"
weir_ok udp -v --config "$T/udp.json"
sleep 1
kill "$NFP"
wait "$NFP" 2>/dev/null
grep -q 'Sequence Errors: 0, Bad Packets: 0' "$T/nfcapd.log" &&
	pass "nfcapd: no sequence error, no bad packet" ||
	fail "nfcapd: no sequence error, no bad packet" "$(tail -n 5 "$T/nfcapd.log")"
nfdump -R "$T/nf" -q -N -6 -o 'fmt:%pr %sa %sp %da %dp %ipkt %opkt %ibyt %obyt' >"$T/nf.txt" 2>"$T/nf.err"
is "$(awk '{ n++; p += $6 + $7; b += $8 + $9 } END { print n + 0, p + 0, b + 0 }' "$T/nf.txt")" \
    "$($PY sum "$T/ndpi-1kxun.ms.dump" | cut -d' ' -f1-3)" \
    "nfdump: records, packets, bytes over UDP = ipfixDump's of the file run"
is "$(awk '{ print $1, $2, $3, $4, $5 }' "$T/nf.txt" | sed 's/^TCP/6/; s/^UDP/17/; s/^ICMP6\? /1 /' | $PY norm | sort)" \
    "$($PY tuples "$T/ndpi-1kxun.ms.dump" | sed 's/ None/ 0/g' | awk '{ print ($1 == 58 ? 1 : $1), $2, $3, $4, $5 }' | sort)" \
    "nfdump: each record's protocol, addresses and ports = ipfixDump's of the file run"

# --- TCP: collector down at start, then up; never up ---
cat >"$T/collector.py" <<'EOF'
import socket, sys, time
time.sleep(float(sys.argv[3]))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(4)
out = open(sys.argv[2], "wb")
s.settimeout(20)
c, _ = s.accept()
while True:
    b = c.recv(65536)
    if not b:
        break
    out.write(b)
out.close()
EOF
P=$((BASE + 2))
python3 "$T/collector.py" "$P" "$T/tcp.ipfix" 1.5 &
CP=$!
PIDS+=("$CP")
conf tcp "$tr" "{\"type\": \"ipfix\", \"transport\": \"tcp\", \"collector\": \"127.0.0.1:$P\", \"close_wait\": 20}"
weir_ok tcp -v --config "$T/tcp.json"
wait "$CP" 2>/dev/null
dump "$T/tcp.ipfix" tcp &&
	$PY records "$T/tcp.dump" >"$T/tcp.recs"
	$PY records "$T/ndpi-1kxun.ms.dump" >"$T/file.recs"
	same_file "$T/tcp.recs" "$T/file.recs" \
	    "TCP collector up 1.5 s late: every record arrives, equal to the file run's"
grep -q ' 0 records dropped' "$WERR" && pass "TCP late collector: 0 records dropped" ||
	fail "TCP late collector: 0 records dropped" "$(tail -n 3 "$WERR")"

P=$((BASE + 3))
conf tcpdown "$tr" "{\"type\": \"ipfix\", \"transport\": \"tcp\", \"collector\": \"127.0.0.1:$P\", \"close_wait\": 1}"
t0=$(date +%s%N)
weir_ok tcpdown -v --config "$T/tcpdown.json"
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -lt 4000 ] && pass "TCP collector never up: exit 0 after ${ms} ms (close_wait 1 s)" ||
	fail "TCP collector never up: exits within close_wait" "${ms} ms"
recs=$($PY sum "$T/ndpi-1kxun.ms.dump" | cut -d' ' -f1)
is "$(sed -n 's/.*; \([0-9]*\) records dropped.*/\1/p' "$WERR")" "$recs" \
    "TCP collector never up: all $recs records counted in records_dropped"

# --- anonymization: published Crypto-PAn vectors ---
VEC="$DATA/cryptopan/vectors.tsv"
key=$(grep -v '^#' "$VEC" | head -n 1 | cut -f1)
echo "$key" >"$T/vec.key"
grep -v '^#' "$VEC" | awk -F'\t' -v k="$key" '$1 == k' >"$T/vec.tsv"
# shellcheck disable=SC2046
python3 "$TOOLS/tracetool.py" mkpcap "$T/vec.pcap" $(cut -f2 "$T/vec.tsv")
conf anon "$T/vec.pcap" "{\"type\": \"ipfix\", \"path\": \"$T/anon.ipfix\", \"metadata\": false}" \
    "{\"type\": \"anonymize\", \"method\": \"cryptopan\", \"key_file\": \"$T/vec.key\", \"addresses\": \"both\"}"
if weir_ok anon -q --config "$T/anon.json" && dump "$T/anon.ipfix" anon; then
	$PY addrs "$T/anon.dump" | sort >"$T/anon.got"
	cut -f3 "$T/vec.tsv" | python3 -c 'import ipaddress, sys; [print(ipaddress.ip_address(l.strip())) for l in sys.stdin]' | sort >"$T/anon.want"
	same_file "$T/anon.got" "$T/anon.want" \
	    "anonymized flow records carry the Crypto-PAn outputs of the published vectors ($(wc -l <"$T/vec.tsv") addresses)"
fi

# --- flow counts against softflowd and nfpcapd ---
# Timeouts (1 h, nfpcapd's maximum) longer than the traces, TCP FIN/RST not ending flows: every tool
# then has one flow per key (per direction for the uniflow tools).
# nfcount DIR TOOL NAME [UDP ICMP]: TCP and UDP flows in DIR = our
# uniflows (or the UDP count given); ICMP = the count given, else only
# shown (docs/flows.md explains each difference)
nfcount()
{
	local c
	c=$(nfdump -R "$1" -q -N -o 'fmt:%pr' 2>/dev/null | awk '
	    $1 == "TCP" || $1 == 6 { t++ } $1 == "UDP" || $1 == 17 { u++ }
	    $1 != "TCP" && $1 != 6 && $1 != "UDP" && $1 != 17 && $1 != "No" { o++ }
	    END { print t + 0, u + 0, o + 0 }')
	if [ $# -ge 5 ]; then
		is "$c" "$utcp $4 $5" "$3: $2's TCP, UDP, ICMP flows = our biflows split by direction, one flow per DNS and ICMP packet"
	else
		is "${c% *}" "$utcp $uudp" "$3: $2's TCP and UDP flows = our biflows split by direction"
		echo "# $3: other (ICMP...) flows: $2 ${c##* }, ours as uniflows $uoth"
	fi
}
for tr in $DATA/zeek-echo-connections.pcap $GEN; do
	n=$(basename "$tr" .pcap)
	conf "cmp.$n" "$tr" "{\"type\": \"ipfix\", \"path\": \"$T/cmp.$n.ipfix\", \"metadata\": false, \"idle_timeout\": 3600, \"active_timeout\": 0, \"tcp_end\": false}"
	weir_ok "cmp.$n" -q --config "$T/cmp.$n.json" || continue
	dump "$T/cmp.$n.ipfix" "cmp.$n" || continue
	read -r utcp uudp uoth udns uicmp <<<"$($PY uniproto "$T/cmp.$n.dump")"
	if command -v nfpcapd >/dev/null; then
		mkdir -p "$T/np.$n"
		nfpcapd -r "$tr" -w "$T/np.$n" -e 3600,3600 >"$T/np.$n.log" 2>&1
		nfcount "$T/np.$n" nfpcapd "$n" $((uudp + udns)) "$uicmp"
	fi
	if command -v softflowd >/dev/null && command -v softflowctl >/dev/null; then
		P=$((BASE + 4))
		mkdir -p "$T/sf.$n"
		nfcapd -b 127.0.0.1 -p "$P" -w "$T/sf.$n" -t 3600 >"$T/sfcap.$n.log" 2>&1 &
		NFP=$!
		PIDS+=("$NFP")
		sleep 0.5
		softflowd -d -r "$tr" -n "127.0.0.1:$P" -v 10 -T full -6 -m 1000000 \
		    -t general=3600 -t tcp=3600 -t udp=3600 -t icmp=3600 \
		    -t tcp.rst=3600 -t tcp.fin=3600 -t maxlife=3600 \
		    -c "$T/sf.$n.ctl" -p "$T/sf.$n.pid" >"$T/sf.$n.log" 2>&1 &
		SFP=$!
		PIDS+=("$SFP")
		# -r does not exit at the end of the file: wait until every
		# packet is processed, then ask it to expire all and stop
		want=$(npkts "$tr")
		for _ in $(seq 100); do
			softflowctl -c "$T/sf.$n.ctl" statistics 2>/dev/null |
			    grep -q "^Packets processed: $want\$" && break
			sleep 0.2
		done
		softflowctl -c "$T/sf.$n.ctl" shutdown >/dev/null 2>&1
		wait "$SFP" 2>/dev/null
		sleep 0.5
		kill "$NFP"
		wait "$NFP" 2>/dev/null
		nfcount "$T/sf.$n" softflowd "$n"
	fi
done

done_testing
