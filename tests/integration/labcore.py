# Shared ground for the integration harness: the lab's addresses, errors, polling with progress
# lines, and reading children's output without blocking. labkit re-exports all of it.

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[2]
LAB_SH = REPO / "tests" / "lab" / "lab.sh"
TOOLS = Path(__file__).resolve().parent / "tools"
PYTHON = sys.executable or "/usr/bin/python3"

ROLES = ("rtr", "isp1", "isp2", "lan", "inet")
SERVER = "192.0.2.10"
TCP_PORT = 8080
UDP_PORT = 8081
PROBE_TARGETS = ("192.0.2.53", "192.0.2.54")
LAN_HOST = "192.168.88.10"
LAN_HOSTS = "192.168.88.11-192.168.88.40"
WAN_ADDR = {"charter": "203.0.113.2", "integra": "198.51.100.2"}
WAN_GATEWAY = {"charter": "203.0.113.1", "integra": "198.51.100.1"}
WAN_INTERFACE = {"charter": "ether1", "integra": "ether2"}
WAN_OF_SOURCE = {addr: wan for wan, addr in WAN_ADDR.items()}
ISP_OF_WAN = {"charter": "isp1", "integra": "isp2"}

# IPv6 (tests/lab/lab.sh --help). Integra's WAN address is SLAAC from isp2's router
# advertisements and its gateway is isp2's link-local address: Lab.wan_addr6("integra"),
# Lab.ra_gateway() read them from the router.
FAMILIES = ("ipv4", "ipv6")
SERVER6 = "2001:db8:ff::10"
PROBE_TARGETS6 = ("2001:db8:ff::53", "2001:db8:ff::54")
LAN_HOST6 = "fd00:88::10"
LAN_HOSTS6 = "fd00:88::11-fd00:88::40"   # 48 addresses
WAN_ADDR6 = {"charter": "2001:db8:1::2"}
WAN_PREFIX6 = {"charter": "2001:db8:1::/64", "integra": "2001:db8:2::/64"}
WAN_GATEWAY6 = {"charter": "2001:db8:1::1"}
ISP_LINK_LOCAL = {"isp1": "fe80::1", "isp2": "fe80::2"}   # isp2's changes with `ra change`
# wanbalance's own routing table for the balanced multipath default (rules/desired.hpp).
BALANCED_TABLE = 100

# Environment a daemon must not inherit from whatever runs the tests (it would talk to that
# systemd instead of logging to stderr).
SYSTEMD_ENV = ("NOTIFY_SOCKET", "JOURNAL_STREAM", "INVOCATION_ID", "LISTEN_PID", "LISTEN_FDS",
                "LISTEN_FDNAMES", "WATCHDOG_PID", "WATCHDOG_USEC", "RUNTIME_DIRECTORY")


def zero_counters(nft_text: str) -> str:
    """`nft list` text with every counter at 0, as `wanbalancectl ruleset` prints them: the
    reply counters (chains replies_*) count the traffic the tests send."""
    return re.sub(r"\bcounter packets \d+ bytes \d+", "counter packets 0 bytes 0", nft_text)


def family_of(address: str) -> str:
    """"ipv4" or "ipv6" for an address (or a CIDR, or a range "A-B")."""
    return "ipv6" if ":" in address else "ipv4"


def server_of(family: str) -> str:
    return SERVER6 if family == "ipv6" else SERVER


class LabError(RuntimeError):
    pass


class CommandError(LabError):
    def __init__(self, argv: Sequence[str], proc: subprocess.CompletedProcess):
        self.argv = list(argv)
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        detail = (proc.stderr or proc.stdout or "").strip()
        super().__init__(f"`{shlex.join(self.argv)}` exited {proc.returncode}"
                         + (f": {detail}" if detail else ""))


def build_dir() -> Path:
    return Path(os.environ.get("WANBALANCE_BUILD_DIR") or REPO / "build")


def program(name: str) -> Path:
    """A built program: BUILD/NAME, or where meson puts it (wanbalancectl is built in ctl/)."""
    build = build_dir()
    for candidate in (build / name, build / "ctl" / name, build / "daemon" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{build / name} does not exist: build it (ninja -C {build} {name}) "
                            "or set WANBALANCE_BUILD_DIR")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05, progress_every: float = 1.0) -> Any:
    """Poll predicate until it returns something truthy; return that. Prints a progress line
    every progress_every seconds; raises TimeoutError naming `what`."""
    start = time.monotonic()
    next_report = start + progress_every
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now - start >= timeout:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        if now >= next_report:
            progress(f"waiting for {what}... {now - start:.1f}s")
            next_report += progress_every
        time.sleep(min(interval, max(0.0, start + timeout - now)))


def lab_available() -> tuple[bool, str]:
    """Whether this process can build labs, and if not, why."""
    if os.geteuid() != 0:
        return False, "needs root (creates network namespaces)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return False, f"needs `{tool}` in PATH"
    return True, ""


class LineReader:
    """Lines from a child's pipe, never blocking past a deadline."""

    def __init__(self, proc: subprocess.Popen, stream):
        self.proc, self.fd, self.buf = proc, stream.fileno(), b""

    def readline(self, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise LabError(f"{what}: process exited ({self.proc.poll()}) before answering")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")
