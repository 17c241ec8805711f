#!/usr/bin/env python3
# A "what is my address" server for the lab's internet: each TCP connection and each UDP datagram
# is answered with the source address and port the server saw, as one line "IP PORT\n".
"""whoami server.

TCP: on accept the server writes "IP PORT\\n". Then it reads lines until the client closes:
a line "whoami" is answered with "IP PORT\\n" again (so a client holding a connection can check it
still works end to end), any other line is discarded (so clients can push bytes).
UDP: every datagram is answered with "IP PORT\\n" to its sender.
Prints "READY" on stdout once every socket is bound.
"""

import argparse
import asyncio
import resource
import signal
import socket
import sys

IDLE_TIMEOUT_S = 600
LINE_LIMIT = 1 << 20


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def handle_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")
    answer = f"{peer[0]} {peer[1]}\n".encode()
    try:
        writer.write(answer)
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
            if not line:
                break
            if line == b"whoami\n":
                writer.write(answer)
                await writer.drain()
    except (OSError, ValueError, asyncio.TimeoutError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


class WhoamiUdp(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.transport.sendto(f"{addr[0]} {addr[1]}\n".encode(), addr)


async def serve(bind: str, tcp_port: int, udp_port: int) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    if tcp_port:
        servers.append(await asyncio.start_server(
            handle_tcp, bind, tcp_port, reuse_address=True, backlog=4096, limit=LINE_LIMIT))
    if udp_port:
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        await loop.create_datagram_endpoint(WhoamiUdp, local_addr=(bind, udp_port), family=family)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (0: no TCP)")
    parser.add_argument("--udp-port", type=int, default=8081, help="UDP port (0: no UDP)")
    args = parser.parse_args()
    raise_fd_limit()
    try:
        asyncio.run(serve(args.bind, args.port, args.udp_port))
    except OSError as e:
        print(f"whoami_server: {args.bind}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
