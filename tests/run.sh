#!/bin/bash
# tests/run.sh BUILD_DIR - run every test against the binaries in BUILD_DIR
# (make check passes build-san, the ASan+UBSan build), then each fuzz
# target briefly.  Every check prints a TAP line; the last line of the
# output is "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build-san}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export WEIR="$PWD/$BUILD/weir-capture"
export TZ=UTC LC_ALL=C
pass=0 fail=0
log=$(mktemp -d /tmp/weir-tests.XXXXXX)
failed_list=()

# count_tap NAME FILE RC: add the file's ok/not ok lines to the totals
count_tap() {
	local name=$1 file=$2 rc=$3 p f
	p=$(grep -c '^ok ' "$file")
	f=$(grep -c '^not ok ' "$file")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >>"$file"
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$f" -gt 0 ]; then
		failed_list+=("$name")
		echo "== $name: $p passed, $f failed"
		grep -E '^not ok|^#' "$file" | head -40
		grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$file" | head -5
	else
		echo "== $name: $p passed"
	fi
}

for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	name=unit/$(basename "$t")
	"$t" >"$log/out" 2>&1
	count_tap "$name" "$log/out" $?
done

for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	name=integration/$(basename "$t" .sh)
	export WEIR_TMP=$(mktemp -d /tmp/weir-it.XXXXXX)
	bash "$t" >"$log/out" 2>&1
	count_tap "$name" "$log/out" $?
	rm -rf "$WEIR_TMP"
done

if [ -x tests/fuzz/run.sh ] && ls build-fuzz/fuzz_* >/dev/null 2>&1; then
	tests/fuzz/run.sh build-fuzz "$FUZZ_SECONDS" >"$log/out" 2>&1
	count_tap fuzz "$log/out" $?
fi

rm -rf "$log"
if [ ${#failed_list[@]} -gt 0 ]; then
	echo "failed: ${failed_list[*]}"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
