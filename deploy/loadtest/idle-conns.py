#!/usr/bin/env python3
"""Open COUNT idle SMTP connections to HOST:PORT and hold them.

    idle-conns.py HOST PORT COUNT READY_FILE [--hold SECONDS] [--connect-timeout SECONDS]

At most 200 connects are in flight at a time (one the listen queue drops
is retried by the kernel); each connection waits for its 220 greeting and
sends nothing. When all are open and greeted, nothing has happened for 5
s, or the connect time is up, one line goes to READY_FILE:

    opened=10000 established=10000 greeted=10000 failed=0 seconds=1.234

(established: the TCP handshake completed; a server whose listen queue is
full leaves the rest connecting.) Then the connections are held until SIGTERM or --hold seconds (default
120) have passed. Used by compare.sh to measure a server's memory with
10,000 idle clients. Only loopback hosts are accepted. Python 3 stdlib.
"""

import argparse
import ipaddress
import os
import resource
import selectors
import signal
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("ready")
    p.add_argument("--hold", type=float, default=120.0)
    p.add_argument("--connect-timeout", type=float, default=60.0)
    a = p.parse_args()
    try:
        loopback = ipaddress.ip_address(a.host).is_loopback
    except ValueError:
        loopback = a.host == "localhost"
    if not loopback:
        sys.exit("idle-conns.py: load tests stay on loopback (127.0.0.0/8, ::1)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    sel = selectors.DefaultSelector()
    socks = []
    connecting = set()  # connect() not finished yet
    waiting = {}  # established, greeting not read yet: socket -> bytes
    established = greeted = failed = 0
    start = time.monotonic()
    deadline = start + a.connect_timeout
    last_progress = start
    while not stop and time.monotonic() < deadline:
        # At most 200 connects in flight; a server that stops accepting
        # (its listen queue full) keeps them there.
        while len(socks) < a.count and len(connecting) < 200:
            s = socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET)
            s.setblocking(False)
            s.connect_ex((a.host, a.port))
            sel.register(s, selectors.EVENT_WRITE)
            connecting.add(s)
            socks.append(s)
        for key, events in sel.select(timeout=0.2):
            s = key.fileobj
            last_progress = time.monotonic()
            if s in connecting:
                connecting.discard(s)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    failed += 1
                    sel.unregister(s)
                    continue
                established += 1
                waiting[s] = b""
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(512)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                waiting[s] += data
                if b"\n" not in waiting[s]:
                    continue
                if waiting[s].startswith(b"220"):
                    greeted += 1
            sel.unregister(s)
            del waiting[s]
        done_opening = len(socks) == a.count and not connecting
        if done_opening and (not waiting or time.monotonic() - last_progress > 5):
            break
    seconds = time.monotonic() - start
    with open(a.ready + ".tmp", "w") as f:
        f.write(
            f"opened={len(socks)} established={established} greeted={greeted} "
            f"failed={failed} seconds={seconds:.3f}\n"
        )
    os.replace(a.ready + ".tmp", a.ready)
    end = time.monotonic() + a.hold
    while time.monotonic() < end and not stop:
        time.sleep(0.2)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
