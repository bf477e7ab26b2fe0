#!/bin/bash
# sessions.sh - the sessions output counts, per interval and in total,
# exactly the packets `tcpdump -r IN FILTER` selects and the bytes tshark
# gives for them (frame.len of `tcpdump -w`'s output), for many
# expressions at once over real traces of several link types; 256
# sessions at once against tshark's ports; and sessions added, changed and
# removed between intervals (a file of timed commands, and a FIFO) while
# the others keep exactly the counts of a run without commands.
. tests/integration/common.bash

T=$WEIR_TMP
CHECK="$T/check.py"
cat >"$CHECK" <<'EOF'
import json, sys

def ns(s):
    # "1627225020.686470000" -> integer ns, no float rounding
    a, _, b = s.partition(".")
    return int(a) * 10**9 + int((b + "000000000")[:9])

def expected(dump, iv, lo, hi):
    # dump: "epoch len" lines (tshark); non-zero intervals in [lo, hi)
    r = {}
    for l in open(dump):
        f = l.split()
        if not f:
            continue
        t, n = ns(f[0]), int(f[1])
        k = t - t % iv
        if lo <= k < hi:
            p, b = r.get(k, (0, 0))
            r[k] = (p + 1, b + n)
    return r

def got(path, name, lo, hi):
    r = {}
    if path.endswith(".csv"):
        lines = open(path).read().splitlines()
        head = lines[0].split(",")
        rows = [dict(zip(head, l.split(","))) for l in lines[1:]]
    else:
        rows = [json.loads(l) for l in open(path)]
    for x in rows:
        if x["session"] != name:
            continue
        k, p, b = int(x["start_ns"]), int(x["packets"]), int(x["bytes"])
        if p and lo <= k < hi:
            r[k] = (p, b)
    return r

def cmp(a, b):
    if a == b:
        return "same %d intervals, %d packets, %d bytes" % (len(a),
            sum(v[0] for v in a.values()), sum(v[1] for v in a.values()))
    d = sorted(set(a) | set(b))
    bad = [k for k in d if a.get(k) != b.get(k)]
    return "DIFF at %d of %d intervals, first %d: weir %s, expected %s" % (
        len(bad), len(d), bad[0], a.get(bad[0]), b.get(bad[0]))

cmd = sys.argv[1]
if cmd == "one":
    # one OUT SESSION DUMP IV_NS [LO HI]
    out, name, dump, iv = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    lo = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    hi = int(sys.argv[7]) if len(sys.argv) > 7 else 1 << 64
    print(cmp(got(out, name, lo, hi), expected(dump, iv, lo, hi)))
elif cmd == "ports":
    # ports OUT DUMP IV_NS PORT0 N: session pN = "tcp port N"; dump has
    # "epoch len sport dport"
    out, dump, iv, p0, n = sys.argv[2], sys.argv[3], int(sys.argv[4]), \
        int(sys.argv[5]), int(sys.argv[6])
    rows = [l.split() for l in open(dump) if l.strip()]
    bad = 0
    for port in range(p0, p0 + n):
        e = {}
        for f in rows:
            if len(f) >= 4 and str(port) in (f[2], f[3]):
                t = ns(f[0])
                k = t - t % iv
                p, b = e.get(k, (0, 0))
                e[k] = (p + 1, b + int(f[1]))
        if got(out, "p%d" % port, 0, 1 << 64) != e:
            bad += 1
            if bad == 1:
                print("port %d: %s" % (port, cmp(got(out, "p%d" % port, 0, 1 << 64), e)))
    print("%d of %d sessions differ" % (bad, n))
elif cmd == "same":
    # same OUT1 OUT2 SESSION: identical lines for one session
    a = [l for l in open(sys.argv[2]) if '"session":"%s"' % sys.argv[4] in l]
    b = [l for l in open(sys.argv[3]) if '"session":"%s"' % sys.argv[4] in l]
    print("same %d lines" % len(a) if a == b and a else "DIFF %d vs %d lines" % (len(a), len(b)))
elif cmd == "span":
    # span OUT SESSION: first and last interval start of a session's lines
    s = [json.loads(l) for l in open(sys.argv[2])]
    s = [int(x["start_ns"]) for x in s if x["session"] == sys.argv[3]]
    print("%d %d %d" % (min(s), max(s), len(s)) if s else "none")
elif cmd == "stat":
    # stat SUMMARY COUNTER: the sessions output's counter
    d = json.load(open(sys.argv[2]))
    def walk(o):
        if isinstance(o, dict):
            if o.get("type") == "sessions":
                return o
            for v in o.values():
                r = walk(v)
                if r is not None:
                    return r
        if isinstance(o, list):
            for v in o:
                r = walk(v)
                if r is not None:
                    return r
        return None
    print(walk(d).get(sys.argv[3]))
EOF

# dump TRACE "FILTER" OUT: "epoch len" of the packets tcpdump selects
dump()
{
	words "$2"
	tcpdump -r "$DATA/$1" -w "$3.pcap" "${WORDS[@]}" 2>/dev/null
	tsh "$3.pcap" -T fields -e frame.time_epoch -e frame.len >"$3"
}

# sessions_conf OUT FORMAT IV TRACE "name=expr"...: an experiment document
N=0
conf()
{
	local out=$1 fmt=$2 iv=$3 trace=$4 s first=1
	shift 4
	{
		echo "{\"name\": \"sess\", \"inputs\": [{\"path\": \"$DATA/$trace\"}],"
		echo " \"outputs\": [{\"type\": \"sessions\", \"path\": \"$out\","
		echo "  \"format\": \"$fmt\", \"interval\": $iv, \"sessions\": ["
		for s in "$@"; do
			[ $first = 1 ] || echo ","
			first=0
			printf '{"name": "%s", "expr": "%s"}' "${s%%=*}" "${s#*=}"
		done
		echo "]}]}"
	}
}

# check TRACE FORMAT IV "name=expr"...: one run, every session compared
check()
{
	local trace=$1 fmt=$2 iv=$3 s name expr ivns
	shift 3
	N=$((N + 1))
	ivns=$(python3 -c "print(round($iv * 10**9))")
	conf "$T/s$N.$fmt" "$fmt" "$iv" "$trace" "$@" >"$T/s$N.json"
	weir_ok "s$N" -q --config "$T/s$N.json" || return
	for s in "$@"; do
		name=${s%%=*}
		expr=${s#*=}
		dump "$trace" "$expr" "$T/s$N.$name.dump"
		r=$(python3 "$CHECK" one "$T/s$N.$fmt" "$name" "$T/s$N.$name.dump" "$ivns")
		case "$r" in
		same*)	pass "$trace '$expr' ($fmt, ${iv}s): $r" ;;
		*)	fail "$trace '$expr' ($fmt, ${iv}s)" "$r" ;;
		esac
	done
}

check ndpi-1kxun.pcap json 1 "web=tcp port 80" "dns=udp port 53" \
    "h=host 192.168.2.126" "n=net 106.187.0.0/16" "v6=ip6" \
    "big=greater 1000" "syn=tcp[13] & 2 != 0" "pr=portrange 1000-2000" \
    "all=" "none=icmp"
check ndpi-1kxun.pcap csv 0.25 "web=tcp port 80" "h=host 192.168.115.8"
check libtrace-vlan.pcap json 1 "vlan=vlan" "v10=vlan 10" \
    "vh=vlan and host 131.151.32.21" "nip=not ip" "x11=vlan and tcp port 6000"
check ndpi-KakaoTalk_talk-sll.pcap csv 1 "h=host 10.24.82.188" "udp=udp" \
    "p=port 23044" "small=less 100"
check ndpi-reddit-ipv6.pcap json 1 "tls=tcp port 443" "u6=ip6 and udp" \
    "g=host 2a00:1450:4007:805::2002" "n6=net 2a01:cb01::/32"
check ndpi-dns_fragmented.pcap json 1 "frag=ip[6:2] & 0x1fff != 0" \
    "dns=udp port 53" "v6=ip6" "mf=ip[6] & 0x20 != 0"
check zeek-echo-connections.pcap json 0.5 "echo=tcp port 7000" \
    "fin=tcp[tcpflags] & tcp-fin != 0" "lo=host 127.0.0.1"

# 256 sessions at once, each "tcp port N", against tshark's ports
P0=37900
{
	echo "{\"name\": \"many\", \"inputs\": [{\"path\": \"$DATA/zeek-echo-connections.pcap\"}],"
	echo " \"outputs\": [{\"type\": \"sessions\", \"path\": \"$T/many.jsonl\", \"sessions\": ["
	for i in $(seq 0 255); do
		[ "$i" = 0 ] || echo ","
		printf '{"name": "p%d", "expr": "tcp port %d"}' $((P0 + i)) $((P0 + i))
	done
	echo "]}]}"
} >"$T/many.json"
if weir_ok many -q --config "$T/many.json" --summary "$T/many.sum"; then
	tsh "$DATA/zeek-echo-connections.pcap" -T fields -e frame.time_epoch \
	    -e frame.len -e tcp.srcport -e tcp.dstport >"$T/many.dump"
	r=$(python3 "$CHECK" ports "$T/many.jsonl" "$T/many.dump" 1000000000 $P0 256)
	is "$r" "0 of 256 sessions differ" "256 sessions 'tcp port N' match tshark per interval"
	is "$(python3 "$CHECK" stat "$T/many.sum" cached_sessions)" 256 \
	    "256 sessions: all cached"
	h=$(python3 "$CHECK" stat "$T/many.sum" cache_hits)
	m=$(python3 "$CHECK" stat "$T/many.sum" cache_misses)
	if [ "${h:-0}" -gt $((9 * ${m:-1})) ]; then
		pass "256 sessions: hit rate above 90 % ($h hits, $m misses)"
	else
		fail "256 sessions: hit rate above 90 %" "$h hits, $m misses"
	fi
fi

# Changes between intervals.  zeek-echo-connections runs from
# 14:57:00.69 to 14:57:07.18 (2021-07-25), 1 s intervals from T0.
T0=1627225020
B=1000000000
TR=zeek-echo-connections.pcap
base_conf()
{
	# base_conf OUT CONTROL REPLY
	cat <<EOF
{"name": "ctl", "inputs": [{"path": "$DATA/$TR"}],
 "outputs": [{"type": "sessions", "path": "$1", "interval": 1,
   "control": "$2", "reply": "$3",
   "sessions": [{"name": "all", "expr": "tcp port 7000"},
		{"name": "syn", "expr": "tcp[tcpflags] & tcp-syn != 0"},
		{"name": "other", "expr": "host 127.0.0.1 and tcp[tcpflags] & tcp-ack != 0"}]}]}
EOF
}
cat >"$T/ctl.cmds" <<EOF
# timed commands: applied at the first interval boundary at or after @T
@$((T0 + 2)) new fin filter tcp[tcpflags] & tcp-fin != 0
@$((T0 + 3)) modify all tcp dst port 7000
@$((T0 + 4)) stop syn
@$((T0 + 4)).5 new fin2 filter tcp[tcpflags] & tcp-fin != 0
@$((T0 + 5)) new all filter tcp
bogus command
@$((T0 + 2)) new bad filter tcp prot 80
@$((T0 + 6)) stop nosuch
EOF
# the same document without commands: the reference for "other"
: >"$T/empty.cmds"
base_conf "$T/ref.jsonl" "$T/empty.cmds" "" >"$T/ref.json"
base_conf "$T/ctl.jsonl" "$T/ctl.cmds" "$T/ctl.reply" >"$T/ctl.json"
weir_ok ctlref -q --config "$T/ref.json"
if weir_ok ctl -q --config "$T/ctl.json" --summary "$T/ctl.sum"; then
	is "$(python3 "$CHECK" same "$T/ctl.jsonl" "$T/ref.jsonl" other)" \
	    "same 8 lines" "an unchanged session keeps every line of a run without commands"
	dump $TR "tcp port 7000" "$T/c.all1"
	dump $TR "tcp dst port 7000" "$T/c.all2"
	dump $TR "tcp[tcpflags] & tcp-syn != 0" "$T/c.syn"
	dump $TR "tcp[tcpflags] & tcp-fin != 0" "$T/c.fin"
	ck()
	{
		local r
		r=$(python3 "$CHECK" one "$T/ctl.jsonl" "$1" "$2" $B "$3" "$4")
		case "$r" in
		same*)	pass "$5: $r" ;;
		*)	fail "$5" "$r" ;;
		esac
	}
	ck all "$T/c.all1" 0 $(((T0 + 3) * B)) "'all' counts 'tcp port 7000' before its modify"
	ck all "$T/c.all2" $(((T0 + 3) * B)) $((1 << 62)) "'all' counts 'tcp dst port 7000' from the boundary"
	ck syn "$T/c.syn" 0 $((1 << 62)) "'syn' counts until it stops"
	ck fin "$T/c.fin" $(((T0 + 2) * B)) $((1 << 62)) "'fin' counts from the boundary it was added at"
	ck fin2 "$T/c.fin" $(((T0 + 5) * B)) $((1 << 62)) "'fin2' (@T0+4.5) counts from T0+5"
	is "$(python3 "$CHECK" span "$T/ctl.jsonl" syn)" \
	    "$((T0 * B)) $(((T0 + 3) * B)) 4" "'syn' writes its last line for the interval ending at its stop"
	is "$(python3 "$CHECK" span "$T/ctl.jsonl" fin)" \
	    "$(((T0 + 2) * B)) $(((T0 + 7) * B)) 6" "'fin' has a line for every interval from T0+2"
	is "$(python3 "$CHECK" span "$T/ctl.jsonl" fin2)" \
	    "$(((T0 + 5) * B)) $(((T0 + 7) * B)) 3" "'fin2' starts at T0+5"
	is "$(python3 "$CHECK" stat "$T/ctl.sum" commands_ok)" 4 "4 commands applied"
	is "$(python3 "$CHECK" stat "$T/ctl.sum" commands_refused)" 4 \
	    "4 refused (unknown, bad BPF, name exists, no such session)"
	is "$(python3 "$CHECK" stat "$T/ctl.sum" sessions)" 4 "4 sessions at the end"
	for w in "refused 'bogus command'" "refused new all: a session of that name exists" \
	    "refused stop nosuch: no such session" "ok modify all tcp dst port 7000" \
	    "refused '@$((T0 + 2)) new bad filter tcp prot 80': syntax error"; do
		if grep -qF "$w" "$T/ctl.reply"; then
			pass "reply file: $w"
		else
			fail "reply file: $w" "$(cat "$T/ctl.reply")"
		fi
	done
fi

# The live FIFO: commands written before the run sit in the pipe; the
# untimed "list" is answered at once, timed commands wait for their time.
mkfifo "$T/ctl.fifo"
exec 3<>"$T/ctl.fifo"
printf '@%d new fin filter tcp[tcpflags] & tcp-fin != 0\nlist\nmodify nosuch tcp\n' \
    $((T0 + 2)) >&3
base_conf "$T/fifo.jsonl" "$T/ctl.fifo" "$T/fifo.reply" >"$T/fifo.json"
if weir_ok fifo -q --config "$T/fifo.json" --summary "$T/fifo.sum"; then
	is "$(python3 "$CHECK" same "$T/fifo.jsonl" "$T/ctl.jsonl" fin)" \
	    "same 6 lines" "FIFO: 'fin' added at T0+2 as from the command file"
	is "$(python3 "$CHECK" same "$T/fifo.jsonl" "$T/ref.jsonl" all)" \
	    "same 8 lines" "FIFO: 'all' untouched"
	if grep -q "^session all filter tcp port 7000 since" "$T/fifo.reply" &&
	    grep -q "refused modify nosuch: no such session" "$T/fifo.reply"; then
		pass "FIFO: list and refusal answered in the reply file"
	else
		fail "FIFO: list and refusal answered in the reply file" "$(cat "$T/fifo.reply")"
	fi
fi
exec 3>&-

# Configuration errors are refused before the run.
conf "$T/bad.jsonl" json 1 ndpi-1kxun.pcap "a=tcp prot 80" >"$T/bad.json"
weir bad1 -q --config "$T/bad.json"
if [ "$WRC" -ne 0 ] && grep -q "bad expression 'tcp prot 80' of session 'a'" "$WERR"; then
	pass "a bad expression in the config is refused"
else
	fail "a bad expression in the config is refused" "exit $WRC: $(cat "$WERR")"
fi
conf "$T/bad.jsonl" json 1 ndpi-1kxun.pcap "a=tcp" "a=udp" >"$T/bad.json"
weir bad2 -q --config "$T/bad.json"
if [ "$WRC" -ne 0 ] && grep -q "session 'a' defined twice" "$WERR"; then
	pass "a duplicate name is refused"
else
	fail "a duplicate name is refused" "exit $WRC: $(cat "$WERR")"
fi

done_testing
