#!/bin/bash
# corrupt.sh - corrupt and truncated inputs fail loudly but lose nothing.
#
# For every bad trace (three real ones from tests/data and several made
# here by cutting or corrupting a good file at a known packet): exit
# status 1 (a runtime failure; an unreadable format is one too), stderr
# names the file and a byte offset inside the damaged record, the packets
# before the damage are in the output file, byte for byte as tcpdump
# lists them, tshark reads that file, and no sanitizer complains.
. tests/integration/common.bash

T=$WEIR_TMP
TT="python3 $TOOLS/tracetool.py"

# bad NAME FILE NPKTS LO HI [REF]
#   NPKTS packets precede the damage; stderr must name a byte offset in
#   [LO, HI] (LO = -1: no offset required, e.g. an empty file).  REF is a
#   file whose first NPKTS packets tcpdump lists as the expected ones
#   (default FILE itself).
bad()
{
	local name=$1 file=$2 n=$3 lo=$4 hi=$5 ref=${6:-$2} out got nums o hit
	out="$T/$name.out.pcap"
	weir "$name" -q -r "$file" -w "$out"
	is "$WRC" 1 "$name: exit status 1"
	if grep -q -F -- "$(basename "$file")" "$WERR"; then
		pass "$name: stderr names the file"
	else
		fail "$name: stderr names the file" "$(head -c 600 "$WERR")"
	fi
	if [ "$lo" -ge 0 ]; then
		# numbers in stderr once the file name (which has digits) is gone
		nums=$(sed "s|$file||g; s|$(basename "$file")||g" "$WERR" |
		    grep -o -E '0x[0-9a-fA-F]+|[0-9]+')
		hit=""
		for o in $nums; do
			o=$((o))
			if [ "$o" -ge "$lo" ] && [ "$o" -le "$hi" ]; then
				hit=$o
			fi
		done
		if [ -n "$hit" ]; then
			pass "$name: stderr gives an offset in [$lo, $hi] ($hit)"
		else
			fail "$name: stderr gives an offset in [$lo, $hi]" \
			    "$(head -c 600 "$WERR")"
		fi
	fi
	if [ "$n" -eq 0 ]; then
		# nothing to keep: no file, or a readable empty one
		if [ ! -e "$out" ]; then
			pass "$name: no packets, no output file"
		else
			got=$(npkts "$out")
			local why
			if why=$(tshark_clean "$out") && [ "$got" -eq 0 ]; then
				pass "$name: no packets, empty readable output"
			else
				fail "$name: no packets, empty readable output" \
				    "$got packets; $why"
			fi
		fi
		return
	fi
	is "$(npkts "$out")" "$n" "$name: the $n packets before the damage are written"
	listing "$ref" "$n" "$ref" >"$out.want"
	listing "$out" "$n" "$ref" >"$out.got"
	same_file "$out.got" "$out.want" "$name: and they are the input's first $n"
	tshark_reads "$out" "$name: tshark reads the output"
}

# listing FILE N REF: the first N packets, byte-exact, without timestamps
# (tcpdump; tshark's hex dump when REF is ERF, which tcpdump cannot read)
listing()
{
	case $3 in
	*.erf) tsh "$1" -c "$2" -x | grep -E '^[0-9a-f]{4}  ' ;;
	*) tcpdump_list "$1" -c "$2" -t ;;
	esac
}

size()
{
	wc -c <"$1" | tr -d ' '
}

# --- real corrupt traces (tests/data/SOURCES.md) ---
# a record header with caplen 1409179648 at offset 228, after 1 good packet
bad fuzz6875 "$DATA/suricata-bug6875-fuzz.pcap" 1 228 243
# ends 1 byte into the 2697th record header
f="$DATA/suricata-http-mime-truncated.pcap"
bad mimetrunc "$f" 2696 $(($(size "$f") - 1)) "$(size "$f")"
# an SHB option runs past its block: nothing readable at all
bad shbopt "$DATA/libpcap-shb-option-too-long.pcapng" 0 0 180

# --- made here: cut or corrupted at a known packet ---
# pcap cut 20 bytes into the body of packet 501
src="$DATA/ndpi-nintendo.pcap"
o=$($TT offsets "$src" | sed -n 501p)
head -c $((o + 16 + 20)) "$src" >"$T/cutbody.pcap"
bad cutbody "$T/cutbody.pcap" 500 "$o" $((o + 36)) "$src"

# pcap cut 6 bytes into the record header of packet 61
o=$($TT offsets "$src" | sed -n 61p)
head -c $((o + 6)) "$src" >"$T/cuthdr.pcap"
bad cuthdr "$T/cuthdr.pcap" 60 "$o" $((o + 6)) "$src"

# pcap whose file header is cut short
head -c 13 "$src" >"$T/shortfh.pcap"
bad shortfh "$T/shortfh.pcap" 0 0 24

# pcap record 31 claims caplen 0x00ffffff (> snaplen, > any frame)
src="$DATA/libtrace-100_packets.pcap"
o=$($TT offsets "$src" | sed -n 31p)
cp "$src" "$T/hugecap.pcap"
$TT poke "$T/hugecap.pcap" $((o + 8)) ffffff00
bad hugecap "$T/hugecap.pcap" 30 "$o" $((o + 16)) "$src"

# pcapng: the EPB of packet 41 has a total length of 7 (< 12, not /4)
src="$DATA/libtrace-100_packets.pcapng"
o=$($TT offsets "$src" | sed -n 41p)
cp "$src" "$T/blen7.pcapng"
$TT poke "$T/blen7.pcapng" $((o + 4)) 07000000
bad blen7 "$T/blen7.pcapng" 40 "$o" $((o + 8)) "$src"

# pcapng: the EPB of packet 41 claims 256 MB, past the end of the file
cp "$src" "$T/blenbig.pcapng"
$TT poke "$T/blenbig.pcapng" $((o + 4)) 00000010
bad blenbig "$T/blenbig.pcapng" 40 "$o" "$(size "$src")" "$src"

# pcapng: the trailing length of packet 41's EPB disagrees with the leading
cp "$src" "$T/trail.pcapng"
o2=$($TT offsets "$src" | sed -n 42p)
$TT poke "$T/trail.pcapng" $((o2 - 4)) fc000000
bad trail "$T/trail.pcapng" 40 "$o" "$o2" "$src"

# pcapng cut in the middle of packet 71's EPB
o=$($TT offsets "$src" | sed -n 71p)
head -c $((o + 30)) "$src" >"$T/cut.pcapng"
bad cutng "$T/cut.pcapng" 70 "$o" $((o + 30)) "$src"

# ERF cut in the middle of record 31
src="$DATA/libtrace-100_packets.erf"
o=$($TT offsets "$src" | sed -n 31p)
head -c $((o + 20)) "$src" >"$T/cut.erf"
bad cuterf "$T/cut.erf" 30 "$o" $((o + 20)) "$src"

# ERF record 51 with rlen 8 (shorter than its own 16-byte header)
o=$($TT offsets "$src" | sed -n 51p)
cp "$src" "$T/rlen.erf"
$TT poke "$T/rlen.erf" $((o + 10)) 0008
bad rlenerf "$T/rlen.erf" 50 "$o" $((o + 16)) "$src"

# not a capture at all
: >"$T/empty.pcap"
bad empty "$T/empty.pcap" 0 -1 0
printf 'this is a text file, not a packet trace\n%.0s' 1 2 3 4 5 >"$T/text.pcap"
bad text "$T/text.pcap" 0 -1 0

# a missing file is a runtime failure as well
weir missing -q -r "$T/no-such-file.pcap" -w "$T/missing.out.pcap"
is "$WRC" 1 "missing input: exit status 1"
if grep -q 'no-such-file.pcap' "$WERR"; then
	pass "missing input: stderr names the file"
else
	fail "missing input: stderr names the file" "$(head -c 600 "$WERR")"
fi

# a good input merged with a truncated one still fails, after writing
# at least the packets of the good one that come first
weir mergebad -q -r "$DATA/libtrace-100_packets.pcap" -r "$T/cutbody.pcap" \
    -w "$T/mergebad.pcap"
is "$WRC" 1 "good + truncated input: exit status 1"
why=$(tshark_clean "$T/mergebad.pcap")
if [ -z "$why" ] && [ "$(npkts "$T/mergebad.pcap")" -ge 500 ]; then
	pass "good + truncated input: output readable, >= 500 packets"
else
	fail "good + truncated input: output readable, >= 500 packets" \
	    "$(npkts "$T/mergebad.pcap") packets; $why"
fi

done_testing
