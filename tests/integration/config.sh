#!/bin/bash
# config.sh - the experiment document, -n, bad configs and the node policy.
#
# -n prints JSON that parses and is a fixed point (feeding it back with
# --config prints the same bytes); bad documents, flags and policies exit
# 2 with a message naming the offending field or rule, and run nothing;
# the key file's path may be printed, the key never.
. tests/integration/common.bash

T=$WEIR_TMP
IN="$DATA/libtrace-100_packets.pcap"
KEYHEX=8f3c5a7e91b2d4c6e8fa1c3e5a7b9d2f4e6a8c1b3d5f7e9a2c4b6d8f1a3c5e7b
echo "$KEYHEX" >"$T/key"

# roundtrip NAME ARGS...: -n output parses; -n --config of it is identical
roundtrip()
{
	local name=$1
	shift
	weir_ok "$name" -n "$@" || return
	cp "$WOUT" "$T/$name.json"
	if python3 -c 'import json, sys; json.load(open(sys.argv[1]))' \
	    "$T/$name.json" 2>"$T/$name.pyerr"; then
		pass "$name: -n prints valid JSON"
	else
		fail "$name: -n prints valid JSON" "$(cat "$T/$name.pyerr")"
		return
	fi
	weir_ok "$name.2" -n --config "$T/$name.json" || return
	same_file "$WOUT" "$T/$name.json" "$name: -n --config <printed> prints the same"
}

roundtrip cli -r "$IN" -w "$T/o.pcap" -s 64 -c 5 tcp and port 80
roundtrip cli-all -r "$IN" -r "$DATA/libtrace-100_packets.erf" \
    -w "$T/o.pcapng" --nano --anon-key "$T/key" --headers-only \
    --counters "$T/c.jsonl" -G 60 -W 4 -C 2 --meta udp
cat >"$T/full.json" <<EOF
{"name": "full", "metadata": {"project": "weir tests", "n": [1, 2]},
 "inputs": [{"path": "$IN"}],
 "stages": [{"type": "filter", "expr": "ip"},
	    {"type": "sample", "mode": "count", "n": 10, "offset": 0},
	    {"type": "anonymize", "method": "cryptopan", "key_file": "$T/key",
	     "addresses": "both", "checksums": "update"},
	    {"type": "truncate", "snaplen": 64}],
 "outputs": [{"type": "pcap", "path": "$T/f.pcap", "precision": "us",
	      "rotate": {"size": 0, "packets": 0, "period": "none",
			 "per_period": 1, "seconds": 0, "max_files": 0},
	      "metadata": true},
	     {"type": "pcapng", "path": "$T/f.pcapng"},
	     {"type": "counters", "path": "$T/f.jsonl", "format": "json",
	      "interval": 1}]}
EOF
roundtrip full --config "$T/full.json"
# the document's own values survive
res=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
st = [s["type"] for s in d["stages"]]
print(d["name"], d["metadata"]["project"], ",".join(st), d["stages"][3]["snaplen"],
      ",".join(o["type"] for o in d["outputs"]))' "$T/full.json" 2>&1)
is "$res" "full weir tests filter,sample,anonymize,truncate 64 pcap,pcapng,counters" \
    "full: -n keeps name, user metadata, stage order and values"
# -n runs nothing
if [ ! -e "$T/f.pcap" ] && [ ! -e "$T/o.pcap" ] && [ ! -e "$T/c.jsonl" ]; then
	pass "-n writes no output file"
else
	fail "-n writes no output file" "$(ls "$T")"
fi
# the key: its path is printed, the key is not
if grep -q -F "$T/key" "$T/cli-all.json" && ! grep -q -i "$KEYHEX" "$T"/*.json &&
    ! grep -q -i "${KEYHEX:0:32}" "$T"/*.json && ! grep -q -i "${KEYHEX:32}" "$T"/*.json; then
	pass "-n prints the key file's path, never the key"
else
	fail "-n prints the key file's path, never the key"
fi

# refused NAME WANT DOC-JSON [STATUSES]: exit 2 (or one of STATUSES),
# message names WANT (an extended regexp), no output written
refused()
{
	local name=$1 want=$2 doc=$3 codes=${4:-2}
	printf '%s\n' "$doc" >"$T/$name.bad.json"
	rm -f "$T/bad.pcap"
	weir "$name" --config "$T/$name.bad.json"
	if [[ " $codes " == *" $WRC "* ]] && grep -q -E -- "$want" "$WERR" &&
	    [ ! -e "$T/bad.pcap" ]; then
		pass "$name: exit $WRC, names $want: $(head -n 1 "$WERR" | cut -c1-110)"
	else
		fail "$name: exit $codes naming $want" "exit $WRC" "$(head -c 600 "$WERR")"
	fi
}

I="\"inputs\": [{\"path\": \"$IN\"}]"
O="\"outputs\": [{\"type\": \"pcap\", \"path\": \"$T/bad.pcap\"}]"
refused unknown-top "'outptus'" "{$I, \"outptus\": []}"
refused unknown-stage-key "'exprr'" \
    "{$I, \"stages\": [{\"type\": \"filter\", \"expr\": \"tcp\", \"exprr\": 1}], $O}"
refused unknown-stage "'fliter'" "{$I, \"stages\": [{\"type\": \"fliter\"}], $O}"
refused unknown-output "'pcapx'" "{$I, \"outputs\": [{\"type\": \"pcapx\", \"path\": \"x\"}]}"
refused bad-type "'snaplen'" \
    "{$I, \"stages\": [{\"type\": \"truncate\", \"snaplen\": \"64\"}], $O}"
refused out-of-range "'snaplen'" \
    "{$I, \"stages\": [{\"type\": \"truncate\", \"snaplen\": 9999999}], $O}"
refused bad-filter "'expr'|filter" \
    "{$I, \"stages\": [{\"type\": \"filter\", \"expr\": \"tcp and and port\"}], $O}"
refused bad-mode "'mode'" \
    "{$I, \"stages\": [{\"type\": \"sample\", \"mode\": \"sometimes\"}], $O}"
refused bad-p "'p'" \
    "{$I, \"stages\": [{\"type\": \"sample\", \"mode\": \"random\", \"p\": 1.5}], $O}"
refused bad-period "'period'" \
    "{$I, \"outputs\": [{\"type\": \"pcap\", \"path\": \"$T/bad.pcap\", \"rotate\": {\"period\": \"week\"}}]}"
refused bad-precision "'precision'" \
    "{$I, \"outputs\": [{\"type\": \"pcap\", \"path\": \"$T/bad.pcap\", \"precision\": \"ps\"}]}"
refused no-key-file "'key_file'" \
    "{$I, \"stages\": [{\"type\": \"anonymize\", \"method\": \"cryptopan\"}], $O}"
refused order-trunc-filter "truncate.*filter|filter.*truncate" \
    "{$I, \"stages\": [{\"type\": \"truncate\", \"snaplen\": 64}, {\"type\": \"filter\", \"expr\": \"tcp\"}], $O}"
refused order-trunc-anon "truncate.*anonymize|anonymize.*truncate" \
    "{$I, \"stages\": [{\"type\": \"truncate\", \"snaplen\": 64}, {\"type\": \"anonymize\", \"key_file\": \"$T/key\"}], $O}"
refused not-json "line [0-9]+" "{$I, \"stages\": [,]}"
refused stages-not-list "'stages'" "{$I, \"stages\": {\"type\": \"filter\"}, $O}"

# a bad key file: refused as a config error (exit 2, nothing written), its
# content never echoed
echo "${KEYHEX:0:63}" >"$T/shortkey"
refused short-key "shortkey" \
    "{$I, \"stages\": [{\"type\": \"anonymize\", \"key_file\": \"$T/shortkey\"}], $O}"
if grep -q -i "${KEYHEX:0:16}" "$WERR"; then
	fail "short-key: the key file's content is not echoed" "$(cat "$WERR")"
else
	pass "short-key: the key file's content is not echoed"
fi
refused missing-key "nokey" \
    "{$I, \"stages\": [{\"type\": \"anonymize\", \"key_file\": \"$T/nokey\"}], $O}"

# bad flags
for args in "-s abc" "-s -5" "-c x" "-F pcapx" "-G -1" "--no-such-option"; do
	# shellcheck disable=SC2086
	weir "flag$args" $args -r "$IN" -w "$T/bad.pcap"
	if [ "$WRC" -eq 2 ] && [ ! -e "$T/bad.pcap" ] && [ -s "$WERR" ]; then
		pass "flags '$args': exit 2 with a message"
	else
		fail "flags '$args': exit 2 with a message" "exit $WRC" \
		    "$(head -c 400 "$WERR")"
	fi
done

# --- node policy ---
pol()
{
	printf '%s\n' "$2" >"$T/$1.policy.json"
}
pol snap '{"max_snaplen": 128}'
pol anon '{"require_anonymization": true}'
pol outs '{"allowed_outputs": ["pcap", "counters"]}'
pol meth '{"require_anonymization": true, "anonymization_method": "netblock"}'
pol typo '{"max_snaplem": 128}'

policy_refused()
{
	local name=$1 want=$2
	shift 2
	rm -f "$T/bad.pcap" "$T/bad.pcapng"
	weir "$name" "$@"
	if [ "$WRC" -eq 2 ] && grep -q -E -- "$want" "$WERR" &&
	    [ ! -e "$T/bad.pcap" ] && [ ! -e "$T/bad.pcapng" ]; then
		pass "policy $name: refused, names $want: $(head -n 1 "$WERR" | cut -c1-100)"
	else
		fail "policy $name: refused naming $want" "exit $WRC" \
		    "$(head -c 600 "$WERR")"
	fi
}
policy_refused max_snaplen "'max_snaplen'" --policy "$T/snap.policy.json" \
    -s 256 -r "$IN" -w "$T/bad.pcap"
policy_refused require_anonymization "'require_anonymization'" \
    --policy "$T/anon.policy.json" -r "$IN" -w "$T/bad.pcap"
policy_refused allowed_outputs "'allowed_outputs'" \
    --policy "$T/outs.policy.json" -r "$IN" -w "$T/bad.pcapng"
policy_refused anonymization_method "'anonymization_method'" \
    --policy "$T/meth.policy.json" --anon-key "$T/key" -r "$IN" \
    -w "$T/bad.pcap"
policy_refused unknown-rule "'max_snaplem'" --policy "$T/typo.policy.json" \
    -r "$IN" -w "$T/bad.pcap"

# allowed under the policy: the same runs with what it asks for
weir_ok pol-ok1 -q --policy "$T/anon.policy.json" --anon-key "$T/key" \
    -r "$IN" -w "$T/anon.pcap" && pass "policy require_anonymization: accepted with --anon-key"
weir_ok pol-ok2 -q --policy "$T/outs.policy.json" -r "$IN" -w "$T/ok.pcap" \
    --counters "$T/ok.jsonl" && pass "policy allowed_outputs: pcap + counters accepted"
# max_snaplen merged in: a run without -s is cut to 128, and -n shows it
if weir_ok pol-snap -q --policy "$T/snap.policy.json" \
    -r "$DATA/ndpi-1kxun.pcap" -w "$T/snap.pcap"; then
	res=$(tsh "$T/snap.pcap" -T fields -e frame.cap_len | sort -n | tail -n 1)
	long=$(tsh "$DATA/ndpi-1kxun.pcap" -T fields -e frame.cap_len | sort -n | tail -n 1)
	is "$res" 128 "policy max_snaplen 128: longest packet written 128 (input's: $long)"
fi
if weir_ok pol-n -n --policy "$T/snap.policy.json" -r "$IN" -w "$T/snap.pcap"; then
	res=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print([s.get("snaplen") for s in d["stages"] if s["type"] == "truncate"])' "$WOUT" 2>&1)
	is "$res" "[128]" "policy max_snaplen: -n shows the truncate stage it adds"
fi
roundtrip pol-rt --policy "$T/snap.policy.json" -r "$IN" -w "$T/o.pcap" -s 100

# the key never appears in anything printed above
if grep -l -i -e "$KEYHEX" -e "${KEYHEX:0:32}" -e "${KEYHEX:32}" "$T"/*.out "$T"/*.err \
    >/dev/null 2>&1; then
	fail "the key is in no stdout or stderr of any run" \
	    "$(grep -l -i -e "$KEYHEX" -e "${KEYHEX:0:32}" "$T"/*.out "$T"/*.err)"
else
	pass "the key is in no stdout or stderr of any run"
fi

done_testing
