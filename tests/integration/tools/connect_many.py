#!/usr/bin/env python3
# Client for whoami_server.py: opens many connections (TCP, or UDP exchanges) from chosen source
# addresses and reports, per connection, the source address and port the server saw.
"""Open N connections to a whoami server and print what the server saw, as JSON on stdout.

Output: {"elapsed_s": F, "results": [{"i", "src", "dst", "sport", "ok", "seen", "seen_port",
"ms", "error", "end_ok", "end_seen", "end_error", "exchanges", "exchange_max_ms"}, ...]} in
connection order. "end_*" are set only when connections are held: after the hold each connection
asks "whoami" again, which tells whether it survived (and through which address it now arrives).
With --exchange-every S a held connection also asks "whoami" every S seconds while it is held:
"exchanges" counts the answers, "exchange_max_ms" is the slowest; a missing answer, or one that
names another address than the first, ends the hold with end_ok false.
--src and --dst take "A", "A-B" or "A,B-C"; connection i uses the i-th of each, round-robin.

--hold-stdin keeps every connection open until stdin reaches EOF; "ESTABLISHED ok=N failed=M"
is printed on stderr once every connection has had its first answer.
--serve runs many requests in one process: each stdin line is a JSON list of arguments, each
answer one line of the JSON above (or {"error": "..."}).
"""

import argparse
import asyncio
import ipaddress
import json
import os
import resource
import socket
import struct
import sys
import time


def parse_sources(spec: str | None) -> list[str | None]:
    """"A", "A-B" (inclusive range), or a comma list of those, IPv4 or IPv6 (a range stays in
    one family); None binds nothing."""
    if not spec:
        return [None]
    sources: list[str | None] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            first, last = (ipaddress.ip_address(x.strip()) for x in part.split("-", 1))
            if first.version != last.version:
                raise ValueError(f"source range {part!r} mixes IPv4 and IPv6")
            if last < first:
                raise ValueError(f"empty source range {part!r}")
            if int(last) - int(first) >= 65536:
                raise ValueError(f"source range {part!r} holds more than 65536 addresses")
            make = type(first)
            sources.extend(str(make(a)) for a in range(int(first), int(last) + 1))
        else:
            sources.append(str(ipaddress.ip_address(part)))
    return sources


def parse_answer(line: bytes) -> tuple[str, int]:
    ip, port = line.decode().split()
    return ip, int(port)


def error_text(e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno)     # asyncio puts "Connect call failed ..." in strerror
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


class Run:
    def __init__(self, args: argparse.Namespace, sources: list[str | None], dests: list[str]):
        self.args = args
        self.sources = sources
        self.dests = dests
        self.results: list[dict] = []
        self.first_done = 0
        self.first_ok = 0
        self.all_first_done = asyncio.Event()
        self.release = asyncio.Event()

    def new_result(self, i: int) -> dict:
        return {"i": i, "src": self.sources[i % len(self.sources)],
                "dst": self.dests[i % len(self.dests)], "sport": None, "ok": False,
                "seen": None, "seen_port": None, "ms": None, "error": None,
                "end_ok": None, "end_seen": None, "end_error": None,
                "exchanges": 0, "exchange_max_ms": None}

    def mark_first_done(self, ok: bool) -> None:
        self.first_done += 1
        self.first_ok += ok
        if self.first_done == self.args.n:
            self.all_first_done.set()

    async def tcp_one(self, i: int, sem: asyncio.Semaphore) -> dict:
        a = self.args
        r = self.new_result(i)
        writer = None
        async with sem:
            start = time.monotonic()
            try:
                local = (r["src"], 0) if r["src"] else None
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(r["dst"], a.port, local_addr=local), a.timeout)
                r["sport"] = writer.get_extra_info("sockname")[1]
                line = await asyncio.wait_for(reader.readline(), a.timeout)
                if not line:
                    raise ConnectionResetError("closed without an answer")
                r["seen"], r["seen_port"] = parse_answer(line)
                r["ms"] = round((time.monotonic() - start) * 1000, 3)
                r["ok"] = True
            except Exception as e:  # noqa: BLE001 - every failure is a result here
                r["error"] = error_text(e)
            self.mark_first_done(r["ok"])
            if writer is not None and r["ok"]:
                await self.after_first(r, reader, writer)
            if writer is not None:
                await self.close(writer)
        return r

    async def after_first(self, r: dict, reader, writer) -> None:
        a = self.args
        try:
            left = a.send
            while left > 0:
                # Whole lines only, so the server still sees a later "whoami" as a line of its own.
                size = min(left, 1024)
                writer.write(b"x" * (size - 1) + b"\n")
                left -= size
                await writer.drain()
            if a.hold_stdin or a.hold > 0:
                if a.exchange_every > 0:
                    await self.exchange_while_held(r, reader, writer)
                elif a.hold_stdin:
                    await self.release.wait()
                else:
                    await asyncio.sleep(a.hold)
                writer.write(b"whoami\n")
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), a.timeout)
                if not line:
                    raise ConnectionResetError("closed by peer")
                r["end_seen"] = parse_answer(line)[0]
                r["end_ok"] = True
        except Exception as e:  # noqa: BLE001
            r["end_ok"] = False
            r["end_error"] = error_text(e)

    async def exchange_while_held(self, r: dict, reader, writer) -> None:
        """Ask "whoami" every --exchange-every seconds until the hold ends; raises when an
        answer is missing or names another address than the first answer did."""
        a = self.args
        loop = asyncio.get_running_loop()
        end = None if a.hold_stdin else loop.time() + a.hold
        while True:
            wait = a.exchange_every if end is None else min(a.exchange_every, end - loop.time())
            if wait > 0:
                try:
                    await asyncio.wait_for(self.release.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            if self.release.is_set() or (end is not None and loop.time() >= end):
                return
            start = time.monotonic()
            writer.write(b"whoami\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), a.timeout)
            if not line:
                raise ConnectionResetError(f"closed by peer after {r['exchanges']} exchanges")
            seen = parse_answer(line)[0]
            if seen != r["seen"]:
                raise ConnectionError(f"exchange {r['exchanges'] + 1} came from {seen}, "
                                      f"not {r['seen']}")
            ms = round((time.monotonic() - start) * 1000, 3)
            r["exchanges"] += 1
            r["exchange_max_ms"] = max(ms, r["exchange_max_ms"] or 0)

    async def close(self, writer) -> None:
        if self.args.rst:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, asyncio.TimeoutError):
            pass

    async def udp_one(self, i: int, sem: asyncio.Semaphore) -> dict:
        a = self.args
        r = self.new_result(i)
        loop = asyncio.get_running_loop()
        async with sem:
            start = time.monotonic()
            answer: asyncio.Future = loop.create_future()

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data, addr):
                    if not answer.done():
                        answer.set_result(data)

                def error_received(self, exc):
                    if not answer.done():
                        answer.set_exception(exc)

            transport = None
            try:
                local = (r["src"], 0) if r["src"] else None
                transport, _ = await loop.create_datagram_endpoint(
                    Proto, local_addr=local, remote_addr=(r["dst"], a.port))
                r["sport"] = transport.get_extra_info("sockname")[1]
                transport.sendto(b"whoami\n")
                data = await asyncio.wait_for(answer, a.timeout)
                r["seen"], r["seen_port"] = parse_answer(data)
                r["ms"] = round((time.monotonic() - start) * 1000, 3)
                r["ok"] = True
            except Exception as e:  # noqa: BLE001
                r["error"] = error_text(e)
            finally:
                if transport is not None:
                    transport.close()
            self.mark_first_done(r["ok"])
        return r

    async def run(self) -> list[dict]:
        a = self.args
        concurrency = a.n if a.hold_stdin else max(1, min(a.concurrency, a.n))
        sem = asyncio.Semaphore(concurrency)
        one = self.udp_one if a.udp else self.tcp_one
        tasks = [asyncio.create_task(one(i, sem)) for i in range(a.n)]
        if a.hold_stdin:
            await self.all_first_done.wait()
            print(f"ESTABLISHED ok={self.first_ok} failed={a.n - self.first_ok}",
                  file=sys.stderr, flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.read)
            self.release.set()
        return list(await asyncio.gather(*tasks))


class ArgumentError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so --serve can answer a bad request and carry on."""

    def error(self, message):
        raise ArgumentError(message)


def make_parser() -> Parser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dst", default="192.0.2.10",
                        help='server address: "A", "A-B" or "A,B-C" (round-robin); IPv4 or IPv6')
    parser.add_argument("--port", type=int, help="server port (default 8080, with --udp 8081)")
    parser.add_argument("--src", help='source address: "A", "A-B" or "A,B-C" (round-robin); '
                                      'IPv4 or IPv6')
    parser.add_argument("-n", type=int, default=1, help="number of connections")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=2.0, help="per step, seconds")
    parser.add_argument("--udp", action="store_true", help="one UDP exchange per 'connection'")
    parser.add_argument("--send", type=int, default=0, help="bytes to send after the answer")
    parser.add_argument("--hold", type=float, default=0, help="keep each connection open S seconds")
    parser.add_argument("--hold-stdin", action="store_true", help="keep all open until stdin EOF")
    parser.add_argument("--exchange-every", type=float, default=0,
                        help="while held, ask whoami every S seconds (checks the path end to end)")
    parser.add_argument("--rst", action="store_true", help="close with RST (no TIME_WAIT)")
    parser.add_argument("--serve", action="store_true",
                        help="read one JSON list of these arguments per stdin line and answer "
                             "each with one JSON line (saves interpreter start-up per run)")
    return parser


def parse_request(parser: Parser, argv: list[str]) -> tuple[argparse.Namespace, list, list]:
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("-n must be at least 1")
    if args.udp and (args.hold or args.hold_stdin or args.send):
        parser.error("--udp does not hold connections or send data")
    if args.exchange_every < 0 or (args.exchange_every and not (args.hold or args.hold_stdin)):
        parser.error("--exchange-every needs --hold or --hold-stdin and a positive interval")
    if args.port is None:
        args.port = 8081 if args.udp else 8080
    try:
        sources = parse_sources(args.src)
        dests = parse_sources(args.dst)
    except ValueError as e:
        parser.error(str(e))
    if dests == [None]:
        parser.error("--dst must name an address")
    return args, sources, dests


async def execute(args: argparse.Namespace, sources: list, dests: list) -> dict:
    start = time.monotonic()
    results = await Run(args, sources, dests).run()
    return {"elapsed_s": round(time.monotonic() - start, 3), "results": results}


async def serve(parser: Parser) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        try:
            args, sources, dests = parse_request(parser, json.loads(line))
            if args.hold_stdin or args.serve:
                raise ArgumentError("--hold-stdin and --serve are not available in --serve")
            answer = await execute(args, sources, dests)
        except (ArgumentError, ValueError, TypeError) as e:
            answer = {"error": str(e)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> int:
    parser = make_parser()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        args, sources, dests = parse_request(parser, sys.argv[1:])
    except ArgumentError as e:
        parser.print_usage(sys.stderr)
        print(f"connect_many: {e}", file=sys.stderr)
        return 2
    if args.serve:
        asyncio.run(serve(parser))
        return 0
    json.dump(asyncio.run(execute(args, sources, dests)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
