# The HA pair lab (issue 14): two routers sharing the LAN and both ISP segments through bridges
# in a switch namespace, with a direct sync link between them; keepalived and conntrackd in each
# router, configured from the examples that ship (packaging/examples/ha), rendered with the
# lab's own paths.
"""labha — an active/backup router pair in network namespaces.

    with HaLab() as lab:
        lab.start_wanbalanced()                # the same config in both routers
        lab.start_pair()                       # conntrackd x2, keepalived on rtrA then rtrB
        held = lab.hold_connections(10, src="192.168.88.11-192.168.88.20", ...)
        lab.kill_keepalived("rtrA")            # SIGKILL: rtrB takes the VIPs
        lab.wait_vips("rtrB")

Namespaces PREFIX-ROLE (ROLE in HA_ROLES):

  PREFIX-sw    bridges brlan, brisp1, brisp2 (bridge-nf-call-iptables=0)
  PREFIX-rtrA  ether1 203.0.113.2/24 (brisp1)  ether2 198.51.100.2/24 (brisp2)
               ether3 192.168.88.2/24 (brlan)  ether4 192.168.89.1/30 (sync, to rtrB)
  PREFIX-rtrB  ether1 203.0.113.3/24  ether2 198.51.100.3/24  ether3 192.168.88.3/24
               ether4 192.168.89.2/30
  VIPs (keepalived): 192.168.88.1 (the LAN's gateway), 203.0.113.4 (charter), 198.51.100.4
               (integra)
  PREFIX-isp1  cust 203.0.113.1/24 (brisp1), up 192.0.2.241/30 <-> PREFIX-inet isp1
  PREFIX-isp2  cust 198.51.100.1/24 (brisp2), up 192.0.2.245/30 <-> PREFIX-inet isp2
  PREFIX-lan   eth0 192.168.88.10/24 (+ .11-.40/32), default via the VIP 192.168.88.1
  PREFIX-inet  as in tests/lab/lab.sh: the server 192.0.2.10, probe targets .53 and .54 on lo

IPv4 only. The ISPs forward only their customer's addresses (.2, .3 and the VIP .4: BCP38).
Each lab's files (rendered configs, pid, lock and socket files, logs, the notify script and
the wanbalancectl stand-in's log of roles) live under /run/wanbalance-lab/wanbalance-PREFIX-*.
`tests/lab/lab.sh down PREFIX` (and `gc`) removes an HA lab like any other.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import labkit
from labcore import SERVER, SYSTEMD_ENV, LabError, wait_until
from labdaemon import Daemon

HA_ROLES = ("sw", "rtrA", "rtrB", "lan", "isp1", "isp2", "inet")
ROUTERS = ("rtrA", "rtrB")
EXAMPLES = labkit.REPO / "packaging" / "examples" / "ha"

LAN_NET = "192.168.88.0/24"
VIP = {"lan": "192.168.88.1", "charter": "203.0.113.4", "integra": "198.51.100.4"}
ROUTER_ADDR = {
    "rtrA": {"lan": "192.168.88.2", "charter": "203.0.113.2", "integra": "198.51.100.2",
             "sync": "192.168.89.1"},
    "rtrB": {"lan": "192.168.88.3", "charter": "203.0.113.3", "integra": "198.51.100.3",
             "sync": "192.168.89.2"},
}
GATEWAY = {"charter": "203.0.113.1", "integra": "198.51.100.1"}
INTERFACE = {"charter": "ether1", "integra": "ether2", "lan": "ether3", "sync": "ether4"}
WAN_OF_SOURCE = {VIP["charter"]: "charter", VIP["integra"]: "integra"}
# keepalived priority per router (the examples are router 1's); both start BACKUP, nopreempt.
PRIORITY = {"rtrA": 150, "rtrB": 100}
STREAM_PORT = 8090     # tools/stream.py: data both ways all the time


def _established(listing: str, port: int = STREAM_PORT) -> set[tuple[str, int]]:
    """(source address, source port) of the ESTABLISHED TCP entries to `port` in a conntrack or
    conntrackd listing (original direction first on each line)."""
    out = set()
    for line in listing.splitlines():
        m = re.search(r"src=(\S+) dst=\S+ sport=(\d+) dport=(\d+) ", line)
        if m and int(m[3]) == port and "ESTABLISHED" in line:
            out.add((m[1], int(m[2])))
    return out


def render(template: str, replacements: dict[str, str], name: str) -> str:
    """template with each key replaced by its value; every key must occur (so a shipped example
    that changes under the lab fails loudly instead of silently testing something else)."""
    for old, new in replacements.items():
        if old not in template:
            raise LabError(f"{name}: the shipped example no longer contains {old!r}")
        template = template.replace(old, new)
    return template


class Streams:
    """Connections of tools/stream.py client in the LAN, held until release()."""

    def __init__(self, lab: HaLab, argv: list[str]):
        self.proc = lab.popen("lan", argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        line = labkit.LineReader(self.proc, self.proc.stderr).readline(
            20, "stream connections to be established")
        m = re.fullmatch(r"ESTABLISHED ok=(\d+) failed=(\d+) ports=(\S*)", line)
        if not m:
            raise LabError(f"stream.py: unexpected output {line!r}")
        self.ok, self.failed = int(m[1]), int(m[2])
        # (LAN address, port) of each established connection
        self.flows = [(a, int(p)) for a, _, p in (f.rpartition(":") for f in m[3].split(",") if f)]

    def release(self, timeout: float = 30) -> list[dict]:
        """Close the connections; per connection: src, seen, alive, end_error, max_gap_ms,
        gap_at, received (tools/stream.py)."""
        out, err = self.proc.communicate(input=b"", timeout=timeout)
        if self.proc.returncode != 0:
            raise LabError(f"stream.py exited {self.proc.returncode}: {err.decode().strip()}")
        return json.loads(out)["results"]


class HaLab(labkit.Lab):
    """The HA pair lab for the lifetime of a with-block (or up()..down()). Inherits Lab's
    run/popen/nft, traffic helpers (the LAN and the internet are the same) and teardown
    (lab.sh down kills every process in the lab's namespaces, then deletes them)."""

    def __init__(self, prefix: str | None = None, keep_workdir: bool = False,
                 wanbalancectl: str | dict[str, str] | None = None):
        super().__init__(prefix, keep_workdir)
        # A real `wanbalancectl ...` command line for the notify script (one for both routers,
        # or one per router: {"rtrA": ..., "rtrB": ...}); None: the wrapper's log alone.
        self.wanbalancectl = wanbalancectl or os.environ.get("WANBALANCECTL") or None
        self.keepalived: dict[str, subprocess.Popen] = {}
        self.conntrackd: dict[str, subprocess.Popen] = {}
        self.wanbalanced: dict[str, Daemon] = {}
        self._stream_server: subprocess.Popen | None = None

    # -- namespaces -------------------------------------------------------------------------

    def ns(self, name: str) -> str:
        if name in HA_ROLES:
            return f"{self.prefix}-{name}"
        if name.startswith(self.prefix + "-") and name[len(self.prefix) + 1:] in HA_ROLES:
            return name
        raise ValueError(f"{name!r} is not an HA lab namespace (expected one of "
                         f"{', '.join(HA_ROLES)})")

    def dir(self, router: str) -> Path:
        """The router's own directory: rendered configs, pid/lock/socket files, logs."""
        assert self.workdir is not None, "lab is not up"
        return self.workdir / router

    def up(self) -> HaLab:
        for ns in HA_ROLES:
            if Path(f"/run/netns/{self.ns(ns)}").exists():
                raise LabError(f"lab {self.prefix} already exists ({self.ns(ns)})")
        self.up_own(self._build)
        return self

    def _batch(self, ns: str | None, script: str) -> None:
        argv = ["ip", *(["-n", self.ns(ns)] if ns else []), "-batch", "-"]
        proc = subprocess.run(argv, input=script, text=True, capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise labkit.CommandError(argv, proc)

    def _build(self) -> None:
        self._batch(None, "".join(f"netns add {self.ns(r)}\n" for r in HA_ROLES))
        common = ('"net.ipv4.ping_group_range=0 2147483647" net.ipv6.conf.all.accept_dad=0 '
                  'net.ipv6.conf.default.accept_dad=0 net.ipv4.conf.all.arp_ignore=0')
        # Routers: loose rp_filter. The switch: no IPv6 on its ports, and bridged frames never
        # pass through iptables/nftables (DESIGN §7 HA (4)).
        sysctls = {
            "rtrA": "net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=2 "
                    "net.ipv4.conf.default.rp_filter=2",
            "rtrB": "net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=2 "
                    "net.ipv4.conf.default.rp_filter=2",
            "isp1": "net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                    "net.ipv4.conf.default.rp_filter=0",
            "isp2": "net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                    "net.ipv4.conf.default.rp_filter=0",
            "lan": "net.ipv4.ip_forward=0 net.ipv4.conf.all.rp_filter=0 "
                   "net.ipv4.conf.default.rp_filter=0",
            "inet": "net.ipv4.ip_forward=0 net.ipv4.conf.all.rp_filter=0 "
                    "net.ipv4.conf.default.rp_filter=0",
            "sw": "net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
        }
        self._batch(None, "".join(f"netns exec {self.ns(r)} sysctl -q -w {common} {s}\n"
                                  for r, s in sysctls.items()))
        self.run("sw", "sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-*; do "
                       "[ -e \"$f\" ] && echo 0 > \"$f\"; done; true'")

        # Every device is created from inside the switch namespace directly in its own
        # namespace; distinct ifindexes on the two ends of each veth (see lab.sh).
        lines = ["link set lo up"]
        for br in ("brlan", "brisp1", "brisp2"):
            lines += [f"link add {br} type bridge stp_state 0 forward_delay 0",
                      f"link set {br} up"]
        ports = [  # (switch port, bridge, namespace, device there, index)
            ("a1", "brisp1", "rtrA", "ether1", 1), ("a2", "brisp2", "rtrA", "ether2", 2),
            ("a3", "brlan", "rtrA", "ether3", 3), ("b1", "brisp1", "rtrB", "ether1", 4),
            ("b2", "brisp2", "rtrB", "ether2", 5), ("b3", "brlan", "rtrB", "ether3", 6),
            ("i1", "brisp1", "isp1", "cust", 7), ("i2", "brisp2", "isp2", "cust", 8),
            ("l0", "brlan", "lan", "eth0", 9),
        ]
        for port, br, ns, dev, i in ports:
            lines += [f"link add name {port} index {100 + i} type veth peer name {dev} "
                      f"index {200 + i} netns {self.ns(ns)}",
                      f"link set {port} master {br}", f"link set {port} up"]
        lines += [
            f"link add name isp1 index 301 netns {self.ns('inet')} type veth peer name up "
            f"index 311 netns {self.ns('isp1')}",
            f"link add name isp2 index 302 netns {self.ns('inet')} type veth peer name up "
            f"index 312 netns {self.ns('isp2')}",
            f"link add name ether4 index 321 netns {self.ns('rtrA')} type veth peer name ether4 "
            f"index 322 netns {self.ns('rtrB')}",
        ]
        self._batch("sw", "\n".join(lines) + "\n")

        for router in ROUTERS:
            a = ROUTER_ADDR[router]
            self._batch(router, f"""link set lo up
addr add {a['charter']}/24 dev ether1
addr add {a['integra']}/24 dev ether2
addr add {a['lan']}/24 dev ether3
addr add {a['sync']}/30 dev ether4
link set ether1 up
link set ether2 up
link set ether3 up
link set ether4 up
""")
        lan = ["link set lo up", "addr add 192.168.88.10/24 dev eth0"]
        lan += [f"addr add 192.168.88.{i}/32 dev eth0" for i in range(11, 41)]
        lan += ["link set eth0 up", f"route add default via {VIP['lan']} dev eth0"]
        self._batch("lan", "\n".join(lan) + "\n")
        self._batch("inet", """link set lo up
addr add 192.0.2.10/32 dev lo
addr add 192.0.2.53/32 dev lo
addr add 192.0.2.54/32 dev lo
addr add 192.0.2.242/30 dev isp1
addr add 192.0.2.246/30 dev isp2
link set isp1 up
link set isp2 up
route add 203.0.113.0/24 via 192.0.2.241 dev isp1
route add 198.51.100.0/24 via 192.0.2.245 dev isp2
""")
        for isp, wan, up_addr, inet_addr in (("isp1", "charter", "192.0.2.241", "192.0.2.242"),
                                             ("isp2", "integra", "192.0.2.245", "192.0.2.246")):
            self._batch(isp, f"""link set lo up
addr add {GATEWAY[wan]}/24 dev cust
addr add {up_addr}/30 dev up
link set cust up
link set dev up up
route add default via {inet_addr} dev up
""")
            customers = ", ".join([ROUTER_ADDR["rtrA"][wan], ROUTER_ADDR["rtrB"][wan], VIP[wan]])
            self.nft(isp, f"""
table ip lab {{
    counter bcp38_dropped {{ }}
    chain bcp38 {{
        type filter hook forward priority -10; policy accept;
        iifname "cust" ip saddr != {{ {customers} }} counter name "bcp38_dropped" drop
    }}
    chain upstream {{
        type filter hook forward priority 0; policy accept;
    }}
}}
""")
        # RSTs at either end: a takeover must not reset the held connections (those to or
        # from STREAM_PORT); other RSTs (e.g. a new connection given up during the takeover)
        # are counted apart.
        for ns in ("lan", "inet"):
            self.nft(ns, f"""
table ip watch {{
    counter rst_stream {{ }}
    counter rst_other {{ }}
    chain input {{
        type filter hook input priority 0; policy accept;
        tcp flags & rst == rst th sport {STREAM_PORT} counter name "rst_stream" accept
        tcp flags & rst == rst th dport {STREAM_PORT} counter name "rst_stream" accept
        tcp flags & rst == rst counter name "rst_other"
    }}
}}
""")
        wait_until(self._links_up, 5, "the HA lab's links to come up")

    def _links_up(self) -> bool:
        for ns in ("rtrA", "rtrB", "isp1", "isp2", "lan"):
            out = self.run(ns, "ip -o link show").stdout
            for line in out.splitlines():
                if ": lo:" not in line and "state UP" not in line:
                    return False
        return True

    def down(self) -> None:
        super().down()     # lab.sh down: every process in PREFIX-*, then the namespaces
        self.keepalived.clear()
        self.conntrackd.clear()
        self.wanbalanced.clear()
        self._stream_server = None

    # -- wanbalanced ---------------------------------------------------------------------------

    def ha_config(self, **overrides) -> dict:
        """The config both routers run: the article's WANs (the same gateways, probe targets
        and LAN), each translating LAN connections to its VIP, and ha_pair."""
        config = self.article_config(ha_pair=True, **overrides)
        for wan in config["wans"]:
            wan["snat"] = VIP[wan["name"]]
        return config

    def start_wanbalanced(self, routers: Sequence[str] = ROUTERS, config: dict | None = None
                          ) -> dict[str, Daemon]:
        """wanbalanced in each router from one config file (the same config on both, as an
        operator copies it; `config`, else the file of an earlier call, else ha_config()), each
        with its own runtime dir and the router's state dir; the notify script's wanbalancectl
        (once render_configs() runs) talks to its router's daemon. Waits until both WANs are up
        in each."""
        path = self.workdir / "wanbalance.json"
        if config is not None or not path.exists():
            path.write_text(json.dumps(config or self.ha_config(), indent=2) + "\n")
        commands = dict(self.wanbalancectl) if isinstance(self.wanbalancectl, dict) else {}
        for router in routers:
            daemon = self.start_daemon(path, ns=router)
            self.wanbalanced[router] = daemon
            commands[router] = " ".join(shlex.quote(a) for a in daemon.ctl_command)
        self.wanbalancectl = commands
        for router in routers:
            self.wanbalanced[router].wait_ready()
            for wan in ("charter", "integra"):
                self.wanbalanced[router].wait_state(wan, "up", timeout=10)
        return {r: self.wanbalanced[r] for r in routers}

    def guard_drops(self, router: str) -> int:
        """Packets wanbalanced's HA guard (TCP that is not a SYN opens no connection) dropped in
        the router."""
        out = self.run(router, "nft list chain inet wanbalance guard", check=False).stdout
        m = re.search(r"counter packets (\d+)", out)
        return int(m[1]) if m else 0

    def upstream(self, isp: str, up: bool, family: str | None = None) -> None:
        """The ISP's uplink (isp1/isp2 or a WAN name) stops (or resumes) forwarding."""
        isp = labkit.ISP_OF_WAN.get(isp, isp)
        rules = "" if up else ('add rule ip lab upstream iifname "up" drop\n'
                               'add rule ip lab upstream oifname "up" drop\n')
        self.nft(isp, "flush chain ip lab upstream\n" + rules)

    def rsts(self, ns: str, which: str = "stream") -> int:
        """TCP RST segments received by the LAN ("lan") or the internet ("inet"): "stream"
        those of connections to STREAM_PORT (hold_streams), "other" the rest."""
        out = self.run(ns, f"nft list counter ip watch rst_{which}").stdout
        return int(re.search(r"packets (\d+)", out)[1])

    # -- keepalived and conntrackd ----------------------------------------------------------

    def _files(self, router: str) -> dict[str, Path]:
        d = self.dir(router)
        return {name: d / name for name in (
            "keepalived.conf", "conntrackd.conf", "wanbalance-notify.sh", "wanbalancectl",
            "keepalived.pid", "vrrp.pid", "checkers.pid", "conntrackd.lock", "conntrackd.ctl",
            "conntrackd.log", "keepalived.log", "conntrackd.out", "notify.log", "roles.log")}

    def render_configs(self, router: str) -> dict[str, Path]:
        """Write the shipped examples, with this router's paths, addresses and priority, to
        the router's directory; returns the paths."""
        d = self.dir(router)
        d.mkdir(mode=0o755, exist_ok=True)
        f = self._files(router)
        other = "rtrB" if router == "rtrA" else "rtrA"
        # The notify script calls this wrapper: it logs "TIME ARGS" per call (roles() reads
        # it), then runs the real wanbalancectl if the lab was given one (a command line,
        # e.g. "wanbalancectl --runtime-dir DIR"; WANBALANCECTL in the environment).
        command = (self.wanbalancectl.get(router) if isinstance(self.wanbalancectl, dict)
                   else self.wanbalancectl)
        real = f"exec {command} \"$@\"\n" if command else ""
        f["wanbalancectl"].write_text(
            "#!/bin/sh\n# wanbalancectl for the HA lab: logs its arguments.\n"
            f'printf "%s %s\\n" "$(date +%s.%N)" "$*" >>{f["roles.log"]}\n{real}')
        f["wanbalancectl"].chmod(0o755)
        ctl = str(f["wanbalancectl"])
        keepalived = (EXAMPLES / "keepalived.conf").read_text()
        keepalived = render(keepalived, {
            "router_id wanbalance-1": f"router_id wanbalance-{router}",
            "priority 150": f"priority {PRIORITY[router]}",
            "notify /etc/keepalived/wanbalance-notify.sh": f"notify {f['wanbalance-notify.sh']}",
        }, "keepalived.conf")
        conntrackd = (EXAMPLES / "conntrackd.conf").read_text()
        # Swap the sync addresses on router 2 through a placeholder.
        conntrackd = render(conntrackd, {
            "IPv4_address 192.168.89.1\n": "IPv4_address @SELF@\n",
            "IPv4_Destination_Address 192.168.89.2": "IPv4_Destination_Address @PEER@",
            "LogFile on": f"LogFile {f['conntrackd.log']}",
            "LockFile /var/lock/conntrackd.lock": f"LockFile {f['conntrackd.lock']}",
            "Path /var/run/conntrackd.ctl": f"Path {f['conntrackd.ctl']}",
        }, "conntrackd.conf")
        conntrackd = conntrackd.replace("@SELF@", ROUTER_ADDR[router]["sync"]).replace(
            "@PEER@", ROUTER_ADDR[other]["sync"])
        notify = (EXAMPLES / "wanbalance-notify.sh").read_text()
        notify = render(notify, {
            "${CONNTRACKD_CONF:-/etc/conntrackd/conntrackd.conf}":
                f"${{CONNTRACKD_CONF:-{f['conntrackd.conf']}}}",
            "${CONNTRACKD_LOCK:-/var/lock/conntrackd.lock}":
                f"${{CONNTRACKD_LOCK:-{f['conntrackd.lock']}}}",
            "${WANBALANCECTL:-wanbalancectl}": f"${{WANBALANCECTL:-{ctl}}}",
            "${WANBALANCE_NOTIFY_LOG:-}": f"${{WANBALANCE_NOTIFY_LOG:-{f['notify.log']}}}",
        }, "wanbalance-notify.sh")
        f["keepalived.conf"].write_text(keepalived)
        f["conntrackd.conf"].write_text(conntrackd)
        f["wanbalance-notify.sh"].write_text(notify)
        f["wanbalance-notify.sh"].chmod(0o755)
        return f

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
        for key in ("WANBALANCECTL", "CONNTRACKD_CONF", "CONNTRACKD_LOCK",
                    "WANBALANCE_NOTIFY_LOG", "CONNTRACKD"):
            env.pop(key, None)     # the rendered script's defaults are the lab's own
        return env

    def start_conntrackd(self, router: str) -> subprocess.Popen:
        """conntrackd in the router's namespace (foreground), with its own config, lock and
        socket; waits until it answers `conntrackd -s`. A lock file left by a killed one is
        removed first (DESIGN §7 HA (5))."""
        f = self.render_configs(router) if not self._files(router)["conntrackd.conf"].exists() \
            else self._files(router)
        f["conntrackd.lock"].unlink(missing_ok=True)
        with open(f["conntrackd.out"], "ab") as out:
            proc = self.popen(router, ["conntrackd", "-C", str(f["conntrackd.conf"])],
                              stdout=out, stderr=out, env=self._env())
        self.conntrackd[router] = proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise LabError(f"conntrackd in {router} exited {proc.returncode}: "
                               + f["conntrackd.out"].read_text(errors="replace")[-2000:])
            return self.ctd(router, "-s", check=False).returncode == 0
        wait_until(answers, 10, f"conntrackd in {router} to answer")
        return proc

    def ctd(self, router: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """conntrackd -C CONF ARGS in the router (e.g. "-e" dumps the external cache)."""
        conf = self._files(router)["conntrackd.conf"]
        return self.run(router, ["conntrackd", "-C", str(conf), *args], check=check)

    def synced(self, router: str, flows: Sequence[tuple[str, int]]) -> int:
        """How many of `flows` ((LAN address, port) to the stream server, Streams.flows) the
        router's conntrackd holds in its external cache as ESTABLISHED."""
        return len(_established(self.ctd(router, "-e", check=False).stdout) & set(flows))

    def committed(self, router: str, flows: Sequence[tuple[str, int]]) -> int:
        """How many of `flows` are ESTABLISHED in the router's kernel conntrack table."""
        out = self.run(router, ["conntrack", "-L", "-p", "tcp", "--dport", str(STREAM_PORT)],
                       check=False).stdout
        return len(_established(out) & set(flows))

    def start_keepalived(self, router: str) -> subprocess.Popen:
        """keepalived in the router's namespace, in the foreground (-n), logging to a file,
        with its own pid files (DESIGN §7 HA (5)). The Popen is keepalived's parent; its VRRP
        child is in vrrp.pid."""
        f = self._files(router)
        if not f["keepalived.conf"].exists():
            self.render_configs(router)
        running = self.keepalived.get(router)
        if running is not None and running.poll() is None:
            raise LabError(f"keepalived is already running in {router}")
        # A SIGKILLed keepalived leaves its pid files behind, and a new keepalived exits at once
        # when a file names a live process: any process that got the same pid since.
        for name in ("keepalived.pid", "vrrp.pid", "checkers.pid"):
            f[name].unlink(missing_ok=True)
        argv = ["keepalived", "-f", str(f["keepalived.conf"]), "-p", str(f["keepalived.pid"]),
                "-r", str(f["vrrp.pid"]), "-c", str(f["checkers.pid"]), "-n", "-l", "-D"]
        with open(f["keepalived.log"], "ab") as log:
            proc = self.popen(router, argv, stdout=log, stderr=log, env=self._env())
        self.keepalived[router] = proc
        return proc

    def kill_keepalived(self, router: str, sig: int = signal.SIGKILL) -> float:
        """Signal keepalived's parent process (its VRRP child notices and gives the addresses
        up with a priority 0 advert, DESIGN §7 HA (6)); returns the time.time() of the kill."""
        proc = self.keepalived[router]
        t = time.time()
        proc.send_signal(sig)
        proc.wait(5)
        return t

    def links(self, router: str, up: bool, wans_only: bool = False) -> float:
        """Take every link of the router down (or up) at the switch and on the sync veth, as
        pulled cables would (wans_only: its two WAN links alone, as when the switch on the ISP
        side dies; the LAN and the sync link stay); returns the time.time() it happened."""
        ports = {"rtrA": ("a1", "a2", "a3"), "rtrB": ("b1", "b2", "b3")}[router]
        if wans_only:
            ports = ports[:2]
        state = "up" if up else "down"
        t = time.time()
        self._batch("sw", "".join(f"link set {port} {state}\n" for port in ports))
        if not wans_only:
            self._batch(router, f"link set ether4 {state}\n")
        return t

    def kill_all(self, router: str) -> float:
        """SIGKILL every process of the router at once: keepalived's parent and VRRP child,
        conntrackd and wanbalanced (as when the router's software dies but its kernel keeps its
        addresses, routes and rules, DESIGN §7 HA (6)); returns the time.time() of the kill."""
        vrrp = int(self._files(router)["vrrp.pid"].read_text().split()[0])
        procs = [self.keepalived[router], self.conntrackd[router]]
        if router in self.wanbalanced:
            procs.append(self.wanbalanced[router].proc)
        pids = [procs[0].pid, vrrp, *(p.pid for p in procs[1:])]
        t = time.time()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        for proc in procs:
            proc.wait(5)
        return t

    def vips(self, router: str) -> set[str]:
        """The VIPs the router holds now."""
        out = self.run(router, "ip -4 -o addr show").stdout
        held = set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out))
        return held & set(VIP.values())

    def wait_vips(self, router: str, timeout: float = 5) -> float:
        """Wait until the router holds every VIP; returns the time.time() it was seen."""
        wait_until(lambda: self.vips(router) == set(VIP.values()), timeout,
                   f"{router} to hold every VIP", interval=0.01)
        return time.time()

    def roles(self, router: str) -> list[tuple[float, str]]:
        """[(time, role)] from the wanbalancectl wrapper's log: what the notify script told it."""
        try:
            text = self._files(router)["roles.log"].read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            t, _, args = line.partition(" ")
            words = args.split()
            if len(words) == 2 and words[0] == "role":
                out.append((float(t), words[1]))
        return out

    def wait_role(self, router: str, role: str, timeout: float = 5, after: float = 0) -> float:
        """Wait until the notify script told the router's wanbalancectl `role ROLE` (at or
        after time.time() `after`); returns when it did."""
        def told():
            return next((t for t, r in self.roles(router) if r == role and t >= after), None)
        return wait_until(told, timeout, f"{router}'s notify script to run `role {role}`",
                          interval=0.02)

    def start_pair(self) -> None:
        """conntrackd on both routers, then keepalived on rtrA until it is primary, then on
        rtrB until it is backup: the VIPs sit on rtrA."""
        for router in ROUTERS:
            self.render_configs(router)
            self.start_conntrackd(router)
        self.start_keepalived("rtrA")
        self.wait_vips("rtrA", timeout=10)
        self.wait_role("rtrA", "primary", timeout=10)
        self.start_keepalived("rtrB")
        self.wait_role("rtrB", "backup", timeout=10)
        if self.vips("rtrB"):
            raise LabError(f"rtrB took VIPs {self.vips('rtrB')} although rtrA is primary")

    def logs(self, router: str, tail: int = 30) -> str:
        """The tail of the router's keepalived, conntrackd, notify and roles logs."""
        f = self._files(router)
        parts = []
        for name in ("keepalived.log", "conntrackd.log", "conntrackd.out", "notify.log",
                     "roles.log"):
            try:
                lines = f[name].read_text(errors="replace").splitlines()[-tail:]
            except FileNotFoundError:
                continue
            parts.append(f"--- {router} {name} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def start_stream_server(self) -> subprocess.Popen:
        """tools/stream.py server on the internet's server address, port STREAM_PORT."""
        proc = self.popen("inet", [labkit.PYTHON, str(labkit.TOOLS / "stream.py"), "server",
                                   "--bind", SERVER, "--port", str(STREAM_PORT)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = labkit.LineReader(proc, proc.stdout).readline(10, "the stream server")
        if line != "READY":
            raise LabError(f"stream server: unexpected output {line!r}")
        return proc

    def hold_streams(self, n: int, src: str, interval: float = 0.01) -> Streams:
        """n TCP connections from the LAN to the stream server, data flowing both ways every
        `interval` seconds, until .release() (starts the server on first use)."""
        if self._stream_server is None or self._stream_server.poll() is not None:
            self._stream_server = self.start_stream_server()
        argv = [labkit.PYTHON, str(labkit.TOOLS / "stream.py"), "client", "--dst", SERVER,
                "--port", str(STREAM_PORT), "--src", src, "-n", str(n),
                "--interval", str(interval)]
        return Streams(self, argv)

    def spread(self, n: int, src: str | None = labkit.LAN_HOST, dst: str = SERVER,
               **kwargs) -> Counter:
        """Which WAN (by the VIP the server saw) carried each of n new connections."""
        results = self.connect_many(n, src=src, dst=dst, **kwargs)
        return Counter("failed" if not r["ok"] else WAN_OF_SOURCE.get(r["seen"], r["seen"])
                              for r in results)


__all__ = ["HaLab", "Streams", "HA_ROLES", "ROUTERS", "VIP", "ROUTER_ADDR", "GATEWAY",
           "INTERFACE", "EXAMPLES", "STREAM_PORT", "render"]
