#!/usr/bin/env python3
# ipfix_tcpcol.py - helpers for tests/integration/ipfix_tcp.sh.  Nothing
# here decodes flow records: ipfixDump does that.
#
#   collect PORT OUT READY [rst]
#       An IPFIX collector on 127.0.0.1:PORT over TCP.  Creates READY once
#       listening.  Each whole message received (RFC 7011 header: version
#       10, length) is appended to OUT, so OUT is an IPFIX file; a
#       message cut by the end of a connection is not written (as a
#       collector discards it) and its bytes go to OUT.partial.  Exits 0
#       when the exporter closes the connection.  SIGTERM kills it at
#       once: the connection is closed with what is unread, with a TCP
#       reset when "rst" is given (an abortive close, as a crashed host's
#       stack answers), else with a FIN (a killed process).
#   split TRACE PREFIX N1 N2
#       A pcap cut into PREFIX.1 (file header and packets [0, N1)),
#       PREFIX.2 ([N1, N2)) and PREFIX.3 (the rest), whose concatenation
#       is TRACE byte for byte; prints the time (integer seconds) of
#       packet N1 and of packet N2.
#   idle PID PORT
#       Waits (at most 120 s, else exits 1) until process PID has taken
#       every byte written into the pipe on descriptor 3, is blocked
#       reading it (every thread asleep in a pipe read or a futex), and
#       no TCP connection to or from PORT holds bytes unacknowledged or
#       unread.  Then nothing PID sent is in flight, and
#       PID sends nothing more until more input is written.
#   closed PORT
#       Waits (at most 120 s) until no TCP connection with PORT is
#       established: the exporter's side has seen the collector go.
#   exports DUMP
#       The export time (epoch seconds) of each message of ipfixDump's
#       output that holds data records, one per line.
import calendar
import fcntl
import os
import re
import select
import signal
import socket
import struct
import sys
import termios
import time


def collect(port, out, ready, rst):
    rd, wr = socket.socketpair()
    rd.setblocking(False)
    wr.setblocking(False)
    signal.set_wakeup_fd(wr.fileno())
    signal.signal(signal.SIGTERM, lambda *_: None)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4)
    open(ready, "w").close()
    f = open(out, "ab", buffering=0)
    c, buf = None, b""

    def die():
        if c is not None and rst:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        if buf:
            open(out + ".partial", "ab").write(buf)
        os._exit(0)

    while True:
        r, _, _ = select.select([rd, c if c is not None else s], [], [])
        if s in r:
            c, _ = s.accept()
            s.close()
            continue
        if c is not None and c in r:
            b = c.recv(1 << 16)
            if not b:
                if buf:
                    open(out + ".partial", "ab").write(buf)
                return 0
            buf += b
            while len(buf) >= 4:
                ver, mlen = struct.unpack("!HH", buf[:4])
                if ver != 10 or mlen < 16:
                    sys.stderr.write("not an IPFIX stream at byte %d\n" %
                                     os.fstat(f.fileno()).st_size)
                    return 1
                if len(buf) < mlen:
                    break
                f.write(buf[:mlen])
                buf = buf[mlen:]
        if rd in r:
            die()


def split(trace, prefix, n1, n2):
    data = open(trace, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    at, i, cuts, secs = 24, 0, [], []
    while at + 16 <= len(data):
        if i in (n1, n2):
            cuts.append(at)
            secs.append(struct.unpack(end + "I", data[at:at + 4])[0])
        cap = struct.unpack(end + "I", data[at + 8:at + 12])[0]
        at += 16 + cap
        i += 1
    if len(cuts) != 2:
        sys.stderr.write("trace has %d packets, fewer than %d\n" % (i, n2))
        return 1
    bounds = [0, cuts[0], cuts[1], len(data)]
    for k in range(3):
        open("%s.%d" % (prefix, k + 1), "wb").write(
            data[bounds[k]:bounds[k + 1]])
    print(secs[0], secs[1])
    return 0


def tcp_socks(port):
    """(state, tx_queue, rx_queue) of each TCP socket with port."""
    res = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            lp = int(f[1].split(":")[1], 16)
            rp = int(f[2].split(":")[1], 16)
            if port in (lp, rp):
                tx, rx = (int(x, 16) for x in f[4].split(":"))
                res.append((int(f[3], 16), tx, rx))
    return res


def idle(pid, port):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.02)
        # order matters: an empty pipe, then the reader blocked on it,
        # so the reader cannot wake up after the check
        n = struct.unpack("i", fcntl.ioctl(3, termios.FIONREAD,
                                           b"\0" * 4))[0]
        if n != 0:
            continue
        # every thread asleep: one reading the pipe, any other waiting
        # for it (a read-ahead thread may do the read)
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
            wch = [open("/proc/%d/task/%s/wchan" % (pid, t)).read()
                   for t in tasks]
        except OSError:
            return 1
        if (not any(w.endswith("pipe_read") for w in wch) or
                not all(w.endswith("pipe_read") or w.startswith("futex")
                        for w in wch)):
            continue
        # 10 is LISTEN: its rx_queue is the accept backlog
        if all(tx == 0 and rx == 0 for st, tx, rx in tcp_socks(port)
               if st != 10):
            return 0
    sys.stderr.write("process %d never went idle\n" % pid)
    return 1


def closed(port):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(st != 1 for st, _, _ in tcp_socks(port)):
            return 0
        time.sleep(0.02)
    return 1


def exports(dump):
    cur = None
    for line in open(dump, errors="replace"):
        m = re.match(r"export time: (\d+-\d+-\d+ \d+:\d+:\d+)", line)
        if m:
            cur = calendar.timegm(time.strptime(m.group(1),
                                                "%Y-%m-%d %H:%M:%S"))
        elif line.startswith("--- data record") and cur is not None:
            print(cur)
            cur = None
    return 0


def main(a):
    if a[0] == "collect":
        return collect(int(a[1]), a[2], a[3], len(a) > 4 and a[4] == "rst")
    if a[0] == "split":
        return split(a[1], a[2], int(a[3]), int(a[4]))
    if a[0] == "idle":
        return idle(int(a[1]), int(a[2]))
    if a[0] == "closed":
        return closed(int(a[1]))
    if a[0] == "exports":
        return exports(a[1])
    sys.stderr.write("unknown command '%s'\n" % a[0])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
