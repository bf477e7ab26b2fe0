#!/bin/bash
# truncate_sample.sh - truncation, headers-only, zeroing and sampling.
#
# Expected lengths come from tshark's dissection of the input (link header
# + VLAN tags + IP header length + TCP header length / 8 for UDP and ICMP),
# expected bytes from the input records themselves (tests/integration/
# tracetool.py reads the pcap records); 1-in-N sampling must pick exactly
# every N-th packet of tcpdump's selection; random sampling must keep a
# count inside the binomial 99.9% interval; flow sampling must keep whole
# flows only.
. tests/integration/common.bash

T=$WEIR_TMP
TT="python3 $TOOLS/tracetool.py"
G="$T/gen.pcap"
python3 "$GENTRACE" --quiet --packets 20000 --seed 11 --ipv6-fraction 0.2 \
    --out "$G"
VLAN="$DATA/libtrace-vlan.pcap"

# run_conf NAME JSON: write the document and run it
run_conf()
{
	printf '%s\n' "$2" >"$T/$1.json"
	weir_ok "$1" -q --config "$T/$1.json"
}

# hdrs IN: per packet "hdrend l4start l4kind" as tshark dissects IN
# (Ethernet + 802.1Q tags + IPv4/IPv6 + TCP/UDP/ICMP/ICMPv6; anything
# else, tunnels and fragments get -1: not checked)
hdrs()
{
	tsh "$1" -T fields -E occurrence=a -E aggregator=, -e eth.type \
	    -e vlan.id -e ip.hdr_len -e ipv6.nxt -e tcp.hdr_len \
	    -e udp.srcport -e icmp.type -e icmpv6.type -e ip.frag_offset \
	    -e ip.flags.mf -e ip.proto -e gre.proto -e vxlan.vni |
	awk -F'\t' '
	{
		nv = $2 == "" ? 0 : split($2, v, ",")
		l3 = 14 + 4 * nv
		if (index($3, ",") || index($4, ",") || $12 != "" || $13 != "" ||
		    ($9 != "" && $9 != "0") || $10 == "1" || $10 == "True") {
			print -1, -1, "-"; next
		}
		if ($3 != "") iph = $3
		else if ($4 != "" && ($4 == 6 || $4 == 17 || $4 == 58)) iph = 40
		else { print -1, -1, "-"; next }
		l4 = l3 + iph
		if ($5 != "") print l4 + $5, l4, "tcp"
		else if ($6 != "") print l4 + 8, l4, "udp"
		else if ($7 != "") print l4 + 8, l4, "icmp"
		else if ($8 != "") print l4 + 8, l4, "icmpv6"
		else print -1, -1, "-"
	}'
}

hdrs "$G" >"$T/gen.hdrs"
hdrs "$VLAN" >"$T/vlan.hdrs"
n_checked=$(awk '$1 >= 0' "$T/gen.hdrs" | wc -l)
is "$([ "$n_checked" -gt 19000 ] && echo yes)" yes \
    "gentrace: tshark finds the headers of $n_checked of 20000 packets"

# --- snaplen (config document) ---
run_conf snap100 "{\"inputs\": [{\"path\": \"$G\"}],
 \"stages\": [{\"type\": \"truncate\", \"snaplen\": 100}],
 \"outputs\": [{\"type\": \"pcap\", \"path\": \"$T/snap100.pcap\"}]}" && {
	tsh "$G" -T fields -e frame.cap_len -e frame.len |
	    awk '{ print ($1 < 100 ? $1 : 100) "\t" $2 }' >"$T/snap100.want"
	tsh "$T/snap100.pcap" -T fields -e frame.cap_len -e frame.len \
	    >"$T/snap100.got"
	same_file "$T/snap100.got" "$T/snap100.want" \
	    "snaplen 100: cap_len = min(100, cap_len), len kept"
	awk '{ print 100, -1, "-" }' "$T/gen.hdrs" >"$T/snap100.hdrs"
	res=$($TT cutcheck headers "$G" "$T/snap100.pcap" "$T/snap100.hdrs")
	is "$res" "ok 20000" "snaplen 100: bytes are the input's first 100"
}

# --- headers-only: cut right after the innermost transport header ---
for tr in gen vlan; do
	[ "$tr" = gen ] && in=$G || in=$VLAN
	weir_ok "ho.$tr" -q --headers-only -r "$in" -w "$T/ho.$tr.pcap" ||
		continue
	res=$($TT cutcheck headers "$in" "$T/ho.$tr.pcap" "$T/$tr.hdrs")
	want=$(awk '$1 >= 0' "$T/$tr.hdrs" | wc -l)
	is "$res" "ok $want" "--headers-only $tr: cap_len = link+IP+transport header (tshark), bytes kept"
	tshark_reads "$T/ho.$tr.pcap" "--headers-only $tr: tshark reads it"
done
# a TCP packet by hand: eth 14 + IPv4 20 + TCP with options
line=$(tsh "$T/ho.gen.pcap" -Y "ip && tcp.flags.syn == 1 && tcp.flags.ack == 0" \
    -T fields -e frame.cap_len -e ip.hdr_len -e tcp.hdr_len | head -n 1)
set -- $line x x x
is "$1" "$((14 + ${2/x/0} + ${3/x/0}))" \
    "--headers-only: first IPv4 SYN cap_len $1 = 14 + $2 + $3"

# --- zero_payload: lengths kept, payload zero, checksums still verify ---
run_conf zero "{\"inputs\": [{\"path\": \"$G\"}],
 \"stages\": [{\"type\": \"truncate\", \"zero_payload\": true}],
 \"outputs\": [{\"type\": \"pcap\", \"path\": \"$T/zero.pcap\"}]}" && {
	res=$($TT cutcheck zero "$G" "$T/zero.pcap" "$T/gen.hdrs")
	is "$res" "ok $n_checked" "zero_payload: lengths and headers kept, payload bytes zero"
	tshark -r "$T/zero.pcap" -o tcp.check_checksum:TRUE \
	    -o udp.check_checksum:TRUE -o ip.check_checksum:TRUE -T fields \
	    -e ip.checksum.status -e tcp.checksum.status \
	    -e udp.checksum.status -e icmp.checksum.status \
	    -e icmpv6.checksum.status 2>/dev/null | tr '\t,' '\n\n' |
	    grep -v '^$' | sort | uniq -c | awk '{print $2 "=" $1}' |
	    tr '\n' ' ' >"$T/zero.cs"
	if grep -q '1=' "$T/zero.cs" && ! grep -q '0=' "$T/zero.cs"; then
		pass "zero_payload: every checksum verifies ($(cat "$T/zero.cs"))"
	else
		fail "zero_payload: every checksum verifies" "$(cat "$T/zero.cs")"
	fi
}

# --- zero_fields: named IPv4/TCP fields become 0, checksums updated ---
run_conf zf "{\"inputs\": [{\"path\": \"$G\"}],
 \"stages\": [{\"type\": \"truncate\",
	     \"zero_fields\": [\"ip.id\", \"ip.ttl\", \"tcp.seq\"]}],
 \"outputs\": [{\"type\": \"pcap\", \"path\": \"$T/zf.pcap\"}]}" && {
	res=$(tshark -r "$T/zf.pcap" -o tcp.check_checksum:TRUE \
	    -o ip.check_checksum:TRUE -o tcp.relative_sequence_numbers:FALSE \
	    -Y ip -T fields -e ip.id -e ip.ttl -e tcp.seq -e ip.checksum.status \
	    -e tcp.checksum.status 2>/dev/null | awk -F'\t' '
	    { n++ }
	    $1 != "0x0000" || $2 != 0 || ($3 != "" && $3 != 0) ||
	    $4 != 1 || ($5 != "" && $5 != 1) { bad++; if (bad < 3) w = w " " $0 }
	    END { print n + 0, bad + 0, w }')
	set -- $res
	if [ "${1:-0}" -gt 1000 ] && [ "${2:-1}" -eq 0 ]; then
		pass "zero_fields: ip.id, ip.ttl, tcp.seq zero in all $1 IPv4 packets, checksums verify"
	else
		fail "zero_fields: ip.id, ip.ttl, tcp.seq zero, checksums verify" "$res"
	fi
}

# --- sampling, 1-in-N: exactly every N-th packet of tcpdump's selection ---
tcpdump -r "$G" -w "$T/tcp.ref.pcap" tcp 2>/dev/null
ntcp=$(npkts "$T/tcp.ref.pcap")
for no in "10 0" "7 3"; do
	set -- $no
	n=$1 off=$2
	run_conf "cnt$n" "{\"inputs\": [{\"path\": \"$G\"}],
	 \"stages\": [{\"type\": \"filter\", \"expr\": \"tcp\"},
		     {\"type\": \"sample\", \"mode\": \"count\", \"n\": $n,
		      \"offset\": $off}],
	 \"outputs\": [{\"type\": \"pcap\", \"path\": \"$T/cnt$n.pcap\"}]}" ||
		continue
	# packet i (0-based) is kept when i % n == offset
	$TT every "$T/tcp.ref.pcap" "$T/cnt$n.want.pcap" "$n" "$off"
	tcpdump_list "$T/cnt$n.want.pcap" >"$T/cnt$n.want"
	tcpdump_list "$T/cnt$n.pcap" >"$T/cnt$n.got"
	same_file "$T/cnt$n.got" "$T/cnt$n.want" \
	    "sample count n=$n offset=$off after 'tcp': every $n-th of tcpdump's $ntcp ($(npkts "$T/cnt$n.want.pcap") kept)"
done

# --- random: count inside the binomial 99.9% interval, reproducible ---
for ps in "0.1 1" "0.5 42" "0.01 7"; do
	set -- $ps
	p=$1 seed=$2
	run_conf "rnd$seed" "{\"inputs\": [{\"path\": \"$G\"}],
	 \"stages\": [{\"type\": \"sample\", \"mode\": \"random\", \"p\": $p,
		     \"seed\": $seed}],
	 \"outputs\": [{\"type\": \"pcap\", \"path\": \"$T/rnd$seed.pcap\"}]}" ||
		continue
	k=$(npkts "$T/rnd$seed.pcap")
	set -- $($TT binom 20000 "$p")
	if [ "$k" -ge "$1" ] && [ "$k" -le "$2" ]; then
		pass "sample random p=$p seed=$seed: kept $k of 20000, in [$1, $2]"
	else
		fail "sample random p=$p seed=$seed: kept count in [$1, $2]" "kept $k"
	fi
done
# kept packets are input packets, in order: a subsequence of the listing
tsh "$G" -T fields -e frame.time_epoch -e frame.len -e ip.id -e ipv6.flow \
    >"$T/gen.keys"
tsh "$T/rnd1.pcap" -T fields -e frame.time_epoch -e frame.len -e ip.id \
    -e ipv6.flow >"$T/rnd1.keys"
res=$(awk 'NR == FNR { a[NR] = $0; n = NR; next }
	{ while (i < n && a[++i] != $0) ; if (a[i] != $0) { print "no"; exit } }
	END { print "done" }' "$T/gen.keys" "$T/rnd1.keys" | head -n 1)
is "$res" done "sample random: the kept packets are input packets in input order"
cp "$T/rnd1.pcap" "$T/rnd1.first.pcap"
run_conf rnd1 "$(cat "$T/rnd1.json")" &&
	if cmp -s "$T/rnd1.pcap" "$T/rnd1.first.pcap"; then
		pass "sample random: the same seed selects the same packets"
	else
		fail "sample random: the same seed selects the same packets"
	fi
sed 's/"seed": 1}/"seed": 2}/' "$T/rnd1.json" >"$T/rnd2.json"
sed -i "s|$T/rnd1.pcap|$T/rnd2.pcap|" "$T/rnd2.json"
weir_ok rnd2 -q --config "$T/rnd2.json" &&
	if ! cmp -s "$T/rnd2.pcap" "$T/rnd1.pcap"; then
		pass "sample random: another seed selects other packets"
	else
		fail "sample random: another seed selects other packets"
	fi

# --- flow: every TCP/UDP flow (either direction) all or nothing ---
flows()
{
	tsh "$1" -Y "tcp || udp" -T fields -e ip.src -e ipv6.src -e ip.dst \
	    -e ipv6.dst -e tcp.srcport -e udp.srcport -e tcp.dstport \
	    -e udp.dstport | awk -F'\t' '
	{
		a = $1 $2 "#" $5 $6; b = $3 $4 "#" $7 $8
		p = ($5 != "") ? "tcp" : "udp"
		print (a < b ? a " " b : b " " a) " " p
	}' | sort | uniq -c | awk '{ print $2, $3, $4, $1 }'
}
run_conf flow "{\"inputs\": [{\"path\": \"$G\"}],
 \"stages\": [{\"type\": \"sample\", \"mode\": \"flow\", \"n\": 4,
	     \"offset\": 1, \"seed\": 5}],
 \"outputs\": [{\"type\": \"pcap\", \"path\": \"$T/flow.pcap\"}]}" && {
	flows "$G" >"$T/flow.in"
	flows "$T/flow.pcap" >"$T/flow.out"
	# every kept flow has all its packets: its line is in the input's
	partial=$(comm -13 "$T/flow.in" "$T/flow.out" | head -n 5)
	nin=$(wc -l <"$T/flow.in")
	nout=$(wc -l <"$T/flow.out")
	if [ -z "$partial" ] && [ "$nout" -gt 0 ]; then
		pass "sample flow: $nout of $nin TCP/UDP flows kept, each with all its packets"
	else
		fail "sample flow: whole flows only" "$nout of $nin kept; partial:" \
		    "$partial"
	fi
	set -- $($TT binom "$nin" 0.25)
	if [ "$nout" -ge "$1" ] && [ "$nout" -le "$2" ]; then
		pass "sample flow n=4: $nout kept flows in the binomial 99.9% interval [$1, $2]"
	else
		fail "sample flow n=4: kept flows in [$1, $2]" "kept $nout"
	fi
}

done_testing
