#!/usr/bin/env python3
# ipfix_udpcol.py PORT OUT.pcap [IDLE_SECONDS] - a UDP collector for
# tests/integration/ipfix.sh: every datagram received on 127.0.0.1:PORT
# becomes one raw-IP packet in OUT.pcap, so tshark can dissect what
# weir-capture sent.  Stops after IDLE_SECONDS (default 3) without data.
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE (root)
except OSError:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(float(sys.argv[3]) if len(sys.argv) > 3 else 3)
out = open(sys.argv[2], "wb")
out.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 101))
n = 0
while True:
    try:
        b = s.recv(65535)
    except socket.timeout:
        break
    ip = struct.pack("!BBHHHBBH4s4sHHHH", 0x45, 0, 28 + len(b), n & 0xffff, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]), 40000, int(sys.argv[1]), 8 + len(b), 0)
    out.write(struct.pack("<IIII", 1700000000, n, len(ip) + len(b), len(ip) + len(b)) + ip + b)
    n += 1
out.close()
