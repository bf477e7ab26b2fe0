#!/bin/bash
# tests/fuzz/run.sh DIR SECONDS - replay each fuzz target's corpus (a
# regression test), then fuzz it for SECONDS; one TAP line per target.
set -u
DIR=${1:-build-fuzz}
SECS=${2:-10}
n=0 rc_all=0
for f in "$DIR"/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	corpus=tests/fuzz/corpus/${name#fuzz_}
	mkdir -p "$corpus"
	work=$(mktemp -d /tmp/weir-fuzz.XXXXXX)
	n=$((n + 1))
	# New inputs go to a scratch dir, so the committed corpus stays small.
	if "$f" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix="$work/" "$work" "$corpus" >"$work/log" 2>&1; then
		echo "ok $n - $name: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/log" | tail -1 || true)$(tail -1 "$work/log" | cut -c1-100)"
	else
		echo "not ok $n - $name crashed; see below"
		grep -E 'ERROR|SUMMARY|runtime error' "$work/log" | head -10 | sed 's/^/# /'
		ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | sed 's/^/# artifact /'
		rc_all=1
	fi
	rm -rf "$work"
done
echo "1..$n"
exit $rc_all
