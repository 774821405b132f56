#!/usr/bin/env python3
"""CPython's asyncio beside conclab's HTTP server (bench/server/httpd): the same
small HTTP/1.1 server on asyncio's streams (asyncio.start_server), with the same
reply, flags and life, so that wrk meets all of them alike.

    python3 bench/python/http_server.py [--delay-ms N] [--work-us N] [--duration S] [--drain-ms N]

First line `listening 127.0.0.1:PORT`; last, one JSON object of its counts.
SIGTERM (or the parent's death) stops it gracefully: the listener closes, idle
connections close, requests in flight get their reply with "Connection: close";
SIGINT stops it at once (exit 130).
"""
import argparse
import asyncio
import ctypes
import json
import resource
import signal
import sys
import time

BODY = b"hello, world\n"
PR_SET_PDEATHSIG = 1


def reply(status, body, close):
    reason = {200: "OK", 400: "Bad Request", 431: "Request Header Fields Too Large", 501: "Not Implemented"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body


OK = reply(200, BODY, False)
OK_CLOSE = reply(200, BODY, True)


class Server:
    def __init__(self, args):
        self.args = args
        self.counts = dict(accepted=0, requests=0, responses=0, dropped=0, bad=0, refused=0, peak_open=0)
        self.conns = {}  # writer -> idle (waiting for its next request)
        self.draining = False
        self.empty = asyncio.Event()

    async def handle(self, reader, writer):
        c = self.counts
        c["accepted"] += 1
        self.conns[writer] = True
        c["peak_open"] = max(c["peak_open"], len(self.conns))
        pending = False
        try:
            while not self.draining:
                self.conns[writer] = True  # idle: waiting for its next request
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    c["bad"] += 1
                    writer.write(reply(431, b"Request Header Fields Too Large\n", True))
                    break
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self.conns[writer] = False
                status, keep, length = self.parse(head)
                if status:
                    c["bad"] += 1
                    writer.write(reply(status, b"refused\n", True))
                    break
                if length:
                    await reader.readexactly(length)
                c["requests"] += 1
                pending = True
                if self.args.work_us:
                    end = time.perf_counter() + self.args.work_us / 1e6
                    while time.perf_counter() < end:  # CPU work: every other connection waits
                        pass
                if self.args.delay_ms:
                    await asyncio.sleep(self.args.delay_ms / 1000)
                close = not keep or self.draining
                writer.write(OK_CLOSE if close else OK)
                await writer.drain()
                pending = False
                c["responses"] += 1
                if close:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if pending:
                c["dropped"] += 1
            del self.conns[writer]
            writer.close()
            if self.draining and not self.conns:
                self.empty.set()

    @staticmethod
    def parse(head):
        """(refusal status or 0, keep-alive, Content-Length) of a request's head."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
            return 400, False, 0
        conn, length = "", 0
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                return 400, False, 0
            name, value = name.strip().lower(), value.strip().lower()
            if name == "connection":
                conn = value
            elif name == "content-length":
                if not value.isdigit() or int(value) > 8192:
                    return 400, False, 0
                length = int(value)
            elif name == "transfer-encoding":
                return 501, False, 0
        keep = "close" not in conn if parts[2] == "HTTP/1.1" else "keep-alive" in conn
        return 0, keep, length


async def serve(args):
    loop = asyncio.get_running_loop()
    srv = Server(args)
    stop, abort = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, stop.set)
    loop.add_signal_handler(signal.SIGINT, abort.set)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", 0, backlog=4096)
    print("listening 127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(abort.wait())]
    if args.duration:
        waits.append(asyncio.create_task(asyncio.sleep(args.duration)))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    by = "SIGINT" if abort.is_set() else "SIGTERM" if stop.is_set() else "duration"
    srv.draining = True
    server.close()
    for writer, idle in list(srv.conns.items()):
        if idle:
            writer.close()  # its handler sees the end of the stream
    if srv.conns and not abort.is_set() and args.drain_ms:
        ends = [asyncio.create_task(srv.empty.wait()), waits[1]]
        await asyncio.wait(ends, timeout=args.drain_ms / 1000, return_when=asyncio.FIRST_COMPLETED)
        by = "SIGINT" if abort.is_set() else by
    for t in asyncio.all_tasks():
        if t is not asyncio.current_task():
            t.cancel()
    await asyncio.sleep(0)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    usage = {"cpu_s": round(ru.ru_utime + ru.ru_stime, 6), "voluntary_cs": ru.ru_nvcsw, "involuntary_cs": ru.ru_nivcsw}
    print(json.dumps({"design": "cpython-asyncio", "stopped_by": by} | srv.counts | usage, separators=(",", ":")), flush=True)
    return 130 if by == "SIGINT" else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--work-us", type=int, default=0)
    ap.add_argument("--duration", type=float, default=0)
    ap.add_argument("--drain-ms", type=int, default=1000)
    a = ap.parse_args()
    if not 0 <= a.delay_ms <= 10000 or not 0 <= a.work_us <= 1000000 or not 0 <= a.drain_ms <= 60000:
        ap.error("--delay-ms 0 to 10000, --work-us 0 to 1000000, --drain-ms 0 to 60000")
    if a.duration and not 0.1 <= a.duration <= 3600:
        ap.error("--duration: 0.1 to 3600 s")
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.exit(asyncio.run(serve(a)))


if __name__ == "__main__":
    main()
