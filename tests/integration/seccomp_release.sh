#!/bin/bash
# seccomp_release.sh - the optimised build under its own seccomp filter.
#
# The test suite runs the sanitizer build, whose seccomp allowlist has
# extra calls the sanitizers need (src/lib/priv/priv.c), so a call the
# packet path makes but the release allowlist forgets would pass every
# other test and kill the program in production (SIGSYS, exit 159).  This
# test runs the release binaries (build/, which `make check` builds too)
# with `--seccomp kill` through every stage and output, the threads
# (read-ahead, flowpcap writers, metadata hasher), the exporters (IPFIX
# over UDP and TCP), and weir-tap with tenants, and checks each exits 0
# and did its work.  Skips when the release build is missing.
. tests/integration/common.bash

T=$WEIR_TMP
REL="$PWD/build/weir-capture"
RTAP="$PWD/build/weir-tap"
if [ ! -x "$REL" ] || [ ! -x "$RTAP" ]; then
	echo "1..0 # SKIP no release build in build/ (make all)"
	exit 0
fi
IN="$DATA/ndpi-1kxun.pcap"
N=$(npkts "$IN")
# a trace of more than 4 MiB, so the read-ahead thread runs
python3 "$GENTRACE" --quiet --packets 20000 --seed 3 --out "$T/big.pcap"
NB=$(npkts "$T/big.pcap")
head -c 64 /dev/urandom >"$T/key.hex.tmp"
od -An -tx1 -v "$T/key.hex.tmp" | tr -d ' \n' | head -c 64 >"$T/key.hex"

# rel NAME ARGS...: run the release weir-capture with --seccomp kill
rel()
{
	local name=$1
	shift
	"$REL" --seccomp kill "$@" >"$T/$name.out" 2>"$T/$name.err"
	RRC=$?
	if [ "$RRC" -eq 0 ]; then
		pass "$name: exit 0 under --seccomp kill"
	else
		fail "$name: exit 0 under --seccomp kill" "exit $RRC$([ "$RRC" -eq 159 ] && echo ' (SIGSYS: a system call missing from the allowlist)')" "$(head -c 600 "$T/$name.err")"
	fi
}

cat >"$T/all.json" <<EOF
{"name": "all", "inputs": [{"path": "$T/big.pcap"}],
 "stages": [{"type": "filter", "expr": "ip or ip6"},
  {"type": "direction", "inbound": "src net 10.0.0.0/8", "outbound": "dst net 10.0.0.0/8"},
  {"type": "checksum", "action": "count"},
  {"type": "sample", "mode": "count", "n": 1, "offset": 0},
  {"type": "anonymize", "method": "cryptopan", "key_file": "$T/key.hex", "addresses": "both", "checksums": "update"},
  {"type": "truncate", "snaplen": 128}],
 "outputs": [
  {"type": "pcap", "path": "$T/all-%s.pcap", "rotate": {"packets": 5000}, "metadata": true, "compress": "zstd"},
  {"type": "pcapng", "path": "$T/all.pcapng", "metadata": true},
  {"type": "counters", "path": "$T/all.csv", "format": "csv", "interval": 1},
  {"type": "ipfix", "transport": "file", "path": "$T/all.ipfix"},
  {"type": "flowpcap", "dir": "$T/flows", "mode": "buffered"},
  {"type": "sessions", "path": "$T/sess.jsonl", "interval": 1,
   "sessions": [{"name": "tcp", "expr": "tcp"}, {"name": "udp", "expr": "udp"}]}]}
EOF
rel all --config "$T/all.json" --summary "$T/all.sum"
is "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["read"])' "$T/all.sum" 2>/dev/null)" "$NB" "all stages and outputs: every packet read"
ls "$T"/all-*.pcap.zst >/dev/null 2>&1 && pass "rotated, compressed pcap files written" || fail "rotated pcap files written" "$(ls "$T")"
[ -n "$(find "$T/flows" -name '*.pcap' | head -n 1)" ] && pass "per-flow files written by the writer threads" || fail "per-flow files written" "$(cat "$T/all.err")"

cat >"$T/stream.json" <<EOF
{"name": "stream", "inputs": [{"path": "$IN"}],
 "outputs": [{"type": "flowpcap", "dir": "$T/flows2", "mode": "stream", "protocols": ["tcp", "udp", "icmp"]}]}
EOF
rel flowpcap-stream --config "$T/stream.json"

# IPFIX to collectors over UDP and TCP on loopback
UPORT=$((20000 + $$ % 20000))
python3 - "$UPORT" >"$T/udp.count" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
n = 0
try:
    while True:
        s.recv(65535)
        n += 1
except socket.timeout:
    pass
print(n)
EOF
UPID=$!
sleep 0.5
cat >"$T/udp.json" <<EOF
{"name": "udp", "inputs": [{"path": "$IN"}],
 "outputs": [{"type": "ipfix", "transport": "udp", "collector": "127.0.0.1:$UPORT"}]}
EOF
rel ipfix-udp --config "$T/udp.json"
wait "$UPID"
[ "$(cat "$T/udp.count")" -gt 0 ] && pass "IPFIX messages reached the UDP collector ($(cat "$T/udp.count"))" || fail "IPFIX over UDP arrived" "$(cat "$T/ipfix-udp.err")"
TPORT=$((UPORT + 1))
python3 - "$TPORT" >"$T/tcp.count" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
s.settimeout(10)
n = 0
try:
    c, _ = s.accept()
    c.settimeout(5)
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
except socket.timeout:
    pass
print(n)
EOF
TPID=$!
sleep 0.5
cat >"$T/tcp.json" <<EOF
{"name": "tcp", "inputs": [{"path": "$IN"}],
 "outputs": [{"type": "ipfix", "transport": "tcp", "collector": "127.0.0.1:$TPORT"}]}
EOF
rel ipfix-tcp --config "$T/tcp.json"
wait "$TPID"
[ "$(cat "$T/tcp.count")" -gt 0 ] && pass "IPFIX bytes reached the TCP collector ($(cat "$T/tcp.count"))" || fail "IPFIX over TCP arrived" "$(cat "$T/ipfix-tcp.err")"

# weir-tap and its tenants, each under the filter
mkdir -p "$T/tap"
for f in tcp udp; do
	cat >"$T/tap-$f.json" <<EOF
{"name": "$f", "stages": [{"type": "filter", "expr": "$f"}],
 "outputs": [{"type": "pcap", "path": "$T/tap/$f.pcap", "metadata": true},
  {"type": "flowpcap", "dir": "$T/tap/flows-$f"}]}
EOF
done
"$RTAP" --seccomp kill -q -r "$IN" --summary "$T/tap.sum" "$T/tap-tcp.json" "$T/tap-udp.json" >"$T/tap.out" 2>"$T/tap.err"
TRC=$?
is "$TRC" 0 "weir-tap and its tenants: exit 0 under --seccomp kill ($(head -c 300 "$T/tap.err"))"
is "$(npkts "$T/tap/tcp.pcap")" "$(tcpdump -r "$IN" tcp 2>/dev/null | wc -l)" "the tcp tenant wrote every tcp packet"

# --workers: threads with their own rings and outputs, started after the
# drop, under the filter (needs root and namespaces: skipped otherwise)
if [ "$(id -u)" -eq 0 ] && command -v tcpreplay >/dev/null 2>&1 &&
    ip netns list >/dev/null 2>&1; then
	. tests/integration/netns.bash
	if netns_setup "sr$$" && veth_add "sr$$a"; then
		cat >"$T/wk.json" <<EOF
{"name": "wk", "inputs": [{"interface": "sr$$a-c"}], "workers": 2,
 "stages": [{"type": "anonymize", "method": "cryptopan", "key_file": "$T/key.hex", "addresses": "both", "checksums": "update"}],
 "outputs": [{"type": "pcap", "path": "$T/wk.pcap", "metadata": true},
  {"type": "ipfix", "transport": "file", "path": "$T/wk.ipfix"},
  {"type": "flowpcap", "dir": "$T/wkflows"}]}
EOF
		ip netns exec "$NETNS_C" "$REL" --seccomp kill -v --config "$T/wk.json" \
		    --summary "$T/wk.sum" >"$T/wk.out" 2>"$T/wk.err" &
		WP=$!
		NETNS_PIDS+=("$WP")
		for i in $(seq 100); do
			grep -q "privileges dropped" "$T/wk.err" && break
			sleep 0.05
		done
		in_s tcpreplay --pps 20000 -i "sr$$a-s" "$DATA/ndpi-nintendo.pcap" >/dev/null 2>&1
		sleep 0.3
		kill -TERM "$WP"
		wait "$WP"
		RRC=$?
		is "$RRC" 0 "--workers 2 (anonymize, pcap, ipfix, flowpcap): exit 0 under --seccomp kill$([ "$RRC" -eq 159 ] && echo ' (SIGSYS)')$(grep -i error "$T/wk.err" | head -c 300)"
		is "$(( $(npkts "$T/wk.w0.pcap") + $(npkts "$T/wk.w1.pcap") ))" \
		    "$(npkts "$DATA/ndpi-nintendo.pcap")" "--workers 2: the workers' files hold every packet replayed"
	else
		fail "--workers under seccomp: namespaces and a veth pair"
	fi
else
	pass "# SKIP --workers under seccomp: needs root, ip netns and tcpreplay"
fi

done_testing
