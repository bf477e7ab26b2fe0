# common.bash - helpers sourced by tests/integration/*.sh (not a test itself).
#
# The runner starts every test from the repository root with
#   WEIR      the weir-capture binary under test
#   WEIR_TMP  a fresh scratch directory (the test may fill it freely)
# Each test prints TAP lines and a final plan; it exits non-zero if any
# assertion failed.  Expected results come from tcpdump, tshark, capinfos,
# editcap or from the test data itself, never from weir-capture.

set -u
export LC_ALL=C TZ=UTC

if [ -z "${WEIR:-}" ] || [ -z "${WEIR_TMP:-}" ]; then
	echo "Bail out! WEIR and WEIR_TMP must be set (see tests/run.sh)"
	exit 2
fi
case "$WEIR" in
/*) ;;
*) WEIR="$PWD/$WEIR" ;;
esac
if [ ! -x "$WEIR" ]; then
	echo "Bail out! '$WEIR' is not an executable"
	exit 2
fi
for t in tcpdump tshark capinfos editcap python3; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "Bail out! '$t' is not installed (scripts/install-deps.sh)"
		exit 2
	fi
done

DATA="$PWD/tests/data"
TOOLS="$PWD/tests/integration"
GENTRACE="$PWD/tools/gentrace.py"
mkdir -p "$WEIR_TMP"
TAP_N=0
TAP_FAILED=0

# pass/fail DESC [DIAG...]: one TAP line; diagnostics as '#' lines.
pass()
{
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1"
}

fail()
{
	TAP_N=$((TAP_N + 1))
	TAP_FAILED=$((TAP_FAILED + 1))
	echo "not ok $TAP_N - $1"
	shift
	local l
	for l in "$@"; do
		printf '%s\n' "$l" | head -n 40 | sed 's/^/#   /'
	done
}

# is GOT EXPECTED DESC
is()
{
	if [ "$1" = "$2" ]; then
		pass "$3"
	else
		fail "$3" "got:      '$1'" "expected: '$2'"
	fi
}

# same_file A B DESC: byte-identical text files, showing the first diff.
same_file()
{
	if cmp -s "$1" "$2"; then
		pass "$3"
	else
		fail "$3" "$(diff "$1" "$2" | head -n 12)" \
		    "($(wc -l <"$1") vs $(wc -l <"$2") lines: $1 $2)"
	fi
}

# sanitizer_clean FILE: a sanitizer report in a stderr capture fails a test.
sanitizer_clean()
{
	if grep -q -E 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: [A-Za-z]*Sanitizer' "$1"; then
		fail "no sanitizer report ($2)" "$(grep -m 20 -E 'Sanitizer|runtime error|#[0-9]+ ' "$1")"
		return 1
	fi
	return 0
}

# weir NAME ARGS...: run weir-capture with stdout in $WEIR_TMP/NAME.out and
# stderr in $WEIR_TMP/NAME.err; sets WRC to its exit status.  Any sanitizer
# report is a failure on its own.
WRC=0
weir()
{
	local name=$1
	shift
	WOUT="$WEIR_TMP/$name.out"
	WERR="$WEIR_TMP/$name.err"
	"$WEIR" "$@" >"$WOUT" 2>"$WERR"
	WRC=$?
	sanitizer_clean "$WERR" "$name" || true
	return 0
}

# weir_ok NAME ARGS...: as weir, and assert exit status 0.
weir_ok()
{
	local name=$1
	weir "$@"
	if [ "$WRC" -ne 0 ]; then
		fail "weir-capture exits 0 ($name)" "exit status $WRC" \
		    "$(head -c 2000 "$WERR")" "args: ${*:2}"
		return 1
	fi
	return 0
}

# tshark_clean FILE: tshark reads the whole file without complaint.  Prints
# nothing on success; on failure prints why (for fail()).
tshark_clean()
{
	local err="$WEIR_TMP/tshark.$$.err" rc
	tshark -r "$1" -q >/dev/null 2>"$err"
	rc=$?
	grep -v -E '^Running as user' "$err" >"$err.2"
	if [ "$rc" -ne 0 ] || [ -s "$err.2" ]; then
		echo "tshark exit $rc: $(head -c 600 "$err.2")"
		return 1
	fi
	return 0
}

# tshark_reads FILE DESC: assertion form of tshark_clean.
tshark_reads()
{
	local why
	if why=$(tshark_clean "$1"); then
		pass "$2"
	else
		fail "$2" "$why"
	fi
}

# tsh FILE ARGS...: tshark field dump without the root warning.
tsh()
{
	local f=$1
	shift
	tshark -r "$f" "$@" 2>/dev/null
}

# npkts FILE: packet count as capinfos sees it (0 if unreadable).
npkts()
{
	local n
	n=$(capinfos -c -M -T -r "$1" 2>/dev/null | awk -F'\t' 'NF>=2 {print $2; exit}')
	echo "${n:-0}"
}

# tcpdump_list FILE [ARGS...]: per-packet listing, byte-exact (-xx), with
# timestamps, link header and decoded fields.
tcpdump_list()
{
	local f=$1
	shift
	tcpdump -nn -tt -e -v -xx "$@" -r "$f" 2>/dev/null
}

# linktype FILE: the link-type words of tcpdump's banner.
linktype()
{
	tcpdump -c 1 -r "$1" 2>&1 >/dev/null | sed -n 's/.*link-type \([^ ]*\).*/\1/p' | head -n 1
}

# words STRING: split a filter into the array WORDS without globbing
words()
{
	WORDS=()
	read -r -a WORDS <<<"$1"
}

done_testing()
{
	echo "1..$TAP_N"
	if [ "$TAP_FAILED" -ne 0 ]; then
		echo "# $TAP_FAILED of $TAP_N failed"
		exit 1
	fi
	exit 0
}
