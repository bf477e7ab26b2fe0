#!/bin/bash
# rotation.sh - file rotation by time (UTC aligned), size and packet count,
# the cap on kept files, and the metadata beside every file.
#
# Traces from tools/gentrace.py start just before an hour boundary so the
# periods cross it.  For every set of files: each file's first and last
# packet (capinfos) lie in one aligned period, the files follow each other
# in time with one file per period that has packets, together they hold
# exactly the input's packets in order (tshark listing), and each file has
# NAME.meta.json (packets, first/last time and sha256 as capinfos and
# sha256sum see the file) and a well-formed NAME.meta.xml.
. tests/integration/common.bash

T=$WEIR_TMP
START=1704088798	# 2024-01-01 05:59:58 UTC
A="$T/a.pcap"		# 5000 packets at 1000 pps: 05:59:58 .. 06:00:03
B="$T/b.pcap"		# 3000 packets at 0.5 pps: 05:59:58 .. 07:39:56
python3 "$GENTRACE" --quiet --packets 5000 --rate-pps 1000 \
    --start-time "$START" --out "$A"
python3 "$GENTRACE" --quiet --packets 3000 --rate-pps 0.5 --seed 3 \
    --start-time "$START" --out "$B"

# files DIR: the trace files of DIR (not sidecars, not hidden), in the
# order of their first packet
files()
{
	local f
	for f in "$1"/*; do
		case $f in
		*.meta.json | *.meta.xml) continue ;;
		esac
		[ -f "$f" ] || continue
		echo "$(capinfos -T -r -a -S "$f" 2>/dev/null | cut -f2) $f"
	done | sort -n | cut -d' ' -f2-
}

# listing FILE...: one line per packet (time, lengths, addresses, ports)
# of the files one after the other (mergecap -a concatenates)
listing()
{
	local cat="$T/listing.$$.pcapng"
	rm -f "$cat"
	mergecap -a -F pcapng -w "$cat" "$@" 2>/dev/null
	tsh "$cat" -T fields -e frame.time_epoch -e frame.len \
	    -e frame.cap_len -e ip.src -e ipv6.src -e tcp.srcport -e udp.srcport
}

# common_checks NAME DIR INPUT: packets conserved in order, metadata right
common_checks()
{
	local name=$1 dir=$2 in=$3 fl res
	fl=$(files "$dir")
	# shellcheck disable=SC2086
	listing $fl >"$dir.got"
	listing "$in" >"$dir.want"
	same_file "$dir.got" "$dir.want" \
	    "$name: the $(echo "$fl" | wc -w) files hold the input's $(wc -l <"$dir.want") packets, in order"
	# shellcheck disable=SC2086
	res=$(metacheck $fl)
	is "$res" "ok" "$name: every file has .meta.json (packets, times, sha256 right) and well-formed .meta.xml"
	res=$(find "$dir" -name '.*' -type f | head -n 3)
	is "$res" "" "$name: no hidden (unfinished) file left"
}

# metacheck FILE...: each FILE.meta.json agrees with capinfos/sha256sum
metacheck()
{
	local f
	for f in "$@"; do
		echo "$f	$(npkts "$f")	$(sha256sum "$f" | cut -d' ' -f1)	$(capinfos -T -r -a -e -S "$f" 2>/dev/null | cut -f2,3)"
	done | python3 -c '
import json, sys, xml.etree.ElementTree as ET
bad = []
def ns(t):
    s, _, f = t.partition(".")
    return int(s) * 10**9 + int((f + "000000000")[:9])
for line in sys.stdin:
    f, n, sha, first, last = line.rstrip("\n").split("\t")
    try:
        m = json.load(open(f + ".meta.json"))
    except Exception as e:
        bad.append("%s.meta.json: %s" % (f, e)); continue
    if m.get("packets") != int(n):
        bad.append("%s: meta packets %s, capinfos %s" % (f, m.get("packets"), n))
    if m.get("sha256") != sha:
        bad.append("%s: meta sha256 %s, sha256sum %s" % (f, m.get("sha256"), sha))
    if int(n) and (m.get("first_ts_ns") != ns(first) or m.get("last_ts_ns") != ns(last)):
        bad.append("%s: meta times %s..%s, capinfos %s..%s" % (f,
            m.get("first_ts_ns"), m.get("last_ts_ns"), first, last))
    try:
        ET.parse(f + ".meta.xml")
    except Exception as e:
        bad.append("%s.meta.xml: %s" % (f, e))
print("\n".join(bad[:8]) if bad else "ok")'
}

# aligned NAME DIR INPUT PERIOD: every file inside one PERIOD-aligned
# period, one file per period that has packets, periods increasing
aligned()
{
	local name=$1 dir=$2 in=$3 p=$4 fl f res want
	fl=$(files "$dir")
	res=$(for f in $fl; do
		capinfos -T -r -a -e -S "$f" 2>/dev/null | cut -f2,3
	done | awk -F'\t' -v p="$p" '
	{
		split($1, a, "."); split($2, b, ".")
		i = int(a[1] / p); j = int(b[1] / p)
		if (i != j) { bad = bad " file " NR " spans " $1 ".." $2 }
		if (NR > 1 && i <= prev) { bad = bad " file " NR " not after file " NR - 1 }
		prev = j
	}
	END { print NR " " (bad == "" ? "ok" : bad) }')
	want=$(tsh "$in" -T fields -e frame.time_epoch |
	    awk -v p="$p" '{ split($1, a, "."); print int(a[1] / p) }' |
	    sort -u | wc -l)
	is "$res" "$want ok" "$name: $want files, each inside one ${p}s period aligned to UTC, in time order"
}

# --- -G 1: one file per second, across the 06:00:00 boundary ---
mkdir -p "$T/g1"
if weir_ok g1 -q --meta -G 1 -r "$A" -w "$T/g1/a.pcap"; then
	aligned "-G 1" "$T/g1" "$A" 1
	common_checks "-G 1" "$T/g1" "$A"
	# the boundary itself: the file starting at 06:00:00 holds no earlier
	# packet and the one before it none later
	res=$(for f in $(files "$T/g1"); do
		capinfos -T -r -a -e -S "$f" 2>/dev/null | cut -f2,3
	done | awk -F'\t' '$2 < 1704088800 && $1 >= 1704088799 { l = $2 }
	    $1 >= 1704088800 && $1 < 1704088801 { f = $1 }
	    END { print (l < 1704088800 && f >= 1704088800) ? "ok" : l " " f }')
	is "$res" ok "-G 1: last packet before 06:00:00 < boundary <= first packet after"
fi

# --- period hour, 4 per period (15 min), from a config document ---
mkdir -p "$T/q"
cat >"$T/q.json" <<EOF
{"inputs": [{"path": "$B"}],
 "outputs": [{"type": "pcap", "path": "$T/q/b.pcap",
	      "rotate": {"period": "hour", "per_period": 4}}]}
EOF
if weir_ok q -q --config "$T/q.json"; then
	aligned "period hour/4" "$T/q" "$B" 900
	common_checks "period hour/4" "$T/q" "$B"
fi

# --- -G 600 on the same trace ---
mkdir -p "$T/g600"
if weir_ok g600 -q --meta -G 600 -r "$B" -w "$T/g600/b.pcap"; then
	aligned "-G 600" "$T/g600" "$B" 600
	common_checks "-G 600" "$T/g600" "$B"
fi

# --- period day, 24 per period (hourly) ---
mkdir -p "$T/d24"
cat >"$T/d24.json" <<EOF
{"inputs": [{"path": "$B"}],
 "outputs": [{"type": "pcapng", "path": "$T/d24/b.pcapng",
	      "rotate": {"period": "day", "per_period": 24}}]}
EOF
if weir_ok d24 -q --config "$T/d24.json"; then
	aligned "period day/24 (pcapng)" "$T/d24" "$B" 3600
	common_checks "period day/24 (pcapng)" "$T/d24" "$B"
fi

# --- packet count: 5000 packets, 1200 a file: 4 x 1200 + 200 ---
mkdir -p "$T/pk"
cat >"$T/pk.json" <<EOF
{"inputs": [{"path": "$A"}],
 "outputs": [{"type": "pcap", "path": "$T/pk/a.pcap",
	      "rotate": {"packets": 1200}}]}
EOF
if weir_ok pk -q --config "$T/pk.json"; then
	res=$(for f in $(files "$T/pk"); do npkts "$f"; done | tr '\n' ' ')
	is "$res" "1200 1200 1200 1200 200 " "rotate packets 1200: files of 1200 1200 1200 1200 200"
	common_checks "rotate packets" "$T/pk" "$A"
fi

# --- size: -C 1 (10^6 bytes): no file over 1 MB, none much smaller but
# the last (a file closes when the next packet would not fit) ---
mkdir -p "$T/sz"
if weir_ok sz -q --meta -C 1 -r "$A" -w "$T/sz/a.pcap"; then
	maxpkt=$(tsh "$A" -T fields -e frame.cap_len | sort -n | tail -n 1)
	res=$(for f in $(files "$T/sz"); do wc -c <"$f"; done |
	    awk -v m=$((maxpkt + 16)) '
	    { n++; s[n] = $1 }
	    END {
		for (i = 1; i <= n; i++) {
			if (s[i] > 1000000) bad = bad " file " i " has " s[i]
			if (i < n && s[i] < 1000000 - m) bad = bad " file " i " only " s[i]
		}
		print n " " (bad == "" ? "ok" : bad)
	    }')
	want=$(( ($(wc -c <"$A") + 999999) / 1000000 ))
	case $res in
	*" ok") pass "-C 1: $res: every file <= 10^6 bytes, all but the last within one packet of it" ;;
	*) fail "-C 1: files <= 10^6 bytes, full but the last" "$res" ;;
	esac
	[ "${res%% *}" -ge "$want" ] && pass "-C 1: at least $want files for $(wc -c <"$A") bytes" ||
		fail "-C 1: at least $want files" "$res"
	common_checks "-C 1" "$T/sz" "$A"
fi

# --- max_files: -G 1 -W 3 keeps the newest three files and their sidecars ---
mkdir -p "$T/w3"
if weir_ok w3 -q --meta -G 1 -W 3 -r "$A" -w "$T/w3/a.pcap"; then
	fl=$(files "$T/w3")
	is "$(echo "$fl" | wc -w)" 3 "-G 1 -W 3: three files kept"
	# the newest three seconds of the input
	last3=$(tsh "$A" -T fields -e frame.time_epoch | cut -d. -f1 | sort -u |
	    tail -n 3 | tr '\n' ' ')
	got3=$(for f in $fl; do
		capinfos -T -r -a -S "$f" 2>/dev/null | cut -f2 | cut -d. -f1
	done | tr '\n' ' ')
	is "$got3" "$last3" "-G 1 -W 3: they are the newest three seconds"
	nside=$(find "$T/w3" -name '*.meta.*' | wc -l)
	is "$nside" 6 "-G 1 -W 3: only their six sidecars remain"
	# shellcheck disable=SC2086
	is "$(metacheck $fl)" ok "-G 1 -W 3: their metadata is right"
fi

# --- every file we wrote is readable by tshark ---
bad=""
for d in g1 q g600 d24 pk sz w3; do
	for f in $(files "$T/$d"); do
		tshark_clean "$f" >/dev/null || bad="$bad $f"
	done
done
is "$bad" "" "tshark reads every rotated file"

done_testing
