# Harness for integration tests, benchmarks and the demo: a Lab (tests/lab/lab.sh) as a context
# manager, processes inside its namespaces, the whoami traffic tools, and a wanbalanced under test.
"""labkit — drive the namespace lab from Python (stdlib only).

    with Lab() as lab:
        lab.run("rtr", "ip route add default via 203.0.113.1")
        print(lab.spread(200, src="192.168.88.11-192.168.88.40"))  # Counter({'charter': 200})
        d = lab.start_daemon(lab.article_config())
        d.wait_ready()

Namespace roles: rtr, isp1, isp2, lan, inet (see tests/lab/lab.sh --help for the topology).
Nothing here touches the host's own network namespace.
"""

from __future__ import annotations

import atexit
import dataclasses
import ipaddress
import json
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from labcore import *  # noqa: F401,F403 - labkit is the one module tests import
from labcore import (ISP_OF_WAN, LAB_SH, LAN_HOST, PROBE_TARGETS, PROBE_TARGETS6,
                     PYTHON, ROLES, SERVER, SERVER6, TCP_PORT, TOOLS, UDP_PORT, WAN_ADDR6,
                     WAN_GATEWAY6, WAN_INTERFACE, WAN_OF_SOURCE, WAN_PREFIX6, CommandError,
                     LabError, LineReader, family_of, server_of, wait_until)
from labdaemon import Daemon  # noqa: F401 - re-exported


# Where each lab keeps its configs, logs, state and hooks directory (root-owned, 0755).
LAB_ROOT = Path("/run/wanbalance-lab")


class _ClientAgent:
    """One connect_many.py --serve per namespace: runs requests without paying the
    interpreter's start-up each time (0.05 s idle, ~0.5 s on a loaded 2-core machine)."""

    def __init__(self, lab: Lab, ns: str):
        self.proc = lab.popen(ns, [PYTHON, str(TOOLS / "connect_many.py"), "--serve"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
        self.reader = LineReader(self.proc, self.proc.stdout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, argv: list[str], timeout: float) -> dict:
        try:
            self.proc.stdin.write((json.dumps(argv) + "\n").encode())
            self.proc.stdin.flush()
            answer = json.loads(self.reader.readline(timeout, "connect_many"))
        except BaseException:
            self.proc.kill()        # its state is unknown now; the next request starts afresh
            raise
        if "error" in answer:
            raise LabError(f"connect_many {shlex.join(argv)}: {answer['error']}")
        return answer


@dataclasses.dataclass
class ConnectResult:
    ok: bool
    seen: str | None = None     # source address the server saw
    error: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@dataclasses.dataclass
class PingResult:
    sent: int
    received: int

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 100.0

    def __bool__(self) -> bool:
        return self.received > 0


class Server:
    """A whoami_server.py inside one namespace."""

    def __init__(self, lab: Lab, ns: str, bind: str, port: int, udp_port: int,
                 wait: bool = True):
        self.ns, self.bind, self.port, self.udp_port = ns, bind, port, udp_port
        argv = [PYTHON, str(TOOLS / "whoami_server.py"), "--bind", bind,
                "--port", str(port), "--udp-port", str(udp_port)]
        self.proc = lab.popen(ns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.ready = False
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 10.0) -> None:
        if self.ready:
            return
        try:
            line = LineReader(self.proc, self.proc.stdout).readline(
                timeout, f"whoami server in {self.ns}")
        except LabError:
            raise LabError(f"whoami server in {self.ns} on {self.bind}:{self.port} failed: "
                           + self.proc.stderr.read().decode(errors="replace").strip()) from None
        if line != "READY":
            raise LabError(f"whoami server in {self.ns}: unexpected output {line!r}")
        self.ready = True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HeldConnections:
    """TCP connections held open by connect_many.py --hold-stdin until release()."""

    def __init__(self, lab: Lab, argv: list[str], ns: str, timeout: float):
        self.proc = lab.popen(ns, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        line = LineReader(self.proc, self.proc.stderr).readline(
            timeout, "connections to be established")
        m = re.fullmatch(r"ESTABLISHED ok=(\d+) failed=(\d+)", line)
        if not m:
            raise LabError(f"connect_many: unexpected output {line!r}")
        self.ok, self.failed = int(m[1]), int(m[2])

    def release(self, timeout: float = 30) -> list[dict]:
        """Each connection asks the server again, then closes; returns the per-connection
        results, where end_ok tells whether the connection survived and end_seen its source."""
        out, err = self.proc.communicate(input=b"", timeout=timeout)
        if self.proc.returncode != 0:
            raise LabError(f"connect_many exited {self.proc.returncode}: {err.decode().strip()}")
        return json.loads(out)["results"]


_live_labs: list[Lab] = []
_signal_lock = threading.Lock()
_previous_sigterm: Any = None


def _teardown_all() -> None:
    for lab in list(_live_labs):
        lab.down()


def _on_sigterm(signum, frame) -> None:
    _teardown_all()
    signal.signal(signal.SIGTERM, _previous_sigterm if callable(_previous_sigterm)
                  else signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_handlers() -> None:
    global _previous_sigterm
    with _signal_lock:
        if _previous_sigterm is not None:
            return
        atexit.register(_teardown_all)
        if threading.current_thread() is threading.main_thread():
            _previous_sigterm = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _on_sigterm)
        else:
            _previous_sigterm = signal.SIG_DFL


class Lab:
    """The lab's namespaces for the lifetime of a with-block (or up()..down())."""

    def __init__(self, prefix: str | None = None, keep_workdir: bool = False):
        self.prefix = prefix or "wb" + secrets.token_hex(3)
        self.keep_workdir = keep_workdir or bool(os.environ.get("WANBALANCE_KEEP_LAB_LOGS"))
        self.workdir: Path | None = None
        self.daemons: list[Daemon] = []
        self._procs: list[subprocess.Popen] = []
        self._servers: dict[str, Server] = {}      # the whoami server per family
        self._agents: dict[str, _ClientAgent] = {}
        self._is_up = False
        self.up_seconds = self.down_seconds = 0.0

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> Lab:
        _install_handlers()
        # Not under /tmp: wanbalanced runs hooks only from a directory whose parents are all
        # writable by root alone (sshd's StrictModes), and /tmp is world-writable.
        LAB_ROOT.mkdir(mode=0o755, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"wanbalance-{self.prefix}-", dir=LAB_ROOT))
        # As /etc is: the service's (dynamic) user must reach the config file (the live check).
        self.workdir.chmod(0o755)
        env = dict(os.environ, LAB_OWNER_PID=str(os.getpid()))
        start = time.monotonic()
        _live_labs.append(self)
        self._is_up = True
        proc = subprocess.run([str(LAB_SH), "up", self.prefix], env=env, text=True,
                              capture_output=True, timeout=60)
        self.up_seconds = time.monotonic() - start
        if proc.returncode != 0:
            self.down()
            raise LabError(f"lab.sh up {self.prefix} failed: {proc.stderr.strip()}")
        return self

    def up_own(self, build: Callable[[], None]) -> Lab:
        """up() for a lab that builds its own topology instead of lab.sh's (the HA pair, the
        multi-WAN benchmark): the work dir under LAB_ROOT (root-owned, mode 0755), the owner
        record LAB_ROOT/PREFIX first (`lab.sh gc` removes the lab if this process dies half-way,
        `lab.sh down` removes it like any other), then build(); torn down if build() fails."""
        _install_handlers()
        LAB_ROOT.mkdir(mode=0o755, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"wanbalance-{self.prefix}-", dir=LAB_ROOT))
        self.workdir.chmod(0o755)   # keepalived runs scripts only from root-only-writable dirs
        start = time.monotonic()
        _live_labs.append(self)
        self._is_up = True
        try:
            pid = os.getpid()
            started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
            (LAB_ROOT / self.prefix).write_text(f"{pid} {started}\n")   # as lab.sh reads it
            build()
        except BaseException:
            self.down()
            raise
        self.up_seconds = time.monotonic() - start
        return self

    def down(self) -> None:
        """Kill everything in the lab's namespaces and delete them. Idempotent."""
        if not self._is_up:
            return
        self._is_up = False
        start = time.monotonic()
        subprocess.run([str(LAB_SH), "down", self.prefix], capture_output=True, timeout=60)
        for proc in self._procs:
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._procs.clear()
        self._agents.clear()
        self._servers.clear()
        self.down_seconds = time.monotonic() - start
        if self in _live_labs:
            _live_labs.remove(self)
        if self.workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- processes --------------------------------------------------------------------------

    def ns(self, name: str) -> str:
        """Full namespace name for a role ("rtr") or an already full name."""
        if name in ROLES:
            return f"{self.prefix}-{name}"
        if name.startswith(self.prefix + "-") and name[len(self.prefix) + 1:] in ROLES:
            return name
        raise ValueError(f"{name!r} is not a lab namespace (expected one of {', '.join(ROLES)})")

    def _argv(self, ns: str, cmd: str | Sequence[str]) -> list[str]:
        args = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
        return ["ip", "netns", "exec", self.ns(ns), *args]

    def run(self, ns: str, cmd: str | Sequence[str], check: bool = True, timeout: float = 30,
            input: str | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        """Run cmd (argv list, or a string split like a shell would) inside namespace ns."""
        argv = self._argv(ns, cmd)
        proc = subprocess.run(argv, text=True, capture_output=True, timeout=timeout,
                              input=input, env=env)
        if check and proc.returncode != 0:
            raise CommandError(argv, proc)
        return proc

    def popen(self, ns: str, cmd: str | Sequence[str], **kwargs) -> subprocess.Popen:
        """Start cmd inside namespace ns; it is killed when the lab goes down.
        `ip netns exec` execs the command, so the Popen's pid is the command's own."""
        proc = subprocess.Popen(self._argv(ns, cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def nft(self, ns: str, script: str) -> None:
        self.run(ns, ["nft", "-f", "-"], input=script)

    def lab_sh(self, *args: str) -> str:
        proc = subprocess.run([str(LAB_SH), *args], text=True, capture_output=True, timeout=30)
        if proc.returncode != 0:
            raise CommandError([str(LAB_SH), *args], proc)
        return proc.stdout

    # -- fault knobs (isp is "isp1"/"isp2" or a WAN name "charter"/"integra") ----------------

    @staticmethod
    def _isp(isp: str) -> str:
        return ISP_OF_WAN.get(isp, isp)

    # family: "ipv4" or "ipv6" acts on that family only; None on both (the carrier is the link's).

    def upstream(self, isp: str, up: bool, family: str | None = None) -> None:
        self.lab_sh("upstream", self.prefix, self._isp(isp), "up" if up else "down",
                    *([family] if family else []))

    def carrier(self, isp: str, up: bool) -> None:
        self.lab_sh("carrier", self.prefix, self._isp(isp), "up" if up else "down")

    def loss(self, isp: str, pct: int, family: str | None = None) -> None:
        self.lab_sh("loss", self.prefix, self._isp(isp), str(pct), *([family] if family else []))

    def counters(self, isp: str, family: str | None = None) -> dict[str, int]:
        """Packets the ISP dropped: {'bcp38': n, 'upstream': n, 'loss': n}; both families summed
        unless one is named."""
        out = self.lab_sh("counters", self.prefix, self._isp(isp), *([family] if family else []))
        return {k: int(v) for k, v in (line.split() for line in out.splitlines())}

    def ra_change(self) -> str:
        """isp2's router is replaced (the old one says goodbye, one with a new link-local
        address advertises); returns the new router's address."""
        return self.lab_sh("ra", self.prefix, "isp2", "change").strip()

    def accept_ra(self, value: int, iface: str = "ether2") -> None:
        """The router's net.ipv6.conf.IFACE.accept_ra (the lab sets 2 on ether1 and ether2)."""
        self.lab_sh("accept_ra", self.prefix, str(value), iface)

    # -- IPv6 addresses the lab hands out ----------------------------------------------------

    def wan_addr6(self, wan: str) -> str | None:
        """The router's global IPv6 address on a WAN: charter's is static, integra's SLAAC
        (None until isp2's router advertisement has arrived)."""
        if wan in WAN_ADDR6:
            return WAN_ADDR6[wan]
        out = self.run("rtr", ["ip", "-6", "-o", "addr", "show", "dev", WAN_INTERFACE[wan],
                               "scope", "global"], check=False).stdout
        prefix = ipaddress.ip_network(WAN_PREFIX6[wan])
        for m in re.finditer(r"\binet6 ([0-9a-f:]+)/\d+", out):
            line_flags = out[m.end():].split("\n", 1)[0]
            if ipaddress.ip_address(m[1]) in prefix and "tentative" not in line_flags:
                return m[1]
        return None

    def ra_gateway(self) -> str | None:
        """The gateway of the default route isp2's router advertisements put in the router's
        main table (isp2's link-local address), or None."""
        out = self.run("rtr", "ip -6 route show default proto ra dev ether2").stdout
        m = re.search(r"\bvia (\S+)", out)
        return m[1] if m else None

    def wait_ipv6(self, timeout: float = 5.0) -> str:
        """Wait until isp2's router advertisement gave ether2 its SLAAC address and a default
        route (lab.sh up does not wait: IPv4 tests need neither); returns the address."""
        def ready():
            return self.ra_gateway() and self.wan_addr6("integra")
        return wait_until(ready, timeout, "isp2's router advertisement (SLAAC address and "
                          "default route on ether2)")

    def wan_sources(self) -> dict[str, str]:
        """Source address the internet sees -> WAN name, both families."""
        sources = dict(WAN_OF_SOURCE)
        for wan in WAN_PREFIX6:
            addr = self.wan_addr6(wan)
            if addr:
                sources[addr] = wan
        return sources

    # -- traffic ----------------------------------------------------------------------------

    def ensure_server(self, wait: bool = True, family: str = "ipv4") -> Server:
        """The whoami server in the internet on 192.0.2.10, or for "ipv6" on 2001:db8:ff::10
        (TCP 8080, UDP 8081)."""
        server = self._servers.get(family)
        if server is None or server.proc.poll() is not None:
            server = self._servers[family] = Server(self, "inet", server_of(family), TCP_PORT,
                                                    UDP_PORT, wait=False)
        if wait:
            server.wait_ready()
        return server

    def start_server(self, ns: str, bind: str = "0.0.0.0", port: int = TCP_PORT,
                     udp_port: int = 0) -> Server:
        """A whoami server inside any namespace (e.g. "rtr", or "lan" behind a port forward)."""
        return Server(self, ns, bind, port, udp_port)

    def _connect_argv(self, n: int, src: str | None, dst: str, port: int | None,
                      concurrency: int, timeout: float, udp: bool, send: int, hold: float,
                      rst: bool) -> list[str]:
        argv = [PYTHON, str(TOOLS / "connect_many.py"), "--dst", dst, "-n", str(n),
                "--concurrency", str(concurrency), "--timeout", str(timeout)]
        if port is not None:
            argv += ["--port", str(port)]
        if src:
            argv += ["--src", src]
        if udp:
            argv.append("--udp")
        if send:
            argv += ["--send", str(send)]
        if hold:
            argv += ["--hold", str(hold)]
        if rst:
            argv.append("--rst")
        return argv

    def connect_many(self, n: int = 1, src: str | None = LAN_HOST, dst: str = SERVER,
                     port: int | None = None, ns: str = "lan", concurrency: int = 50,
                     timeout: float = 2.0, udp: bool = False, send: int = 0, hold: float = 0,
                     rst: bool = False) -> list[dict]:
        """n connections from ns (source `src`: "A", "A-B" or "A,B-C", round-robin) to dst;
        per connection: ok, seen (source the server saw), error, ms (see tools/connect_many.py).
        dst takes the same forms as src (each connection the next, round-robin)."""
        if dst in (SERVER, SERVER6):
            self.ensure_server(wait=False, family=family_of(dst))  # interpreters start in parallel
        argv = self._connect_argv(n, src, dst, port, concurrency, timeout, udp, send, hold, rst)
        rounds = math.ceil(n / max(1, min(concurrency, n)))
        budget = rounds * (2 * timeout + 1) + hold + 15
        agent = self._agents.get(ns)
        if agent is None or not agent.alive():
            agent = self._agents[ns] = _ClientAgent(self, ns)
        if dst in (SERVER, SERVER6):
            self.ensure_server(family=family_of(dst))
        return agent.request(argv[2:], budget)["results"]

    def spread(self, n: int, src: str | None = LAN_HOST, dst: str = SERVER, **kwargs) -> Counter:
        """Which WAN carried each of n new connections: Counter({'charter': 103, 'integra': 97}).
        Failed connections count as 'failed'; a source that is no WAN address counts as itself.
        For IPv6 pass src=LAN_HOST6 (or LAN_HOSTS6) and dst=SERVER6."""
        results = self.connect_many(n, src=src, dst=dst, **kwargs)
        sources = self.wan_sources() if family_of(dst) == "ipv6" else WAN_OF_SOURCE
        return Counter("failed" if not r["ok"] else sources.get(r["seen"], r["seen"])
                       for r in results)

    def hold_connections(self, n: int, src: str | None = LAN_HOST, dst: str = SERVER,
                         port: int | None = None, ns: str = "lan", timeout: float = 2.0,
                         send: int = 0, exchange_every: float = 0) -> HeldConnections:
        """Open n TCP connections and keep them open until .release(). With exchange_every,
        each asks the server "whoami" every that many seconds while held (results: exchanges,
        exchange_max_ms; a missing or changed answer ends it with end_ok false)."""
        if dst in (SERVER, SERVER6):
            self.ensure_server(family=family_of(dst))
        argv = self._connect_argv(n, src, dst, port, n, timeout, False, send, 0, False)
        argv.append("--hold-stdin")
        if exchange_every:
            argv += ["--exchange-every", str(exchange_every)]
        return HeldConnections(self, argv, ns, timeout=2 * timeout + 10)

    def add_addresses(self, ns: str, addresses: Iterable[str], dev: str = "lo") -> None:
        """Put more addresses (host routes: /32, /128) on an interface of ns, e.g. servers on
        the internet's lo: the ISPs route the whole documentation range to it. They go when the
        lab goes down."""
        lines = [f"addr add {a}/{128 if family_of(a) == 'ipv6' else 32} dev {dev}"
                 for a in addresses]
        self.run(ns, ["ip", "-batch", "-"], input="\n".join(lines) + "\n")

    def connect_from_internet(self, dst_ip: str, port: int = TCP_PORT, timeout: float = 1.0,
                              src: str | None = None) -> ConnectResult:
        """One TCP connection from the internet namespace (e.g. to a router WAN address)."""
        r = self.connect_many(1, src=src, dst=dst_ip, port=port, ns="inet", timeout=timeout)[0]
        return ConnectResult(r["ok"], r["seen"], r["error"])

    def ping(self, ns: str, dst: str, count: int = 1, interval: float = 0.2,
             wait: float = 1.0, iface: str | None = None, src: str | None = None,
             mark: int | None = None) -> PingResult:
        """ping from ns, IPv4 or IPv6 by dst's family (a link-local dst needs iface);
        wait is how long to wait for replies after the last packet."""
        argv = ["ping", "-q", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait)]
        if iface or src:
            argv += ["-I", iface or src]
        if mark is not None:
            argv += ["-m", str(mark)]
        proc = self.run(ns, argv + [dst], check=False,
                        timeout=count * interval + wait + 10)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", proc.stdout)
        if not m:
            raise CommandError(self._argv(ns, argv + [dst]), proc)
        return PingResult(int(m[1]), int(m[2]))

    def install_foreign_portfwd(self) -> None:
        """The user's own port forward, which wanbalance must leave alone and keep working:
        203.0.113.2:2222 and 198.51.100.2:2222 → 192.168.88.10:8080."""
        self.nft("rtr", """
table ip portfwd {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr 203.0.113.2 tcp dport 2222 dnat to 192.168.88.10:8080
        ip daddr 198.51.100.2 tcp dport 2222 dnat to 192.168.88.10:8080
    }
}
""")

    # -- kernel state -----------------------------------------------------------------------

    def kernel_state(self, ns: str = "rtr", families: Sequence[str] = ("ipv4",)
                     ) -> dict[str, str]:
        """nft ruleset, and per family the rules, routes and the sysctls wanbalance may touch
        (IPv4: src_valid_mark; IPv6: every net.ipv6.conf one), normalized so that only
        configuration differences show: counters, quota usage, set-element expiry and the
        remaining lifetime of routes from router advertisements are blanked, routes sorted.
        Keys: nft, rules, routes, sysctls (IPv4) and rules6, routes6, sysctls6 (IPv6)."""
        nft = self.run(ns, "nft list ruleset").stdout
        nft = re.sub(r"packets \d+ bytes \d+", "packets N bytes N", nft)
        nft = re.sub(r" used \d+ [a-z]+", "", nft)
        nft = re.sub(r" expires [0-9dhms]+", "", nft)
        state = {"nft": nft.strip()}
        for family in families:
            state.update(self._family_state(ns, family))
        return state

    def _family_state(self, ns: str, family: str) -> dict[str, str]:
        flag, suffix, sysctl_pattern = {
            "ipv4": ("-4", "", "src_valid_mark"),
            "ipv6": ("-6", "6", r"^net\.ipv6\.conf\."),
        }[family]
        rules = self.run(ns, f"ip {flag} rule show").stdout
        routes = self.run(ns, f"ip {flag} route show table all").stdout
        # An RA's route counts down its lifetime and gains "hoplimit" at the second RA.
        routes = re.sub(r" expires -?\d+sec| hoplimit \d+", "", routes)
        sysctls = self.run(ns, ["sysctl", "-a", "-r", sysctl_pattern], check=False).stdout
        return {
            "rules" + suffix: rules.strip(),
            "routes" + suffix: "\n".join(sorted(line.rstrip() for line in routes.splitlines())),
            "sysctls" + suffix: "\n".join(sorted(line.strip() for line in sysctls.splitlines())),
        }

    # -- the daemon -------------------------------------------------------------------------

    def article_config(self, **overrides: Any) -> dict:
        """The article's two-WAN config (docs/design.md, Configuration) for this lab, hooks in an empty private dir.
        Top-level keys in overrides replace the defaults."""
        assert self.workdir is not None, "lab is not up"
        hooks = self.workdir / "hooks.d"
        hooks.mkdir(exist_ok=True)
        hooks.chmod(0o755)  # whatever the umask: hooks must be writable by root alone
        config = {
            "wans": [
                {"name": "charter", "interface": "ether1", "gateway": "203.0.113.1",
                 "probe": {"targets": list(PROBE_TARGETS)}},
                {"name": "integra", "interface": "ether2", "gateway": "198.51.100.1",
                 "probe": {"targets": list(PROBE_TARGETS)}},
            ],
            "lans": ["ether3"],
            "hooks_dir": str(hooks),
        }
        config.update(overrides)
        return config

    def dual_stack_config(self, **overrides: Any) -> dict:
        """The article's config with IPv6 on both WANs: charter's static gateway6, integra's
        "auto" (isp2's router advertisements), probes to both families' targets."""
        config = self.article_config(**overrides)
        gateways6 = {"charter": WAN_GATEWAY6["charter"], "integra": "auto"}
        for wan in config["wans"]:
            if wan["name"] in gateways6 and "gateway6" not in wan:
                wan["gateway6"] = gateways6[wan["name"]]
                targets = wan.setdefault("probe", {}).setdefault("targets", [])
                targets += [t for t in PROBE_TARGETS6 if t not in targets]
        return config

    def start_daemon(self, config: dict | str | os.PathLike, extra_args: Iterable[str] = (),
                     env: dict[str, str] | None = None, ns: str = "rtr") -> Daemon:
        """wanbalanced in the router namespace `ns` with its own config file, runtime dir and
        log."""
        assert self.workdir is not None, "lab is not up"
        index = len(self.daemons)
        if isinstance(config, dict):
            config_path = self.workdir / f"wanbalance-{index}.json"
            config_path.write_text(json.dumps(config, indent=2) + "\n")
        else:
            config_path = Path(config)
        runtime_dir = self.workdir / f"run-{index}"
        runtime_dir.mkdir()
        extra_args = list(extra_args)
        # One state directory per router, as a router has one: what survives its restarts.
        if not any(a.startswith("--state-dir") for a in extra_args):
            state = self.state_dir if ns == "rtr" else self.workdir / f"state-{ns}"
            extra_args += ["--state-dir", str(state)]
        daemon = Daemon(self, config_path, runtime_dir, self.workdir / f"wanbalanced-{index}.log",
                        extra_args, env, ns=ns)
        self.daemons.append(daemon)
        return daemon

    @property
    def state_dir(self) -> Path:
        """The lab's wanbalanced state directory (--state-dir): last applied config, overrides."""
        assert self.workdir is not None, "lab is not up"
        return self.workdir / "state"

    def write_config(self, daemon: Daemon, config: dict) -> None:
        """Replace a running daemon's config file (then daemon.reload() or ctl("reload"))."""
        tmp = daemon.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        tmp.replace(daemon.config_path)
