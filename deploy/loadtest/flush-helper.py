#!/usr/bin/env python3
"""Helpers for compare-flush.sh: a time-stamping SMTP sink and an ETRN client.

    flush-helper.py sink PORT [USER]
        Minimal ESMTP sink on 127.0.0.1:PORT.  Started as root with USER
        (e.g. nobody), it drops to that user and its primary group right
        after binding the port, before it accepts anything.  Accepts
        everything and writes one line per event to stdout (flushed at
        once):

            listening <ns>
            conn <ns> <conn#>
            msg <ns> <conn#> <msg#> <rcpt> [<rcpt> ...]

        <ns> is time.time_ns() (CLOCK_REALTIME, the clock the ETRN client
        uses too); a "msg" line is written when the end-of-data "." line has
        been read, before the 250 reply.  Message bodies are discarded.
        Advertises PIPELINING, 8BITMIME and ENHANCEDSTATUSCODES (no SIZE,
        DSN, SMTPUTF8 or CHUNKING).  Stops on SIGTERM/SIGINT.

    flush-helper.py etrn PORT SITE [TIMEOUT]
        Connects to 127.0.0.1:PORT, reads the greeting, EHLO, then takes
        the time, sends "ETRN SITE", reads the reply, takes the time, QUIT.
        Never pipelines.  Prints one line:

            t0=<ns> t1=<ns> reply=<first reply line>

        where t0 is taken right before the ETRN command is written and t1
        right after its complete reply was read.  Exit 0 if the reply is
        250, 1 otherwise (the line is still printed), 2 on a connection or
        protocol error or when TIMEOUT (default 30) seconds pass.

Loopback only: both commands bind/connect to 127.0.0.1 and nothing else.
"""

import asyncio
import os
import pwd
import signal
import socket
import sys
import time

HOST = "127.0.0.1"


# --- sink ---------------------------------------------------------------------

class Sink:
    def __init__(self):
        self.conns = 0
        self.msgs = 0

    def emit(self, text):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    async def handle(self, reader, writer):
        self.conns += 1
        conn = self.conns
        self.emit(f"conn {time.time_ns()} {conn}")
        rcpts = []
        in_data = False
        try:
            writer.write(b"220 flush-sink.invalid ESMTP\r\n")
            while True:
                line = await reader.readline()
                if not line:
                    break
                if in_data:
                    if line in (b".\r\n", b".\n"):
                        t = time.time_ns()
                        self.msgs += 1
                        self.emit(f"msg {t} {conn} {self.msgs} {' '.join(rcpts) or '-'}")
                        in_data = False
                        rcpts = []
                        writer.write(b"250 2.0.0 Ok: queued\r\n")
                    continue
                verb = line.split(maxsplit=1)[0].upper() if line.strip() else b""
                if verb == b"EHLO":
                    writer.write(b"250-flush-sink.invalid\r\n250-PIPELINING\r\n"
                                 b"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
                elif verb == b"HELO":
                    writer.write(b"250 flush-sink.invalid\r\n")
                elif verb == b"MAIL":
                    rcpts = []
                    writer.write(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    arg = line[5:].strip().decode("utf-8", "replace")
                    # "TO:<a@b> PARAMS" -> a@b
                    if ":" in arg:
                        arg = arg.split(":", 1)[1].strip()
                    arg = arg.split(" ", 1)[0].strip("<>") or "<>"
                    rcpts.append(arg)
                    writer.write(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    if rcpts:
                        in_data = True
                        writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    else:
                        writer.write(b"554 5.5.1 Error: no valid recipients\r\n")
                elif verb == b"RSET":
                    rcpts = []
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == b"NOOP":
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == b"VRFY":
                    writer.write(b"252 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"502 5.5.2 Error: command not recognized\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


def drop_privileges(user):
    pw = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("sink: could not drop root privileges")


async def run_sink(port, user):
    sink = Sink()
    server = await asyncio.start_server(sink.handle, HOST, port, backlog=256,
                                        limit=1 << 20, reuse_address=True)
    if user and os.geteuid() == 0:
        drop_privileges(user)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sink.emit(f"listening {time.time_ns()}")
    async with server:
        await stop.wait()


# --- ETRN client --------------------------------------------------------------

def read_reply(f):
    """One complete (possibly multi-line) SMTP reply; returns its lines."""
    lines = []
    while True:
        raw = f.readline(4096)
        if not raw:
            raise ConnectionError("connection closed by server")
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(text)
        if len(text) < 4 or text[3] != "-":
            return lines


def run_etrn(port, site, timeout):
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        greeting = read_reply(f)
        if not greeting[0].startswith("220"):
            raise ConnectionError("greeting: " + greeting[0])
        s.sendall(b"EHLO etrn-client.localhost\r\n")
        ehlo = read_reply(f)
        if not ehlo[-1].startswith("250"):
            raise ConnectionError("EHLO: " + ehlo[-1])
        cmd = f"ETRN {site}\r\n".encode()
        t0 = time.time_ns()
        s.sendall(cmd)
        reply = read_reply(f)
        t1 = time.time_ns()
        try:
            s.sendall(b"QUIT\r\n")
            read_reply(f)
        except (OSError, ConnectionError):
            pass
    print(f"t0={t0} t1={t1} reply={reply[0]}", flush=True)
    return 0 if reply[0].startswith("250") else 1


def main(argv):
    if len(argv) in (3, 4) and argv[1] == "sink":
        asyncio.run(run_sink(int(argv[2]), argv[3] if len(argv) == 4 else None))
        return 0
    if len(argv) in (4, 5) and argv[1] == "etrn":
        timeout = float(argv[4]) if len(argv) == 5 else 30.0
        try:
            return run_etrn(int(argv[2]), argv[3], timeout)
        except (OSError, ConnectionError) as e:
            print(f"etrn: {e}", file=sys.stderr)
            return 2
    print("usage: flush-helper.py sink PORT [USER] | etrn PORT SITE [TIMEOUT]", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
