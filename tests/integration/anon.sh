#!/bin/bash
# anon.sh - Crypto-PAn anonymization as tshark sees the files we write.
#
# - the published vectors (tests/data/cryptopan/vectors.tsv), end to end
#   through a pcap made here with those addresses;
# - on a generated trace and on real traces with tunnels, ICMP errors and
#   ARP: every address tshark finds changes; the mapping is a function,
#   one-to-one, prefix-preserving (sampled pairs of distinct addresses keep
#   their common prefix length), the same across packets, files and runs;
# - checksums verify after "update" wherever they verified before;
# - the key appears in no output, metadata, summary or printed config.
. tests/integration/common.bash

T=$WEIR_TMP
TT="python3 $TOOLS/tracetool.py"
VEC="$DATA/cryptopan/vectors.tsv"

# A key with no NUL or newline byte, so grep-like searches are exact.
KEYHEX=8f3c5a7e91b2d4c6e8fa1c3e5a7b9d2f4e6a8c1b3d5f7e9a2c4b6d8f1a3c5e7b
echo "$KEYHEX" >"$T/key.hex"
python3 -c "import sys; open(sys.argv[1],'wb').write(bytes.fromhex(sys.argv[2]))" \
    "$T/key.bin" "$KEYHEX"

# --- published vectors, one run per key ---
for key in $(grep -v '^#' "$VEC" | cut -f1 | sort -u); do
	k=${key:0:8}
	echo "$key" >"$T/vec.$k.key"
	grep -v '^#' "$VEC" | awk -F'\t' -v k="$key" '$1 == k' >"$T/vec.$k.tsv"
	# shellcheck disable=SC2046
	$TT mkpcap "$T/vec.$k.pcap" $(cut -f2 "$T/vec.$k.tsv")
	weir_ok "vec.$k" -q --anon-key "$T/vec.$k.key" -r "$T/vec.$k.pcap" \
	    -w "$T/vec.$k.out.pcap" || continue
	cut -f3 "$T/vec.$k.tsv" | awk '{ print $1 "\t" $1 }' >"$T/vec.$k.want"
	tsh "$T/vec.$k.out.pcap" -T fields -e ip.src -e ip.dst -e ipv6.src \
	    -e ipv6.dst | awk -F'\t' '{ print $1 $3 "\t" $2 $4 }' \
	    >"$T/vec.$k.got"
	same_file "$T/vec.$k.got" "$T/vec.$k.want" \
	    "published vectors, key $k...: $(wc -l <"$T/vec.$k.want") addresses as src and dst"
done

# addrmap IN OUT MAP: pair every address tshark finds in IN with the one
# at the same place in OUT ("orig<TAB>anon" lines appended to MAP).  A
# packet whose address count changed is reported on stderr and as a
# "MISMATCH" line.
AFIELDS="-e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e arp.src.proto_ipv4 -e arp.dst.proto_ipv4"
addrmap()
{
	# shellcheck disable=SC2086
	tsh "$1" -T fields -E occurrence=a -E aggregator=, $AFIELDS \
	    >"$WEIR_TMP/in.addr"
	# shellcheck disable=SC2086
	tsh "$2" -T fields -E occurrence=a -E aggregator=, $AFIELDS \
	    >"$WEIR_TMP/out.addr"
	paste "$WEIR_TMP/in.addr" "$WEIR_TMP/out.addr" | awk -F'\t' '
	{
		n = NF / 2
		for (i = 1; i <= n; i++) {
			a = split($i, o, ",")
			b = split($(i + n), x, ",")
			if (a != b) {
				print "MISMATCH\tpacket " NR " field " i ": " $i " vs " $(i + n)
				continue
			}
			for (j = 1; j <= a; j++)
				if (o[j] != "")
					print o[j] "\t" x[j]
		}
	}' >>"$3"
}

# anon_checks NAME IN OUT: every address changed, no packet lost an address
anon_checks()
{
	local name=$1 map="$T/$1.map" same mism total
	# nothing dropped, so the listings below pair up packet by packet
	is "$(npkts "$3")" "$(npkts "$2")" "$name: every packet anonymized and written"
	: >"$map"
	addrmap "$2" "$3" "$map"
	total=$(grep -c -v MISMATCH "$map")
	mism=$(grep -c MISMATCH "$map")
	same=$(awk -F'\t' '$1 == $2' "$map" | grep -c -v MISMATCH)
	if [ "$total" -gt 0 ] && [ "$mism" -eq 0 ] && [ "$same" -eq 0 ]; then
		pass "$name: all $total addresses (outer, inner, quoted, ARP) changed"
	else
		fail "$name: every address changed" \
		    "$total addresses, $same unchanged, $mism packets differ in addresses" \
		    "$(grep MISMATCH "$map" | head -5)" \
		    "$(awk -F'\t' '$1 == $2' "$map" | sort -u | head -5)"
	fi
	grep -v MISMATCH "$map" >>"$T/all.map"
}

# cksum_status FILE: per packet, the IP/TCP/UDP/ICMP/ICMPv6 checksum status
# as tshark verifies it (0 bad, 1 good, 2 not checked).
cksum_status()
{
	tshark -r "$1" -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE \
	    -o udp.check_checksum:TRUE -T fields -E occurrence=a \
	    -E aggregator=, -e ip.checksum.status -e tcp.checksum.status \
	    -e udp.checksum.status -e icmp.checksum.status \
	    -e icmpv6.checksum.status 2>/dev/null
}

# cksum_kept NAME IN OUT: every checksum good in IN is good in OUT
cksum_kept()
{
	local name=$1 res
	cksum_status "$2" >"$3.csin"
	cksum_status "$3" >"$3.csout"
	res=$(paste "$3.csin" "$3.csout" | awk -F'\t' '
	{
		n = NF / 2
		for (i = 1; i <= n; i++) {
			a = split($i, x, ",")
			split($(i + n), y, ",")
			for (j = 1; j <= a; j++) {
				if (x[j] == "1") good++
				if (x[j] == "1" && y[j] != "1") {
					bad++
					if (bad <= 3) w = w " pkt " NR " field " i
				}
			}
		}
	}
	END { printf "%d %d%s", good, bad, w }')
	set -- $res
	if [ "$1" -eq 0 ]; then
		pass "$name: checksums # SKIP no verifiable checksum in the input"
	elif [ "$2" -eq 0 ]; then
		pass "$name: all $1 checksums that verified still verify"
	else
		fail "$name: checksums that verified still verify" \
		    "$1 good before, $2 not good after:${*:3}"
	fi
}

: >"$T/all.map"
mkdir -p "$T/out"

# --- generated trace: v4 + v6, TCP/UDP/ICMP, correct checksums ---
G="$T/gen7.pcap"
python3 "$GENTRACE" --quiet --packets 20000 --seed 7 --out "$G"
weir_ok gen7 -q --meta --anon-key "$T/key.hex" --summary "$T/gen7.summary.json" \
    --counters "$T/gen7.counters.jsonl" -r "$G" -w "$T/out/gen7.anon.pcap"
anon_checks gen7 "$G" "$T/out/gen7.anon.pcap"
cksum_kept gen7 "$G" "$T/out/gen7.anon.pcap"
if res=$($TT prefix "$T/gen7.map" 30000 7); then
	pass "gen7: prefix-preserving, one-to-one ($res pairs)"
else
	fail "gen7: prefix-preserving, one-to-one" "$res"
fi
n=$(cut -f1 "$T/gen7.map" | sort -u | wc -l)
is "$([ "$n" -gt 400 ] && echo many)" many \
    "gen7: many distinct addresses tested ($n)"
tshark_reads "$T/out/gen7.anon.pcap" "gen7: tshark reads the anonymized file"

# the same run again, and with the key as 32 raw bytes: identical output
weir_ok gen7b -q --anon-key "$T/key.hex" -r "$G" -w "$T/gen7.again.pcap" &&
	if cmp -s "$T/out/gen7.anon.pcap" "$T/gen7.again.pcap"; then
		pass "gen7: a second run writes the same bytes"
	else
		fail "gen7: a second run writes the same bytes"
	fi
weir_ok gen7raw -q --anon-key "$T/key.bin" -r "$G" -w "$T/gen7.raw.pcap" &&
	if cmp -s "$T/out/gen7.anon.pcap" "$T/gen7.raw.pcap"; then
		pass "gen7: raw and hex key files give the same mapping"
	else
		fail "gen7: raw and hex key files give the same mapping"
	fi

# a different key gives a different mapping (the key is really used)
echo "${KEYHEX:1}0" >"$T/key2.hex"
weir_ok gen7k2 -q --anon-key "$T/key2.hex" -r "$G" -w "$T/gen7.k2.pcap" &&
	if ! cmp -s "$T/out/gen7.anon.pcap" "$T/gen7.k2.pcap"; then
		pass "gen7: another key, another mapping"
	else
		fail "gen7: another key, another mapping"
	fi

# the trace split in two files, each anonymized on its own: the addresses
# both halves share map alike (the union of the maps is still a
# consistent, prefix-preserving function)
editcap -r "$G" "$T/half1.pcap" 1-10000 2>/dev/null
editcap -r "$G" "$T/half2.pcap" 10001-20000 2>/dev/null
for h in half1 half2; do
	weir_ok "$h" -q --anon-key "$T/key.hex" -r "$T/$h.pcap" \
	    -w "$T/out/$h.anon.pcap" && anon_checks "$h" "$T/$h.pcap" \
	    "$T/out/$h.anon.pcap"
done
shared=$(comm -12 <(cut -f1 "$T/half1.map" | sort -u) \
    <(cut -f1 "$T/half2.map" | sort -u) | wc -l)
cat "$T/half1.map" "$T/half2.map" >"$T/halves.map"
if [ "$shared" -gt 50 ] && res=$($TT prefix "$T/halves.map" 20000 8); then
	pass "two files: $shared shared addresses map alike ($res pairs)"
else
	fail "two files: shared addresses map alike" \
	    "$shared shared addresses" "${res:-}"
fi

# --- real traces: tunnels, ICMP errors quoting headers, ARP and RARP ---
for tr in ndpi-nintendo.pcap zeek-gre-sample.pcap ndpi-6in4tunnel.pcap \
    zeek-vxlan-encapsulated-http.pcap zeek-erspan.pcap \
    zeek-linux_dlt_sll2.pcap tcpdump-802.1ad_QinQ.pcap \
    zeek-communityid-icmp6.pcap ndpi-dns_fragmented.pcap; do
	n=${tr%.pcap}
	weir_ok "$n" -q --anon-key "$T/key.hex" -r "$DATA/$tr" \
	    -w "$T/out/$n.anon.pcap" || continue
	anon_checks "$n" "$DATA/$tr" "$T/out/$n.anon.pcap"
	cksum_kept "$n" "$DATA/$tr" "$T/out/$n.anon.pcap"
done
if res=$($TT prefix "$T/all.map" 40000 3); then
	pass "every trace together: one consistent prefix-preserving map ($res pairs)"
else
	fail "every trace together: one consistent prefix-preserving map" "$res"
fi

# --- checksum modes and address choice (config document) ---
cat >"$T/leave.json" <<EOF
{"inputs": [{"path": "$T/half1.pcap"}],
 "stages": [{"type": "anonymize", "method": "cryptopan",
	     "key_file": "$T/key.hex", "addresses": "src",
	     "checksums": "leave"}],
 "outputs": [{"type": "pcap", "path": "$T/half1.leave.pcap"}]}
EOF
if weir_ok leave -q --config "$T/leave.json"; then
	bad=$(cksum_status "$T/half1.leave.pcap" | cut -f1 | grep -c '^0')
	if [ "$bad" -gt 0 ]; then
		pass "checksums 'leave': $bad IPv4 headers no longer verify (the check can fail)"
	else
		fail "checksums 'leave': IPv4 headers no longer verify" "$bad bad"
	fi
	tsh "$T/half1.pcap" -T fields -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst >"$T/h1.in"
	tsh "$T/half1.leave.pcap" -T fields -e ip.src -e ip.dst -e ipv6.src \
	    -e ipv6.dst >"$T/h1.src"
	res=$(paste "$T/h1.in" "$T/h1.src" | awk -F'\t' '
	    { if ($1 $3 == $5 $7) s++; if ($2 $4 != $6 $8) d++ }
	    END { print s + 0, d + 0 }')
	is "$res" "0 0" "addresses 'src': every source changed, no destination"
fi

# --- the key never leaks ---
weir print -n --anon-key "$T/key.hex" -r "$G" -w "$T/out/x.pcap"
if [ "$WRC" -eq 0 ] && grep -q -F "$T/key.hex" "$WOUT"; then
	pass "-n names the key file"
else
	fail "-n names the key file" "exit $WRC" "$(head -c 600 "$WOUT")"
fi
ls "$T"/out/*.meta.json >/dev/null 2>&1 &&
	pass "metadata written beside the output ($(ls "$T"/out/*.meta.* | wc -l) files)" ||
	fail "metadata written beside the output" "$(ls "$T/out")"
leak=$(python3 - "$KEYHEX" "$T/out" "$T/gen7.summary.json" \
    "$T/gen7.counters.jsonl" "$T"/*.out "$T"/*.err <<'EOF'
import os, sys
key = bytes.fromhex(sys.argv[1])
needles = [key, key[:16], key[16:]]
needles += [n.hex().encode() for n in needles]
needles += [n.upper() for n in needles[3:]]
files = []
for p in sys.argv[2:]:
    if os.path.isdir(p):
        files += [os.path.join(p, f) for f in os.listdir(p)]
    elif os.path.exists(p):
        files.append(p)
hits = [f for f in files if any(n in open(f, "rb").read() for n in needles)]
print(len(files), " ".join(hits))
EOF
)
set -- $leak
if [ "$#" -eq 1 ] && [ "$1" -gt 5 ]; then
	pass "the key (raw, hex, either half) is in none of $1 output/metadata/log files"
else
	fail "the key is in no output, metadata or log file" "found in: ${*:2}"
fi

done_testing
