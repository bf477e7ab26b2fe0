#!/bin/sh
# Install every Debian package Weir needs to build, test, fuzz and benchmark.
# Safe to run again: apt-get skips what is already there.
set -eu
PKGS="build-essential pkg-config clang libclang-rt-14-dev llvm \
 libpcap-dev libssl-dev libjansson-dev libzstd-dev zstd \
 tcpdump tshark wireshark-common libtrace-tools tcpreplay \
 python3 xxd hyperfine time \
 softflowd nfdump libfixbuf-tools libcap2-bin"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" |
	$SUDO debconf-set-selections 2>/dev/null || true
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
