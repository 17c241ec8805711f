#!/usr/bin/env python3
# The LAN client of bench/failover.py: opens new TCP connections to the whoami server at a fixed
# rate, each with a short timeout, and prints one JSON line per finished attempt.
"""Open a new TCP connection every 1/RATE seconds until stdin reaches EOF.

Each attempt connects from the next source address (round-robin), reads the server's answer
(the address it saw) and closes with RST. One line per attempt on stdout:
{"t": START, "ok": bool, "seen": ADDR|null, "error": TEXT|null}, where START is
time.monotonic() when the attempt began (CLOCK_MONOTONIC is the same in every namespace).
"""

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import struct
import sys
import time


def sources(spec: str) -> list[str]:
    """The addresses of "A" or "A-B", IPv4 or IPv6."""
    first, _, last = spec.partition("-")
    lo = ipaddress.ip_address(first)
    hi = ipaddress.ip_address(last or first)
    if lo.version != hi.version or hi < lo:
        raise ValueError(f"bad source range {spec!r}")
    return [str(ipaddress.ip_address(a)) for a in range(int(lo), int(hi) + 1)]


async def attempt(dst: str, port: int, src: str, timeout: float) -> None:
    start = time.monotonic()
    result = {"t": start, "ok": False, "seen": None, "error": None}
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(dst, port, local_addr=(src, 0)), timeout)
        line = await asyncio.wait_for(reader.readline(), max(0.05, start + timeout - time.monotonic()))
        if not line:
            raise ConnectionResetError("closed without an answer")
        result["seen"] = line.decode().split()[0]
        result["ok"] = True
    except asyncio.TimeoutError:
        result["error"] = "timeout"
    except OSError as e:
        result["error"] = os.strerror(e.errno) if e.errno else str(e)
    finally:
        if writer is not None:
            sock = writer.get_extra_info("socket")
            if sock is not None:  # RST: no TIME_WAIT pile-up over a long run
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.run_in_executor(None, sys.stdin.read)
    hosts = sources(args.src)
    period = 1.0 / args.rate
    tasks: set[asyncio.Task] = set()
    next_at = time.monotonic()
    i = 0
    while not stop.done():
        task = asyncio.create_task(attempt(args.dst, args.port, hosts[i % len(hosts)], args.timeout))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
        next_at += period
        delay = next_at - time.monotonic()
        if delay < 0:  # fell behind (loaded machine): keep the rate, do not burst
            next_at = time.monotonic()
            delay = 0
        await asyncio.sleep(delay)
    if tasks:
        await asyncio.wait(tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dst", default="192.0.2.10", help="IPv4 or IPv6 (then --src IPv6 too)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--src", default="192.168.88.11-192.168.88.40",
                        help='"A" or "A-B" (e.g. fd00:88::11-fd00:88::2e)')
    parser.add_argument("--rate", type=float, default=100.0, help="new connections per second")
    parser.add_argument("--timeout", type=float, default=0.5, help="per attempt, seconds")
    args = parser.parse_args()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
