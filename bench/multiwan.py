# A router with N WANs (up to the config maximum of 63) in network namespaces, for the
# control-plane and footprint benchmarks: topology, config, the daemon's control socket and
# READY notification, and kernel change notifications watched from outside the daemon.
"""multiwan — the N-WAN bench lab (stdlib only; builds on tests/integration/labkit).

Namespaces PREFIX-rtr (the router), PREFIX-isp1 (one upstream holding every gateway) and
PREFIX-lan. WAN k (1..N) is veth wan<k> in the router, 203.0.113.(4k-2)/30, to gw<k> in the
upstream, 203.0.113.(4k-3)/30: 63 /30 networks fill 203.0.113.0/24. The probe target
192.0.2.53 is on the upstream's lo, so every WAN's probes go through its own link. The LAN is
lan0 (192.168.88.1/24). IPv6 is off everywhere, so route notifications are the daemon's.

The namespaces use lab.sh's role names and owner record, so `tests/lab/lab.sh down PREFIX`
(our teardown) and `lab.sh gc` (after a crash) remove them like any lab.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import labkit  # noqa: E402
from labcore import LabError, progress  # noqa: E402,F401 - re-exported for the bench scripts

MAX_WANS = 63
PROBE_TARGET = "192.0.2.53"
SYSCTLS = ("net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 "
           "net.ipv4.conf.all.rp_filter={rp} net.ipv4.conf.default.rp_filter={rp} "
           "net.ipv4.conf.all.src_valid_mark=0 net.ipv4.conf.default.src_valid_mark=0 "
           "net.ipv4.ip_forward={fwd} \"net.ipv4.ping_group_range=0 2147483647\"")


def wan_name(k: int) -> str:
    return f"w{k}"


def wan_iface(k: int) -> str:
    return f"wan{k}"


def wan_addr(k: int) -> str:
    return f"203.0.113.{4 * k - 2}"


def wan_gateway(k: int) -> str:
    return f"203.0.113.{4 * k - 3}"


class MultiWanLab(labkit.Lab):
    """A labkit.Lab whose topology is N WANs into one upstream namespace (see module doc).
    run()/popen()/start_daemon()/write_config() work as in labkit; roles: rtr, isp1, lan."""

    def __init__(self, n_wans: int):
        if not 1 <= n_wans <= MAX_WANS:
            raise ValueError(f"1..{MAX_WANS} WANs, not {n_wans}")
        super().__init__(prefix="wb" + secrets.token_hex(3))
        self.n = n_wans

    def up(self) -> MultiWanLab:
        def build() -> None:
            (self.workdir / "hooks.d").mkdir(mode=0o755)
            self._build()
        self.up_own(build)
        return self

    def _ip_batch(self, ns: str | None, lines: list[str]) -> None:
        argv = ["ip"] + (["-n", self.ns(ns)] if ns else []) + ["-batch", "-"]
        proc = subprocess.run(argv, input="\n".join(lines) + "\n", text=True,
                              capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise LabError(f"building lab {self.prefix}: ip -batch: {proc.stderr.strip()}")

    def _build(self) -> None:
        p = self.prefix
        self._ip_batch(None, [f"netns add {p}-{role}" for role in ("rtr", "isp1", "lan")])
        # Sysctls before any interface exists, so the interfaces inherit them from default.
        self._ip_batch(None, [
            f"netns exec {p}-rtr sysctl -q -w " + SYSCTLS.format(rp=1, fwd=1),
            f"netns exec {p}-isp1 sysctl -q -w " + SYSCTLS.format(rp=0, fwd=0),
            f"netns exec {p}-lan sysctl -q -w " + SYSCTLS.format(rp=0, fwd=0),
        ])
        # Created from inside the router, each peer directly in its namespace: nothing passes
        # through the host. Distinct ifindexes on both ends: the kernel delays (up to 1 s) the
        # operstate of a device whose peer has the same ifindex (linkwatch_urgent_event()).
        rtr = ["link set lo up",
               f"link add name lan0 index 99 type veth peer name eth0 index 98 netns {p}-lan",
               "addr add 192.168.88.1/24 dev lan0", "link set lan0 up"]
        for k in range(1, self.n + 1):
            rtr += [f"link add name {wan_iface(k)} index {100 + k} type veth "
                    f"peer name gw{k} index {300 + k} netns {p}-isp1",
                    f"addr add {wan_addr(k)}/30 dev {wan_iface(k)}",
                    f"link set {wan_iface(k)} up"]
        self._ip_batch("rtr", rtr)
        isp = ["link set lo up", f"addr add {PROBE_TARGET}/32 dev lo"]
        for k in range(1, self.n + 1):
            isp += [f"addr add {wan_gateway(k)}/30 dev gw{k}", f"link set gw{k} up"]
        self._ip_batch("isp1", isp)
        self._ip_batch("lan", ["link set lo up", "addr add 192.168.88.10/24 dev eth0",
                               "link set eth0 up", "route add default via 192.168.88.1"])
        labkit.wait_until(self._links_up, 10, f"the router's {self.n + 1} links to come up")

    def _links_up(self) -> bool:
        out = self.run("rtr", "ip -o link show").stdout
        return all("state UP" in line or ": lo:" in line for line in out.splitlines())

    def carrier(self, k: int, up: bool) -> None:  # type: ignore[override]
        """WAN k's router side loses/regains carrier: its peer in the upstream goes down/up."""
        self.run("isp1", ["ip", "link", "set", f"gw{k}", "up" if up else "down"])

    def config(self, interval_ms: int = 300, weights: dict[int, int] | None = None) -> dict:
        weights = weights or {}
        wans = []
        for k in range(1, self.n + 1):
            wan = {"name": wan_name(k), "interface": wan_iface(k), "gateway": wan_gateway(k),
                   "probe": {"targets": [PROBE_TARGET]}}
            if k in weights:
                wan["weight"] = weights[k]
            wans.append(wan)
        return {"wans": wans, "lans": ["lan0"], "probe": {"interval_ms": interval_ms},
                "hooks_dir": str(self.workdir / "hooks.d")}


class ReadyListener:
    """A NOTIFY_SOCKET for the daemon: records when READY=1 arrives (systemd's view of ready)."""

    def __init__(self, directory: Path):
        self.path = str(directory / f"notify-{secrets.token_hex(3)}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)

    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.path}

    def wait_ready(self, timeout: float) -> float:
        """monotonic time at which READY=1 arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            if b"READY=1" in data.split(b"\n"):
                return time.monotonic()
        raise TimeoutError(f"no READY=1 from wanbalanced within {timeout:.0f}s")

    def close(self) -> None:
        self.sock.close()
        Path(self.path).unlink(missing_ok=True)


def control(daemon: labkit.Daemon, request: dict, timeout: float = 30) -> dict:
    """One request on the daemon's control socket, straight from this process (no wanbalancectl
    process to start, so the time measured is the daemon's)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(daemon.runtime_dir / "control.sock"))
        s.sendall((json.dumps(request) + "\n").encode())
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise LabError(f"control {request}: {reply.get('error')}")
    return reply


class KernelMonitor:
    """`nft monitor` and `ip -o monitor label link route rule` in a namespace, every line
    stamped with time.monotonic() on arrival. Watches from outside the daemon."""

    def __init__(self, lab: labkit.Lab, ns: str = "rtr"):
        self.events: list[tuple[float, str, str]] = []  # (time, "nft"|"ip", line)
        self.lock = threading.Lock()
        self.procs = [
            ("nft", lab.popen(ns, ["stdbuf", "-oL", "nft", "monitor"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)),
            ("ip", lab.popen(ns, ["stdbuf", "-oL", "ip", "-o", "monitor", "label", "link",
                                  "route", "rule"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)),
        ]
        self.threads = [threading.Thread(target=self._read, args=(src, proc), daemon=True)
                        for src, proc in self.procs]
        for t in self.threads:
            t.start()

    def _read(self, source: str, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            now = time.monotonic()
            with self.lock:
                self.events.append((now, source, raw.decode(errors="replace").rstrip("\n")))

    def mark(self) -> int:
        with self.lock:
            return len(self.events)

    def since(self, index: int) -> list[tuple[float, str, str]]:
        with self.lock:
            return list(self.events[index:])

    def settle(self, index: int, done, timeout: float, quiet: float = 0.3,
               start: float | None = None) -> list[tuple[float, str, str]]:
        """Events from `index` on, once done(events) holds and nothing new came for `quiet` s
        (since `start`, default now, when nothing came at all)."""
        start = time.monotonic() if start is None else start
        deadline = start + timeout
        while True:
            events = self.since(index)
            now = time.monotonic()
            last = events[-1][0] if events else start
            if done(events) and now - last >= quiet:
                return events
            if now > deadline:
                raise TimeoutError(f"kernel change not seen within {timeout:.0f}s "
                                   f"({len(events)} events)")
            time.sleep(0.02)

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def exit_on_hangup() -> None:
    """SIGHUP/SIGINT unwind through finally blocks (labs torn down); SIGTERM is labkit's."""
    def handler(signum, frame):
        raise SystemExit(f"interrupted by signal {signum}")
    signal.signal(signal.SIGHUP, handler)
    signal.signal(signal.SIGINT, handler)


def preflight() -> str | None:
    """Why the bench cannot run here, or None."""
    ok, reason = labkit.lab_available()
    if not ok:
        return reason
    try:
        labkit.program("wanbalanced")
        labkit.program("wanbalancectl")
    except FileNotFoundError as e:
        return str(e)
    return None
