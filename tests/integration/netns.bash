# netns.bash - network namespaces and veth pairs for live-capture tests
# (sourced after common.bash; not a test itself).
#
# netns_require: prints a TAP skip and exits 0 unless we are root and
#   `ip netns` works (the only reasons to skip).
# netns_setup PREFIX: namespaces ${PREFIX}s (sender) and ${PREFIX}c
#   (capture); removed by the EXIT trap, with everything in them.
# veth_add NAME: a veth pair NAME-s (in the sender namespace) and NAME-c
#   (in the capture namespace), up, MTU 9000 (so jumbo frames of real
#   traces can be replayed), IPv6 off on both ends so the kernel sends
#   no router/neighbour solicitations or MLD reports of its own: the
#   link then carries only what tcpreplay sends.  No IPv4 address either,
#   so no ARP, and the capture side answers nothing it receives.
# in_s / in_c CMD...: run a command in the sender / capture namespace.

NETNS_S=
NETNS_C=
NETNS_PIDS=()

netns_require()
{
	if [ "$(id -u)" -ne 0 ]; then
		echo "1..0 # SKIP not root: live capture needs namespaces and CAP_NET_RAW"
		exit 0
	fi
	if ! command -v ip >/dev/null 2>&1 || ! ip netns list >/dev/null 2>&1; then
		echo "1..0 # SKIP 'ip netns' is not available"
		exit 0
	fi
	if ! command -v tcpreplay >/dev/null 2>&1; then
		echo "Bail out! 'tcpreplay' is not installed (scripts/install-deps.sh)"
		exit 2
	fi
}

netns_cleanup()
{
	local p
	for p in "${NETNS_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	[ -n "$NETNS_S" ] && ip netns del "$NETNS_S" 2>/dev/null
	[ -n "$NETNS_C" ] && ip netns del "$NETNS_C" 2>/dev/null
	return 0
}

netns_setup()
{
	NETNS_S=${1}s
	NETNS_C=${1}c
	trap netns_cleanup EXIT
	ip netns add "$NETNS_S" || return 1
	ip netns add "$NETNS_C" || return 1
	ip -n "$NETNS_S" link set lo up
	ip -n "$NETNS_C" link set lo up
}

veth_add()
{
	local n=$1
	ip link add "$n-s" netns "$NETNS_S" type veth peer name "$n-c" \
	    netns "$NETNS_C" || return 1
	ip netns exec "$NETNS_S" sysctl -qw "net.ipv6.conf.$n-s.disable_ipv6=1"
	ip netns exec "$NETNS_C" sysctl -qw "net.ipv6.conf.$n-c.disable_ipv6=1"
	ip -n "$NETNS_S" link set "$n-s" mtu 9000 up || return 1
	ip -n "$NETNS_C" link set "$n-c" mtu 9000 up || return 1
	# frames sent before the carrier is up (linkwatch runs later)
	# vanish: wait for both ends to be operationally up
	local i
	for i in $(seq 60); do
		ip -n "$NETNS_S" link show dev "$n-s" | grep -q 'state UP' &&
		    ip -n "$NETNS_C" link show dev "$n-c" | grep -q 'state UP' &&
		    return 0
		sleep 0.05
	done
	return 1
}

in_s()
{
	ip netns exec "$NETNS_S" "$@"
}

in_c()
{
	ip netns exec "$NETNS_C" "$@"
}
