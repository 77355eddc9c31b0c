#!/usr/bin/env python3
"""A next hop for the soak test: answers DATA 250, 4xx or 5xx in fixed
proportions (default 80/15/5), decided by a seeded generator so that a
run can be repeated. Loopback only. Needs python3-aiosmtpd."""
import argparse, asyncio, random, signal, sys
from aiosmtpd.controller import Controller

class Handler:
    def __init__(self, ok, temp, seed):
        self.ok, self.temp = ok, temp
        self.rng = random.Random(seed)
        self.counts = {"250": 0, "451": 0, "550": 0}

    async def handle_DATA(self, server, session, envelope):
        roll = self.rng.random() * 100
        if roll < self.ok:
            code = "250"
        elif roll < self.ok + self.temp:
            code = "451"
        else:
            code = "550"
        self.counts[code] += 1
        return {"250": "250 2.0.0 Ok", "451": "451 4.3.0 soak: try again later",
                "550": "550 5.1.1 soak: no such user"}[code]

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=2526)
    p.add_argument("--ok", type=float, default=80)
    p.add_argument("--temp", type=float, default=15)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    handler = Handler(a.ok, a.temp, a.seed)
    c = Controller(handler, hostname="127.0.0.1", port=a.port)
    c.start()
    print(f"soak sink on 127.0.0.1:{a.port}", flush=True)
    # A background job of a script ignores SIGINT: stop on SIGTERM.
    def stop(*_):
        c.stop()
        print(f"sink replies: {handler.counts}", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.pause()

if __name__ == "__main__":
    main()
