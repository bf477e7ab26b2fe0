#!/bin/bash
# tcpdump_equiv.sh - weir-capture writes exactly the packets tcpdump selects.
#
# For real traces of every link type we read (Ethernet, 802.1Q/802.1ad,
# MPLS, Linux cooked v1 and v2, raw IP, big-endian and nanosecond pcap,
# pcapng with several interfaces) and several BPF filters each, the
# reference is `tcpdump -r IN -w ref FILTER`; both files are listed with
# `tcpdump -nn -tt -e -v -xx` (timestamps, link header, decoded fields and
# every captured byte) and the listings must be identical.  tshark must
# read every file we write.  pcapng inputs mixing link types (which
# tcpdump cannot read) are compared against tshark's view of the input.
. tests/integration/common.bash

T=$WEIR_TMP
I=0

# eq TRACE PREC "FILTER" [WEIR ARGS...]
#   PREC is micro or nano: the timestamp precision of both written files.
eq()
{
	local trace=$1 prec=$2 filter=$3 in ref ours label
	shift 3
	I=$((I + 1))
	in="$DATA/$trace"
	ref="$T/eq$I.ref.pcap"
	ours="$T/eq$I.pcap"
	label="$trace${filter:+ '$filter'}${*:+ $*}"
	words "$filter"
	if ! tcpdump --time-stamp-precision="$prec" -r "$in" -w "$ref" \
	    "${WORDS[@]}" 2>"$T/eq$I.tcpdump.err"; then
		fail "$label: tcpdump reference" "$(cat "$T/eq$I.tcpdump.err")"
		return
	fi
	weir_ok "eq$I" -q "$@" -r "$in" -w "$ours" "${WORDS[@]}" || return
	# tcpdump writes a valid file even when nothing is selected
	if [ ! -f "$ours" ]; then
		fail "$label: output file written" "no file '$ours'"
		return
	fi
	is "$(linktype "$ours")" "$(linktype "$ref")" "$label: link type"
	tcpdump_list "$ref" --time-stamp-precision="$prec" >"$ref.txt"
	tcpdump_list "$ours" --time-stamp-precision="$prec" >"$ours.txt"
	same_file "$ours.txt" "$ref.txt" \
	    "$label: same $(npkts "$ref") packets as tcpdump"
	# tshark on one file per trace is enough (it costs ~0.4 s a run)
	if [ -z "$filter" ]; then
		tshark_reads "$ours" "$label: tshark reads our file"
	fi
}

# Ethernet, IPv4 + IPv6
eq ndpi-1kxun.pcap micro ""
eq ndpi-1kxun.pcap micro "tcp"
eq ndpi-1kxun.pcap micro "udp port 53"
eq ndpi-1kxun.pcap micro "ip6"
eq ndpi-1kxun.pcap micro "host 192.168.115.8"
eq ndpi-1kxun.pcap micro "icmp or icmp6"	# selects nothing
eq ndpi-1kxun.pcap micro "tcp[tcpflags] & tcp-syn != 0"
eq ndpi-dns_fragmented.pcap micro ""
eq ndpi-dns_fragmented.pcap micro "ip[6:2] & 0x3fff != 0 or ip6[6] == 44"
eq ndpi-nintendo.pcap micro "icmp"
eq ndpi-nintendo.pcap micro "udp and not port 53"
eq zeek-communityid-icmp6.pcap micro "icmp6"
eq ndpi-reddit-ipv6.pcap micro "ip6 and tcp port 443 and greater 1000"
# tunnels: the filter sees the outer headers, as in tcpdump
eq zeek-gre-sample.pcap micro "proto gre"
eq zeek-erspan.pcap micro "ip6 or icmp"
eq zeek-vxlan-encapsulated-http.pcap micro "udp port 4789"
eq ndpi-6in4tunnel.pcap micro "ip proto 41"
# VLAN, QinQ, 802.1ad, MPLS
eq libtrace-vlan.pcap micro ""
eq libtrace-vlan.pcap micro "vlan"
eq libtrace-vlan.pcap micro "vlan 104"
eq libtrace-vlan.pcap micro "not vlan"
eq libtrace-vlan.pcap micro "vlan and tcp"
eq zeek-vlan-qinqinq.pcap micro "vlan and vlan and vlan and tcp"
eq zeek-vlan-qinqinq.pcap micro "tcp"	# selects nothing: tags first
eq tcpdump-802.1ad_QinQ.pcap micro ""
eq tcpdump-802.1ad_QinQ.pcap micro "vlan and arp"
eq zeek-mixed-vlan-mpls.pcap micro ""
eq zeek-mixed-vlan-mpls.pcap micro "mpls"
eq zeek-mixed-vlan-mpls.pcap micro "vlan"
eq zeek-mixed-vlan-mpls.pcap micro "tcp"
# Linux cooked v1 (one of them nanosecond) and v2 (with 64 kB GRO frames)
eq ndpi-KakaoTalk_talk-sll.pcap micro ""
eq ndpi-KakaoTalk_talk-sll.pcap micro "udp"
eq ndpi-KakaoTalk_talk-sll.pcap micro "tcp and port 443"
eq tcpdump-tcp-handshake-nano.pcap nano "" --nano
eq tcpdump-tcp-handshake-nano.pcap micro "tcp"
eq zeek-linux_dlt_sll2.pcap micro ""
eq zeek-linux_dlt_sll2.pcap micro "icmp or icmp6"
eq zeek-linux_dlt_sll2.pcap micro "arp"
eq suricata-decode-sll2-02.pcap micro ""
eq suricata-decode-sll2-02.pcap micro "tcp[tcpflags] & tcp-push != 0"
# raw IP
eq ndpi-ocs-rawip.pcap micro ""
eq ndpi-ocs-rawip.pcap micro "udp port 53"
eq ndpi-ocs-rawip.pcap micro "tcp and not port 443"
# nanosecond pcap, read to µs (truncated as libpcap does) and to ns
eq libtrace-fragtest-ether-ns.pcap micro ""
eq libtrace-fragtest-ether-ns.pcap nano "" --nano
eq libtrace-fragtest-ether-ns.pcap nano "vlan 390" --nano
eq libtrace-fragtest-ether-ns.pcap micro "vlan and ip[6:2] & 0x3fff != 0"
# big-endian pcap
eq ndpi-nfsv3-bigendian.pcap micro ""
eq ndpi-nfsv3-bigendian.pcap micro "udp port 2049"
# pcapng: two interfaces with different resolutions, three ERF ports
eq zeek-pcapng-multi-interface.pcapng micro ""
eq zeek-pcapng-multi-interface.pcapng nano "udp port 53" --nano
eq libtrace-fragtest-ether.pcapng micro "tcp"

# -c 10: the first ten packets the filter selects
I=$((I + 1))
tcpdump -c 10 -r "$DATA/ndpi-1kxun.pcap" -w "$T/c10.ref.pcap" tcp 2>/dev/null
weir_ok c10 -q -c 10 -r "$DATA/ndpi-1kxun.pcap" -w "$T/c10.pcap" tcp &&
	{
	is "$(npkts "$T/c10.pcap")" 10 "-c 10 tcp: ten packets"
	tcpdump_list "$T/c10.ref.pcap" >"$T/c10.ref.txt"
	tcpdump_list "$T/c10.pcap" >"$T/c10.txt"
	same_file "$T/c10.txt" "$T/c10.ref.txt" "-c 10 tcp: the first ten of tcpdump"
	}

# -s 64: every caplen is min(64, caplen in), every len unchanged, and the
# bytes are those of `editcap -s 64` (an independent truncation).
snap()
{
	local trace=$1 n=$2 in out
	in="$DATA/$trace"
	out="$T/snap.$trace"
	weir_ok "snap.$trace" -q -s "$n" -r "$in" -w "$out" || return
	tsh "$in" -T fields -e frame.cap_len -e frame.len |
	    awk -v n="$n" '{ c = $1 < n ? $1 : n; print c "\t" $2 }' \
	    >"$out.want"
	tsh "$out" -T fields -e frame.cap_len -e frame.len >"$out.got"
	same_file "$out.got" "$out.want" \
	    "-s $n $trace: cap_len = min($n, cap_len), len kept"
	editcap -s "$n" "$in" "$out.ref" 2>/dev/null
	tcpdump_list "$out.ref" >"$out.ref.txt"
	tcpdump_list "$out" >"$out.txt"
	same_file "$out.txt" "$out.ref.txt" "-s $n $trace: bytes as editcap -s $n"
	tshark_reads "$out" "-s $n $trace: tshark reads our file"
}
snap ndpi-1kxun.pcap 64
snap suricata-decode-sll2-02.pcap 64
snap ndpi-ocs-rawip.pcap 40
snap libtrace-100_packets.pcap 64	# most packets already shorter

# pcapng output, compared with tshark (tcpdump cannot mix link types).
# FIELDS are per packet; custom blocks of the input are not packets.
FIELDS="-e frame.encap_type -e frame.len -e frame.cap_len -e frame.time_epoch"
ng()
{
	local trace=$1 dfilter=$2 filter=$3 in out
	I=$((I + 1))
	in="$DATA/$trace"
	out="$T/ng$I.pcapng"
	words "$filter"
	weir_ok "ng$I" -q --nano -F pcapng -r "$in" -w "$out" "${WORDS[@]}" ||
	    return
	# shellcheck disable=SC2086
	tsh "$in" -Y "frame.interface_id && ($dfilter)" -T fields \
	    $FIELDS >"$out.want"
	# shellcheck disable=SC2086
	tsh "$out" -T fields $FIELDS >"$out.got"
	# a simple packet block carries no time: ours may give it one
	paste "$out.want" "$out.got" | awk -F'\t' '
	    NF != 8 { bad = bad "\nrow " NR ": " $0; next }
	    $1 != $5 || $2 != $6 || $3 != $7 || ($4 != "" && $4 != $8) {
		bad = bad "\nrow " NR ": " $0 }
	    END { printf "%s", bad }' >"$out.diff"
	if [ "$(wc -l <"$out.want")" -eq "$(wc -l <"$out.got")" ] &&
	    [ ! -s "$out.diff" ]; then
		pass "-F pcapng $trace '$filter': $(wc -l <"$out.want") packets as tshark sees them"
	else
		fail "-F pcapng $trace '$filter': packets as tshark sees them" \
		    "want $(wc -l <"$out.want") got $(wc -l <"$out.got")" \
		    "$(head -c 1500 "$out.diff")"
	fi
	tsh "$in" -Y "frame.interface_id && ($dfilter)" -x |
	    grep -E '^[0-9a-f]{4}  ' >"$out.want.x"
	tsh "$out" -x | grep -E '^[0-9a-f]{4}  ' >"$out.got.x"
	same_file "$out.got.x" "$out.want.x" "-F pcapng $trace '$filter': bytes"
	tshark_reads "$out" "-F pcapng $trace '$filter': tshark reads our file"
}
ng gopacket-test202-le.pcapng "frame" ""
ng gopacket-test202-be.pcapng "frame" ""
ng gopacket-test202-le.pcapng "udp.port == 67" "udp port 67"
ng gopacket-test202-be.pcapng "udp" "udp"
ng zeek-pcapng-multi-interface.pcapng "frame" ""
ng zeek-pcapng-multi-interface.pcapng "dns.flags.response == 1" "udp src port 53"
ng libtrace-fragtest-ether.pcapng "icmp" "vlan and icmp"

# Interfaces survive into pcapng: same interface id and name per packet.
out="$T/ifs.pcapng"
if weir_ok ifs -q -r "$DATA/zeek-pcapng-multi-interface.pcapng" -w "$out"; then
	tsh "$DATA/zeek-pcapng-multi-interface.pcapng" -T fields \
	    -e frame.interface_id -e frame.interface_name >"$out.want"
	tsh "$out" -T fields -e frame.interface_id -e frame.interface_name \
	    >"$out.got"
	same_file "$out.got" "$out.want" "pcapng multi-interface: interface of every packet kept"
fi

# ERF (which tcpdump cannot read): the packets as tshark reads them (bytes
# after the ERF header, nanosecond times, lengths).
out="$T/erf.pcap"
if weir_ok erf -q --nano -r "$DATA/libtrace-100_packets.erf" -w "$out"; then
	is "$(linktype "$out")" EN10MB "erf: Ethernet link type"
	tsh "$DATA/libtrace-100_packets.erf" -x | grep -E '^[0-9a-f]{4}  ' \
	    >"$out.want"
	tsh "$out" -x | grep -E '^[0-9a-f]{4}  ' >"$out.got"
	same_file "$out.got" "$out.want" "erf: the same frame bytes as tshark reads"
	tsh "$DATA/libtrace-100_packets.erf" -T fields -e frame.time_epoch \
	    -e frame.len -e frame.cap_len >"$out.twant"
	tsh "$out" -T fields -e frame.time_epoch -e frame.len \
	    -e frame.cap_len >"$out.tgot"
	same_file "$out.tgot" "$out.twant" "erf: ns times and lengths as tshark reads them"
fi

done_testing
