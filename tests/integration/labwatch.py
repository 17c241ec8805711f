# Watching a failover from the outside: the daemon's event lines with the moment each was seen,
# conntrack entries by WAN, and counts of wanbalance's own kernel objects. Used by the failover
# tests and bench/failover.py.

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from labcore import BALANCED_TABLE, WAN_OF_SOURCE, progress, wait_until

if TYPE_CHECKING:
    from labdaemon import Daemon
    from labkit import Lab

# Off the journal an event is a log line ending "[event=wan-down wan=charter interface=ether1
# state=down]" (and family=ipv4|ipv6 once an event is about one family, in any position);
# the reason is the text after the last ": " of the message.
_EVENT = re.compile(r"^wanbalanced\[(?P<level>\w+)\]: (?P<message>.*) "
                    r"\[(?P<fields>event=[a-z-]+(?: [a-z_]+=\S+)*)\]$")


@dataclasses.dataclass
class Event:
    at: float            # time.monotonic() when the line was first seen in the log
    kind: str            # wan-down, wan-up, all-down, config-reloaded
    wan: str | None
    interface: str | None
    state: str | None
    level: str
    message: str
    family: str | None = None    # "ipv4" / "ipv6"; None: the line names no family

    @property
    def reason(self) -> str:
        return self.message.split(": ", 1)[1] if ": " in self.message else ""


class EventWatch:
    """Follows a daemon's log from a thread every `poll` seconds and timestamps each event line
    as it appears, so failover times can be measured without timestamps in the log itself."""

    def __init__(self, daemon: Daemon, poll: float = 0.005):
        self.path: Path = daemon.log_path
        self.poll = poll
        self.events: list[Event] = []
        self.lines: list[tuple[float, str]] = []
        self._offset = 0
        self._partial = b""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        if not chunk:
            return
        now = time.monotonic()
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        with self._lock:
            for raw in complete:
                line = raw.decode(errors="replace")
                self.lines.append((now, line))
                m = _EVENT.match(line)
                if m:
                    f = dict(field.split("=", 1) for field in m["fields"].split())
                    self.events.append(Event(now, f["event"], f.get("wan"), f.get("interface"),
                                             f.get("state"), m["level"], m["message"],
                                             f.get("family")))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._read()
            time.sleep(self.poll)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def select(self, kind: str | None = None, wan: str | None = None,
               since: float = 0.0, family: str | None = None) -> list[Event]:
        """Events of a kind, WAN and family (None: any), seen at or after `since`."""
        with self._lock:
            return [e for e in self.events if (kind is None or e.kind == kind)
                    and (wan is None or e.wan == wan) and e.at >= since
                    and (family is None or e.family == family)]

    def wait(self, kind: str, wan: str | None = None, since: float = 0.0,
             timeout: float = 10.0, family: str | None = None) -> Event:
        """The first `kind` event for `wan` (and `family`) seen at or after `since`
        (time.monotonic())."""
        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + 1.0
        what = " ".join(x for x in (kind, wan, family) if x)
        while True:
            found = self.select(kind, wan, since, family)
            if found:
                return found[0]
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(f"timed out after {timeout:.1f}s waiting for a {what} event")
            if now >= next_report:
                progress(f"waiting for {what}... {now - deadline + timeout:.1f}s")
                next_report += 1.0
            time.sleep(self.poll)


# -- conntrack ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CtEntry:
    id: int
    proto: str
    src: str          # LAN client
    sport: int
    dst: str
    dport: int
    nat_addr: str     # destination of the reply direction: the WAN address it was masqueraded to
    mark: int
    state: str
    wan: str | None = None    # the WAN whose address nat_addr is


def conntrack_entries(lab: Lab, dst: str | None = None, dport: int | None = None,
                      proto: str = "tcp", family: str = "ipv4") -> list[CtEntry]:
    """conntrack -L in the router, parsed (one family, one protocol, optionally one
    destination)."""
    wan_of = lab.wan_sources() if family == "ipv6" else WAN_OF_SOURCE
    argv = ["conntrack", "-L", "-f", family, "-p", proto, "-o", "id"]
    if dst:
        argv += ["-d", dst]
    if dport is not None:
        argv += ["--dport", str(dport)]
    out = lab.run("rtr", argv).stdout
    entries = []
    for line in out.splitlines():
        srcs = re.findall(r"\bsrc=(\S+)", line)
        dsts = re.findall(r"\bdst=(\S+)", line)
        sports = re.findall(r"\bsport=(\d+)", line)
        dports = re.findall(r"\bdport=(\d+)", line)
        ident = re.search(r"\bid=(\d+)", line)
        if len(srcs) < 2 or len(dsts) < 2 or not ident:
            continue
        mark = re.search(r"\bmark=(\d+)", line)
        fields = line.split()
        state = fields[3] if len(fields) > 3 and fields[3].isupper() else ""
        entries.append(CtEntry(int(ident[1]), fields[0], srcs[0], int(sports[0]) if sports else 0,
                               dsts[0], int(dports[0]) if dports else 0, dsts[1],
                               int(mark[1]) if mark else 0, state, wan_of.get(dsts[1])))
    return entries


# -- wanbalance's own kernel objects -----------------------------------------------------------

def own_objects(lab: Lab, family: str = "ipv4") -> dict:
    """What wanbalance owns in the router, counted: nft tables named wanbalance, proto-87 rules
    and routes of one family (as text lines, so duplicates show), and the balance map's
    elements (for "ipv6" every map of the table whose name starts with "balance")."""
    flag = "-6" if family == "ipv6" else "-4"
    tables = lab.run("rtr", "nft list tables").stdout.count("table inet wanbalance")
    rules = [line for line in lab.run("rtr", f"ip {flag} rule show").stdout.splitlines()
             if re.search(r"proto (87|wanbalance)\b", line)]
    routes = [re.sub(r" expires -?\d+sec| hoplimit \d+", "", line) for line in
              lab.run("rtr", f"ip {flag} route show table all").stdout.splitlines()
              if re.search(r"proto (87|wanbalance)\b", line)]
    balance = balance_map(lab) if family == "ipv4" else balance_maps(lab)
    return {"tables": tables, "rules": rules, "routes": routes, "balance": balance}


def balance_maps(lab: Lab) -> dict[str, dict[int, str]]:
    """Every map of table inet wanbalance named balance*: name -> {bucket: WAN}."""
    out = lab.run("rtr", "nft list table inet wanbalance", check=False).stdout
    names = re.findall(r"^\s*map (balance\S*) \{", out, re.M)
    return {name: balance_map(lab, name) for name in names}


def balance_map(lab: Lab, name: str = "balance") -> dict[int, str]:
    """The balance map of table inet wanbalance: hash bucket -> WAN name (from "jump wan_NAME")."""
    out = lab.run("rtr", f"nft list map inet wanbalance {name}").stdout
    m = re.search(r"elements = \{(.*?)\}", out, re.S)
    if not m:
        return {}
    result: dict[int, str] = {}
    for key, wan in re.findall(r"(\d+) : (?:goto|jump) wan_(\S+?)(?=[,\s]|$)", m[1]):
        if int(key) in result:
            raise AssertionError(f"balance map lists bucket {key} twice:\n{out}")
        result[int(key)] = wan
    return result


def main_default(lab: Lab, family: str = "ipv4") -> str:
    """The balanced multipath default: in wanbalance's own table, not in main."""
    flag = "-6" if family == "ipv6" else "-4"
    # A table the kernel has never seen makes `ip` fail with "FIB table does not exist".
    return lab.run("rtr", f"ip {flag} route show default table {BALANCED_TABLE}",
                   check=family == "ipv4").stdout.strip()


def start_watched(lab: "Lab", config: dict):
    """wanbalanced with config, once both WANs answered a probe round (up on evidence, not just
    optimism); and an EventWatch on its log."""
    d = lab.start_daemon(config)
    d.wait_ready()
    wait_until(lambda: all(w["rtt_ms"] for w in d.status()["wans"]), 5, "both WANs to answer probes")
    return d, EventWatch(d)


def flap(lab: "Lab", watch: EventWatch, wan: str, cycles: int) -> None:
    """Takes `wan` down and back `cycles` times, by carrier and by upstream in turn, each time
    until the daemon logged it."""
    for cycle in range(cycles):
        knob = lab.upstream if cycle % 2 else lab.carrier
        mark = time.monotonic()
        knob(wan, False)
        watch.wait("wan-down", wan, since=mark, timeout=10)
        mark = time.monotonic()
        knob(wan, True)
        watch.wait("wan-up", wan, since=mark, timeout=10)
