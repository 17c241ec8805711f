#!/usr/bin/env python3
# Long-lived TCP connections with data flowing both ways all the time, for failover tests that
# must notice a reset or a stall in either direction (the HA pair lab, issue 14).
"""stream.py server|client: TCP connections that carry data both ways every --interval.

server --bind A --port P: on accept writes "IP PORT\\n" (the source it saw), then a 64-byte
chunk every --interval seconds, and discards whatever the client sends. Prints READY.

client --dst A --port P --src SPEC -n N: opens N connections (SPEC as connect_many.py: "A",
"A-B", "A,B-C", round-robin), reads the server's first line, then sends 64 bytes every
--interval and reads the server's chunks. Once every connection has its first line it prints
"ESTABLISHED ok=N failed=M" on stderr; at stdin EOF it closes them and prints JSON on stdout:
{"results": [{"src", "port", "seen", "ok", "error", "alive", "end_error", "max_gap_ms",
"gap_at", "received"}]} where port is the client's local port, max_gap_ms the longest time
between two chunks from the server while held (a stall that lasts until the release counts
too), gap_at the time.time() that gap ended, alive whether the connection was still working at
the end: no reset, no EOF, no error in either direction, and data from the server within the
last STALL_S seconds. The ESTABLISHED line ends with ports=ADDR:PORT,... (every connection that
was established).
"""

import argparse
import asyncio
import json
import sys
import time

from connect_many import error_text, parse_sources

CHUNK = 64
STALL_S = 0.5       # no data from the server for this long before the release: not alive


async def serve(args: argparse.Namespace) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        writer.write(f"{peer[0]} {peer[1]}\n".encode())

        async def drain_input() -> None:
            while await reader.read(1 << 16):
                pass

        reading = asyncio.create_task(drain_input())
        try:
            while not reading.done():
                writer.write(b"d" * CHUNK)
                await writer.drain()
                await asyncio.sleep(args.interval)
        except OSError:
            pass
        finally:
            reading.cancel()
            writer.close()

    server = await asyncio.start_server(handle, args.bind, args.port, reuse_address=True)
    print("READY", flush=True)
    async with server:
        await server.serve_forever()


async def one(args: argparse.Namespace, src: str | None, established: list,
              all_up: asyncio.Event, release: asyncio.Event, r: dict) -> dict:
    """One connection; r (shared with the caller, filled in as it goes) is its result."""
    r |= {"src": src, "port": None, "seen": None, "ok": False, "error": None, "alive": False,
         "end_error": None, "max_gap_ms": 0.0, "gap_at": None, "received": 0}
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            args.dst, args.port, local_addr=(src, 0) if src else None), args.timeout)
        line = await asyncio.wait_for(reader.readline(), args.timeout)
        if not line:
            raise ConnectionResetError("closed without an answer")
        r["seen"] = line.decode().split()[0]
        local, r["port"] = writer.get_extra_info("sockname")[:2]
        r["src"] = r["src"] or local
        r["ok"] = True
    except Exception as e:  # noqa: BLE001 - every failure is a result
        r["error"] = error_text(e)
    established.append(r["ok"])
    if len(established) == args.n:
        all_up.set()
    if not r["ok"]:
        if writer is not None:
            writer.close()
        return r

    async def send() -> None:
        while not release.is_set():
            writer.write(b"u" * CHUNK)
            await writer.drain()
            try:
                await asyncio.wait_for(release.wait(), args.interval)
            except asyncio.TimeoutError:
                pass

    last = [time.time()]

    def gap_ends(now: float) -> None:
        if all_up.is_set() and (now - last[0]) * 1000 > r["max_gap_ms"]:
            r["max_gap_ms"], r["gap_at"] = round((now - last[0]) * 1000, 1), now
        last[0] = now

    async def receive() -> None:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                raise ConnectionResetError("closed by peer")
            r["received"] += len(data)
            gap_ends(time.time())

    sending, receiving = asyncio.create_task(send()), asyncio.create_task(receive())
    releasing = asyncio.create_task(release.wait())
    done, _ = await asyncio.wait({sending, receiving, releasing},
                                 return_when=asyncio.FIRST_COMPLETED)
    for task in (sending, receiving):
        if task in done and task.exception() is not None:
            r["end_error"] = error_text(task.exception())
    now = time.time()
    r["alive"] = r["end_error"] is None and now - last[0] < STALL_S
    gap_ends(now)       # a stall that lasts until the release counts too
    for task in (sending, receiving, releasing):
        task.cancel()
    writer.close()
    return r


async def client(args: argparse.Namespace) -> None:
    sources = parse_sources(args.src)
    established: list = []
    all_up, release = asyncio.Event(), asyncio.Event()
    results: list[dict] = []

    async def track(i: int) -> dict:
        r: dict = {}
        results.append(r)
        return await one(args, sources[i % len(sources)], established, all_up, release, r)
    tasks = [asyncio.create_task(track(i)) for i in range(args.n)]
    await all_up.wait()
    ports = ",".join(f"{r['src']}:{r['port']}" for r in results if r.get("port"))
    print(f"ESTABLISHED ok={sum(established)} failed={args.n - sum(established)} ports={ports}",
          file=sys.stderr, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    release.set()
    results = await asyncio.gather(*tasks)
    json.dump({"results": results}, sys.stdout)
    sys.stdout.write("\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("server", "client"))
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--dst", default="192.0.2.10")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--src")
    parser.add_argument("-n", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between chunks")
    parser.add_argument("--timeout", type=float, default=5.0, help="to connect and get the "
                                                                   "first line, seconds")
    args = parser.parse_args()
    asyncio.run(serve(args) if args.mode == "server" else client(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
