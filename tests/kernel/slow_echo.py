#!/usr/bin/env python3
"""An ICMP echo responder that answers late, for the prober's kernel tests (no netem here).

Usage (inside a namespace whose kernel ignores echo requests: net.ipv4.icmp_echo_ignore_all=1):
    slow_echo.py ADDRESS DELAY_FILE
Answers echo requests to ADDRESS after the delay in DELAY_FILE (milliseconds, re-read for every
request, so a test can change it while the responder runs). Runs until killed.
"""
import socket
import struct
import sys
import threading
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def main() -> None:
    address, delay_file = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.bind((address, 0))  # replies leave from the probed address, as a real target's do
    while True:
        packet, (source, _) = sock.recvfrom(2048)
        header_len = (packet[0] & 0x0F) * 4
        icmp = packet[header_len:]
        if len(icmp) < 8 or icmp[0] != 8:
            continue
        reply = bytearray(b"\0" + icmp[1:2] + b"\0\0" + icmp[4:])
        struct.pack_into("!H", reply, 2, checksum(bytes(reply)))
        try:
            delay = float(open(delay_file).read().strip() or 0) / 1000
        except (OSError, ValueError):
            delay = 0
        threading.Timer(delay, sock.sendto, (bytes(reply), (source, 0))).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        time.sleep(0)
