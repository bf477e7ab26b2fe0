#!/bin/bash
# privileges.sh - least privilege of running captures, read from
# /proc/PID/status of the running process (and of every thread):
#   - live capture (-i on a veth in a namespace of our own) started as
#     root with --user nobody: Uid and Gid all nobody's, CapEff, CapPrm,
#     CapInh and CapAmb 0, NoNewPrivs 1, Seccomp 2 (filter), in every
#     thread (--meta starts a hashing thread); the capture still works
#     after the drop: every replayed packet in the file, the kernel's
#     accounting adds up, tshark reads it;
#   - a file capability (setcap cap_net_raw,cap_net_admin+ep on a copy
#     of the binary) lets nobody capture; the same copy without it
#     cannot open the interface;
#   - --seccomp off | log | kill gives Seccomp 0 | 2 | 2, root without
#     --user stays uid 0 with no capability;
#   - weir-tap --user nobody and one of its tenants (weir-capture
#     children) are just as unprivileged.
# A forbidden call killing the process (SIGSYS) is tested in
# tests/unit/test_priv.c (no clean way to make the program make one).
# Skips (TAP) only when not root or without `ip netns`.
. tests/integration/common.bash
. tests/integration/netns.bash

netns_require
T=$WEIR_TMP
TAPBIN="$(dirname "$WEIR")/weir-tap"
TR="$DATA/suricata-tls-subjectaltname.pcap"
RATE=5000
P=wp$$
netns_setup "$P" || { echo "Bail out! cannot create namespaces"; exit 2; }
veth_add "${P}a" || { echo "Bail out! cannot create a veth pair"; exit 2; }
IFS_="${P}a-s"
IFC="${P}a-c"
NUID=$(id -u nobody)
NGID=$(id -g nobody)

# nobody must reach the output directory: rotated files, .part renames,
# metadata and the summary are all created after the drop.
chmod 0711 "$T"
OUT="$T/out"
mkdir -p "$OUT"
chown "$NUID:$NGID" "$OUT"

# procs PID UID GID SECCOMP: "ok" if the process and each of its
# threads have all four uids UID, all four gids GID, no capability in
# any set, no_new_privs and seccomp mode SECCOMP; else what differs
procs()
{
	python3 - "$@" <<'EOF'
import glob, sys
pid, uid, gid, sec = sys.argv[1:5]
want = {"Uid": "\t".join([uid] * 4), "Gid": "\t".join([gid] * 4),
        "CapEff": "0" * 16, "CapPrm": "0" * 16, "CapInh": "0" * 16,
        "CapAmb": "0" * 16, "NoNewPrivs": "1", "Seccomp": sec}
bad = []
tasks = sorted(glob.glob("/proc/%s/task/*/status" % pid))
for f in ["/proc/%s/status" % pid] + tasks:
    try:
        st = dict(l.rstrip("\n").split(":\t", 1) for l in open(f) if ":\t" in l)
    except OSError as e:
        bad.append("%s: %s" % (f, e))
        continue
    for k, v in want.items():
        if st.get(k, "").strip() != v:
            bad.append("%s %s=%r want %r" % (f, k, st.get(k), v))
print("; ".join(bad) if bad else "ok %d" % len(tasks))
EOF
}

# bg_start NAME CMD...: a capture in the background, stderr in $T/NAME.err;
# waits for its "privileges dropped" line (-v)
BPID=
bg_start()
{
	local name=$1 i
	shift
	BERR="$T/$name.err"
	# not holding the FIFO's descriptor 5: it must see the end
	"$@" >"$T/$name.out" 2>"$BERR" 5>&- &
	BPID=$!
	NETNS_PIDS+=("$BPID")
	for i in $(seq 200); do
		grep -q "privileges dropped" "$BERR" 2>/dev/null && return 0
		kill -0 "$BPID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

bg_stop()
{
	kill -TERM "$BPID" 2>/dev/null
	wait "$BPID"
	BRC=$?
	sanitizer_clean "$BERR" "$1" || true
}

replay()
{
	local out
	out=$(in_s tcpreplay --pps "$RATE" -i "$IFS_" "$1" 2>&1)
	SENT=$(printf '%s\n' "$out" | sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p')
	SENT=${SENT:-0}
}

sumcheck()
{
	python3 - "$1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
i = s["inputs"][0]
rhs = (i["kernel_dropped"] + i["packets"] + i["read_ahead"] +
       i["frames_skipped"] + i.get("before_start", 0) + i["ring_unread"])
print("ok" if i["kernel_received"] == rhs and s["read"] == i["packets"]
      else "received %d != %d" % (i["kernel_received"], rhs))
EOF
}

N=$(npkts "$TR")

# --- root -> nobody, live -------------------------------------------
if bg_start live ip netns exec "$NETNS_C" "$WEIR" -v -i "$IFC" --user nobody \
    --meta -w "$OUT/live.pcap" --summary "$OUT/live.sum"; then
	r=$(procs "$BPID" "$NUID" "$NGID" 2)
	case $r in
	ok*) pass "live, --user nobody: uid/gid nobody, no capability, no_new_privs, seccomp filter, in every thread ($r)" ;;
	*) fail "live, --user nobody: uid/gid nobody, no capability, no_new_privs, seccomp filter, in every thread" "$r" ;;
	esac
	replay "$TR"
	sleep 0.3
	bg_stop live
	is "$BRC" 0 "live, --user nobody: exits 0 on SIGTERM"
	is "$SENT" "$N" "tcpreplay sent the whole trace"
	is "$(npkts "$OUT/live.pcap")" "$SENT" "live, --user nobody: every packet sent is in the file"
	is "$(sumcheck "$OUT/live.sum")" ok "live, --user nobody: accounting adds up"
	tshark_reads "$OUT/live.pcap" "live, --user nobody: tshark reads the file"
	is "$(stat -c %u "$OUT/live.pcap")" "$NUID" "the file was created by nobody (after the drop)"
	is "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reason"])' "$OUT/live.pcap.meta.json" 2>&1)" \
	    end "metadata written after the drop"
else
	fail "live capture with --user nobody started" "$(cat "$BERR")"
fi

# --- file capability, started as nobody -----------------------------
if command -v setcap >/dev/null 2>&1; then
	BIN="$T/bin"
	mkdir -p "$BIN"
	chmod 0755 "$BIN"
	cp "$WEIR" "$BIN/weir-capture-fcap"
	cp "$WEIR" "$BIN/weir-capture-plain"
	chmod 0755 "$BIN"/weir-capture-*
	setcap cap_net_raw,cap_net_admin+ep "$BIN/weir-capture-fcap"
	AS_NOBODY=(ip netns exec "$NETNS_C" setpriv --reuid="$NUID"
	    --regid="$NGID" --clear-groups)
	"${AS_NOBODY[@]}" "$BIN/weir-capture-plain" -i "$IFC" -w "$OUT/plain.pcap" \
	    --duration 1 >"$T/plain.out" 2>"$T/plain.err"
	rc=$?
	if [ "$rc" -ne 0 ] && grep -q -i "not permitted" "$T/plain.err"; then
		pass "nobody without the file capability cannot open the interface"
	else
		fail "nobody without the file capability cannot open the interface" \
		    "exit $rc" "$(cat "$T/plain.err")"
	fi
	if bg_start fcap "${AS_NOBODY[@]}" "$BIN/weir-capture-fcap" -v -i "$IFC" \
	    -w "$OUT/fcap.pcap" --summary "$OUT/fcap.sum"; then
		r=$(procs "$BPID" "$NUID" "$NGID" 2)
		case $r in
		ok*) pass "file capability, run as nobody: no capability left after opening, no_new_privs, seccomp filter ($r)" ;;
		*) fail "file capability, run as nobody: no capability left after opening" "$r" ;;
		esac
		replay "$TR"
		sleep 0.3
		bg_stop fcap
		is "$BRC" 0 "file capability: exits 0 on SIGTERM"
		is "$(npkts "$OUT/fcap.pcap")" "$SENT" "file capability: every packet sent is in the file"
		is "$(sumcheck "$OUT/fcap.sum")" ok "file capability: accounting adds up"
	else
		fail "nobody with the file capability captures" "$(cat "$BERR")"
	fi
	# the same with threads started while the capabilities are held
	# (flowpcap writers, the metadata hasher): each starts by emptying
	# its own sets (weir_thread_start), as capset acts on one thread
	cat >"$T/threads.json" <<EOF2
{"name": "fcap-threads",
 "outputs": [{"type": "pcap", "path": "$OUT/fcapt.pcap", "metadata": true},
	     {"type": "flowpcap", "dir": "$OUT/fcapt-flows", "protocols": ["tcp", "udp"]}]}
EOF2
	if bg_start fcapt "${AS_NOBODY[@]}" "$BIN/weir-capture-fcap" -v \
	    --config "$T/threads.json" -i "$IFC" --summary "$OUT/fcapt.sum"; then
		r=$(procs "$BPID" "$NUID" "$NGID" 2)
		case $r in
		ok\ 1) fail "file capability with threads: threads were started" "$r" ;;
		ok*) pass "file capability, run as nobody, with writer threads: no capability in any thread ($r)" ;;
		*) fail "file capability, run as nobody, with writer threads: no capability in any thread" "$r" ;;
		esac
		replay "$TR"
		sleep 0.3
		bg_stop fcapt
		is "$BRC" 0 "file capability with threads: exits 0 on SIGTERM"
		is "$(npkts "$OUT/fcapt.pcap")" "$SENT" "file capability with threads: every packet sent is in the file"
	else
		fail "nobody with the file capability and threads captures" "$(cat "$BERR")"
	fi
else
	fail "setcap is installed (libcap2-bin, scripts/install-deps.sh)"
fi

# --- --seccomp modes, root without --user (a FIFO keeps it running) --
for m in off log kill; do
	rm -f "$T/fifo"
	mkfifo "$T/fifo"
	exec 5<>"$T/fifo"
	cat "$TR" >&5 &
	want=2
	[ "$m" = off ] && want=0
	if bg_start "sc.$m" "$WEIR" -v -r "$T/fifo" -w "$T/sc.$m.pcap" --seccomp "$m"; then
		r=$(procs "$BPID" 0 0 "$want")
		case $r in
		ok*) pass "--seccomp $m, root without --user: uid 0, no capability, no_new_privs, Seccomp $want" ;;
		*) fail "--seccomp $m, root without --user: uid 0, no capability, no_new_privs, Seccomp $want" "$r" ;;
		esac
		exec 5>&-
		wait "$BPID"
		BRC=$?
		sanitizer_clean "$BERR" "sc.$m" || true
		is "$BRC/$(npkts "$T/sc.$m.pcap")" "0/$N" "--seccomp $m: exits 0 at the end of the FIFO, every packet written"
	else
		exec 5>&-
		fail "--seccomp $m: started" "$(cat "$BERR")"
	fi
done
"$WEIR" -r "$TR" -w "$T/x.pcap" --seccomp maybe >/dev/null 2>"$T/scbad.err"
is "$?" 2 "--seccomp maybe is a usage error"
"$WEIR" -r "$TR" -w "$T/x.pcap" --user no-such-user-weir >/dev/null 2>"$T/nouser.err"
rc=$?
if [ "$rc" -ne 0 ] && grep -q "no-such-user-weir" "$T/nouser.err"; then
	pass "--user of an unknown user: refused, named"
else
	fail "--user of an unknown user: refused, named" "exit $rc" "$(cat "$T/nouser.err")"
fi

# --- weir-tap and a tenant --------------------------------------------
if [ -x "$TAPBIN" ] && "$TAPBIN" --help 2>&1 | grep -q -- "--user"; then
	cat >"$T/ten.json" <<EOF
{"name": "ten", "stages": [{"type": "filter", "expr": "tcp"}],
 "outputs": [{"type": "pcap", "path": "$OUT/ten.pcap"}]}
EOF
	chmod 0644 "$T/ten.json"
	rm -f "$T/fifo"
	mkfifo "$T/fifo"
	exec 5<>"$T/fifo"
	cat "$TR" >&5 &
	"$TAPBIN" -v -r "$T/fifo" --user nobody --summary "$OUT/tap.sum" \
	    "$T/ten.json" >"$T/tap.out" 2>"$T/tap.err" 5>&- &
	TPID=$!
	NETNS_PIDS+=("$TPID")
	CH=
	for i in $(seq 200); do
		CH=$(pgrep -P "$TPID" | head -n 1)
		[ -n "$CH" ] && grep -q "privileges dropped" "$T/tap.err" &&
		    [ "$(awk '/^Seccomp_filters:/ {print $2}' "/proc/$CH/status" 2>/dev/null)" = 2 ] &&
		    break
		sleep 0.05
	done
	r=$(procs "$TPID" "$NUID" "$NGID" 2)
	case $r in
	ok*) pass "weir-tap --user nobody: uid/gid nobody, no capability, no_new_privs, seccomp ($r)" ;;
	*) fail "weir-tap --user nobody: uid/gid nobody, no capability, no_new_privs, seccomp" "$r" "$(cat "$T/tap.err")" ;;
	esac
	if [ -n "$CH" ]; then
		r=$(procs "$CH" "$NUID" "$NGID" 2)
		case $r in
		ok*) pass "weir-tap's tenant: started unprivileged, filter of its own ($r)" ;;
		*) fail "weir-tap's tenant: started unprivileged" "$r" ;;
		esac
		is "$(awk '/^Seccomp_filters:/ {print $2}' "/proc/$CH/status")" 2 \
		    "the tenant runs under weir-tap's filter and its own"
	else
		fail "weir-tap started a tenant" "$(cat "$T/tap.err")"
	fi
	exec 5>&-
	wait "$TPID"
	rc=$?
	sanitizer_clean "$T/tap.err" tap || true
	tcpdump -r "$TR" -w "$T/ten.ref" tcp 2>/dev/null
	is "$rc/$(npkts "$OUT/ten.pcap")" "0/$(npkts "$T/ten.ref")" \
	    "weir-tap: exits 0, the tenant wrote what tcpdump's 'tcp' selects"
else
	echo "# weir-tap has no --user yet: its part is skipped"
	pass "# SKIP weir-tap --user not built"
fi

done_testing
