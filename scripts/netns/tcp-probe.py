#!/usr/bin/env python3
"""TCP probes for scripts/netns-cluster.sh selftest (no ping/iperf on the machine needed).

  tcp-probe.py pair SERVER_NS SERVER_ADDR CLIENT_NS BYTES
      listen on SERVER_ADDR inside namespace SERVER_NS, connect from CLIENT_NS and send BYTES
      (0: connect only). Prints "received N bytes T s" where T runs from just before the
      client's connect() to the server's receipt of the last byte (CLOCK_MONOTONIC is one clock
      for all network namespaces), or "connected" for BYTES = 0. Exit 1 on any failure.
  tcp-probe.py connect ADDR
      reachability of ADDR from the current namespace: a TCP connect to port 9 (discard);
      "connection refused" means a host answered (reachable), exit 0; unreachable or no answer
      within 3 s: exit 1.
  tcp-probe.py serve ADDR / send ADDR PORT BYTES: the two halves of `pair`.
"""
import errno
import socket
import subprocess
import sys
import time

CHUNK = 1 << 20


def serve(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((addr, 0))
    s.listen(1)
    s.settimeout(20)
    print(s.getsockname()[1], flush=True)
    c, _ = s.accept()
    c.settimeout(60)
    n, last = 0, time.monotonic()
    while True:
        b = c.recv(CHUNK)
        if not b:
            break
        n += len(b)
        last = time.monotonic()
    print(n, repr(last), flush=True)


def send(addr, port, nbytes):
    t0 = time.monotonic()
    c = socket.create_connection((addr, port), timeout=10)
    buf = b"\0" * CHUNK
    left = nbytes
    while left > 0:
        k = c.send(buf[: min(left, CHUNK)])
        left -= k
    c.shutdown(socket.SHUT_WR)
    c.close()
    print(repr(t0), flush=True)


def pair(server_ns, addr, client_ns, nbytes):
    me = [sys.executable, __file__]
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns] + me + ["serve", addr],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = srv.stdout.readline().strip()
        if not port:
            sys.exit("server in %s did not start: %s" % (server_ns, srv.stderr.read().strip()))
        cli = subprocess.run(["ip", "netns", "exec", client_ns] + me + ["send", addr, port, str(nbytes)],
                             capture_output=True, text=True, timeout=120)
        if cli.returncode != 0:
            sys.exit("client in %s failed: %s" % (client_ns, cli.stderr.strip()))
        out, err = srv.communicate(timeout=120)
        if srv.returncode != 0:
            sys.exit("server in %s failed: %s" % (server_ns, err.strip()))
        got, last = out.split()
        if int(got) != nbytes:
            sys.exit("sent %d bytes, server received %s" % (nbytes, got))
        if nbytes == 0:
            print("connected")
        else:
            print("received %s bytes %.6f s" % (got, float(last) - float(cli.stdout.strip())))
    finally:
        if srv.poll() is None:
            srv.kill()


def connect(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((addr, 9))
        print("reachable (port 9 open)")
    except ConnectionRefusedError:
        print("reachable (connection refused by the host)")
    except OSError as e:
        sys.exit("unreachable: %s" % (errno.errorcode.get(e.errno, e) if e.errno else e))


if __name__ == "__main__":
    a = sys.argv[1:]
    try:
        if a[:1] == ["pair"] and len(a) == 5:
            pair(a[1], a[2], a[3], int(a[4]))
        elif a[:1] == ["connect"] and len(a) == 2:
            connect(a[1])
        elif a[:1] == ["serve"] and len(a) == 2:
            serve(a[1])
        elif a[:1] == ["send"] and len(a) == 4:
            send(a[1], int(a[2]), int(a[3]))
        else:
            sys.exit(__doc__)
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        sys.exit("%s: %s" % (type(e).__name__, e))
