#!/usr/bin/env python3
"""Floods a towerpost with connections from N distinct loopback addresses.

Each connection comes from its own source address in 127.0.0.0/8
(127.1.0.0 upwards), says EHLO and MAIL FROM (one connection and one
message event for the rate limiter), and quits. Bounded: at most N
connections and at most LIMIT seconds. Prints connections made and the
replies seen. Used by anvil-flood.sh to measure the server's memory.

usage: anvil-flood.py PORT N [LIMIT_SECONDS]
"""
import socket
import sys
import time


def reply(f):
    while True:
        line = f.readline()
        if not line:
            return ""
        if line[3:4] != b"-":
            return line.decode(errors="replace").strip()


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0
    deadline = time.time() + limit
    codes = {}
    done = 0
    for i in range(n):
        if time.time() > deadline:
            break
        addr = "127.%d.%d.%d" % (1 + (i >> 16), (i >> 8) & 255, i & 255)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.bind((addr, 0))
            s.connect(("127.0.0.1", port))
            f = s.makefile("rb")
            for cmd in (None, b"EHLO flood.test\r\n", b"MAIL FROM:<a@example.test>\r\n", b"QUIT\r\n"):
                if cmd:
                    s.sendall(cmd)
                r = reply(f)
                codes[r[:3]] = codes.get(r[:3], 0) + 1
        except OSError as e:
            codes["err:" + type(e).__name__] = codes.get("err:" + type(e).__name__, 0) + 1
        finally:
            s.close()
        done += 1
    print("connections=%d replies=%s" % (done, sorted(codes.items())))


if __name__ == "__main__":
    main()
