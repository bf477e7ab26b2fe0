#!/bin/bash
# scripts/demo.sh BUILD_DIR - weir-capture's main job on a bundled sample:
# a synthetic trace made by tools/gentrace.py, run through the default
# demo experiment (docs/demo-experiment.json), then show what came out.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=out/demo
rm -rf "$OUT" && mkdir -p "$OUT"
python3 tools/gentrace.py --packets 20000 --seed 1 --rate-pps 2000 \
	--start-time 1704067195 --out "$OUT/sample.pcap" --quiet
# A fixed demo key: real deployments keep theirs in a root-only file.
printf '%s\n' 1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202 \
	>"$OUT/demo.key"
cd "$OUT" && mkdir -p traces
"../../$BUILD/weir-capture" --config ../../docs/demo-experiment.json \
	--summary summary.json
echo
echo "== files written (out/demo/traces):"
ls -l traces
echo
echo "== first packets of the first trace, as tcpdump reads them:"
first=$(ls traces/*.pcap | head -1)
tcpdump -nn -tt -r "$first" 2>/dev/null | head -8
echo
echo "== its metadata (traces/$(basename "$first").meta.json, excerpt):"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(json.dumps({k: m[k] for k in m if k in ("file","packets","bytes","first_ts","last_ts","reason","sha256")}, indent=1))' "$first.meta.json" 2>/dev/null || head -c 600 "$first.meta.json"
echo
echo "== counters (counters.csv, first lines):"
head -4 counters.csv
echo
echo "== accounting (summary.json): read $(python3 -c 'import json; s=json.load(open("summary.json")); print(s["read"], "passed", s["passed"], "stages", [(x["type"], x["dropped"]) for x in s["stages"]])')"
