# One takeover of an HA pair, measured (issue 14): what test_ha_lab.py asserts on and what
# bench/ha.py records, so both measure the same thing the same way.
"""hatakeover — fail an HA lab's primary while held connections carry data, and measure.

    with HaLab() as lab:
        lab.start_wanbalanced(); lab.start_pair()
        held = hold(lab)                                  # 20 connections, data both ways
        t = take_over(lab, held, "links-down", "rtrA")    # rtrB takes over
        assert not t.lost and t.longest_gap_ms < 1500
        restore(lab, "links-down", "rtrA")                # rtrA back, as backup, resynced

Failure kinds (FAILURES):
  keepalived-sigkill  keepalived's parent killed: its VRRP child sends priority 0 and gives the
                      addresses up
  links-down          every link of the router down (LAN, both WANs, sync): no advert for ~0.3 s
  wan-links-down      both WAN links down, the LAN and the sync link up: keepalived's WAN
                      instances go FAULT and take the sync group with them; the router's
                      wanbalanced loses both WANs while its conntrackd still reaches the other
  all-killed          keepalived (parent and VRRP child), conntrackd and wanbalanced SIGKILLed
                      at once: the router keeps its addresses, routes and rules in its kernel,
                      the other takes over by gratuitous ARP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import labkit
from labha import ROUTERS, VIP, HaLab, Streams

HELD = 20
HELD_SOURCES = "192.168.88.11-192.168.88.30"    # one long-lived connection per source
NEW_SOURCES = "192.168.88.31-192.168.88.40"     # new connections during and after a takeover
WAN_OF_VIP = {v: k for k, v in VIP.items()}
AFTER_S = 1.5       # data kept flowing after the takeover before the connections are closed

FAILURES = {
    "keepalived-sigkill": lambda lab, router: lab.kill_keepalived(router),
    "links-down": lambda lab, router: lab.links(router, up=False),
    "wan-links-down": lambda lab, router: lab.links(router, up=False, wans_only=True),
    "all-killed": lambda lab, router: lab.kill_all(router),
}


def other(router: str) -> str:
    return "rtrB" if router == "rtrA" else "rtrA"


def by_wan(counter) -> dict[str, int]:
    """A spread by the VIP the server saw, keyed by WAN name."""
    return {WAN_OF_VIP.get(k, k): n for k, n in counter.items()}


def wait_status_role(lab: HaLab, router: str, role: str, timeout: float = 5) -> None:
    labkit.wait_until(lambda: lab.wanbalanced[router].status()["role"] == role, timeout,
                      f"{router}'s wanbalanced status to show role {role}")


def hold(lab: HaLab) -> Streams:
    """HELD connections from HELD_SOURCES to the stream server, data both ways every 10 ms."""
    held = lab.hold_streams(HELD, src=HELD_SOURCES)
    if held.ok != HELD:
        raise labkit.LabError(f"only {held.ok} of {HELD} connections were established")
    return held


@dataclass
class Takeover:
    failure: str
    primary: str                 # the router that failed
    backup: str                  # the one that took over
    vips_ms: float               # from the failure until the backup held every VIP
    new_ms: float                # ... until the first new connection worked
    balanced_ms: float           # ... until 10 more new connections were done
    spread: dict[str, int]       # those 10, per WAN
    role_ms: float               # ... until the notify script said `role primary`
    committed: int               # held connections in the new primary's conntrack table
    rst: dict[str, int]          # RSTs of held connections seen in the LAN and the internet
    rst_other: dict[str, int]    # other RSTs
    guard_drops: int             # stray TCP the new primary's guard chain dropped
    sync_ms: float               # waited for the held connections in the backup's cache
    results: list[dict] = field(default_factory=list)   # tools/stream.py, per connection

    @property
    def gaps(self) -> list[float]:
        return [r["max_gap_ms"] for r in self.results]

    @property
    def longest_gap_ms(self) -> float:
        return max(self.gaps)

    @property
    def lost(self) -> list[dict]:
        return [r for r in self.results if not r["alive"]]

    def line(self) -> str:
        return (f"HA takeover ({self.failure} of {self.primary}; the backup had every connection "
                f"{self.sync_ms:.0f} ms after they were up): VIPs on {self.backup} after "
                f"{self.vips_ms:.0f} ms, first new connection at {self.new_ms:.0f} ms, 10 more "
                f"by {self.balanced_ms:.0f} ms {self.spread}, `role primary` at "
                f"{self.role_ms:.0f} ms; longest data gap {self.longest_gap_ms:.0f} ms, "
                f"{len(self.lost)} of {len(self.results)} connections lost; guard drops "
                f"{self.guard_drops}; RSTs of held connections {self.rst}, others "
                f"{self.rst_other}")


def _first_new_connection(lab: HaLab, since: float) -> float:
    src = NEW_SOURCES.split("-")[0]
    while True:
        r = lab.connect_many(1, src=src, timeout=0.25)[0]
        if r["ok"]:
            return time.time()
        if time.time() - since > 5:
            raise labkit.LabError(f"no new connection worked within 5 s: {r['error']}")


def take_over(lab: HaLab, held: Streams, failure: str, primary: str) -> Takeover:
    """Once the backup's conntrackd holds every connection of `held` (conntrackd syncs a new
    connection within milliseconds; one younger than that is not yet the backup's to keep),
    fail `primary` (a FAILURES kind) while `held` carries data, wait until the other router
    holds the VIPs, a new connection works and its wanbalanced says primary, keep the data
    flowing AFTER_S more, then close the held connections; returns what was measured."""
    backup = other(primary)
    waiting = time.monotonic()
    labkit.wait_until(lambda: lab.synced(backup, held.flows) == len(held.flows), 5,
                      f"{backup}'s conntrackd to hold the {len(held.flows)} connections in its "
                      "external cache", interval=0.01)
    sync_ms = (time.monotonic() - waiting) * 1000
    time.sleep(0.5)     # data before the failure
    rst_before = {(ns, w): lab.rsts(ns, w) for ns in ("lan", "inet") for w in ("stream", "other")}
    guard_before = lab.guard_drops(backup)

    killed = FAILURES[failure](lab, primary)
    vips_at = lab.wait_vips(backup, timeout=5)
    new_at = _first_new_connection(lab, killed)
    spread = by_wan(lab.spread(10, src=NEW_SOURCES))
    balanced_at = time.time()
    role_at = lab.wait_role(backup, "primary", timeout=5, after=killed)
    wait_status_role(lab, backup, "primary")
    time.sleep(AFTER_S)
    committed = lab.committed(backup, held.flows)
    # Before the release: closing a socket while the server still sends makes the client's
    # kernel answer with RSTs.
    rst = {ns: lab.rsts(ns) - rst_before[ns, "stream"] for ns in ("lan", "inet")}
    rst_other = {ns: lab.rsts(ns, "other") - rst_before[ns, "other"] for ns in ("lan", "inet")}
    results = held.release(timeout=30)
    return Takeover(failure, primary, backup, (vips_at - killed) * 1000, (new_at - killed) * 1000,
                    (balanced_at - killed) * 1000, spread, (role_at - killed) * 1000, committed,
                    rst, rst_other, lab.guard_drops(backup) - guard_before, sync_ms, results)


def restore(lab: HaLab, failure: str, router: str, timeout: float = 15) -> None:
    """Bring back a router that failed `failure`: it rejoins as backup (nopreempt), its
    wanbalanced says so and has both WANs up again, and its conntrackd asked for a resync."""
    since = time.time()
    if failure in ("links-down", "wan-links-down"):
        lab.links(router, up=True, wans_only=failure == "wan-links-down")
    elif failure == "all-killed":
        lab.start_wanbalanced([router])
        lab.render_configs(router)          # the notify script's wanbalancectl: the new daemon
        lab.start_conntrackd(router)
    if failure not in ("links-down", "wan-links-down"):
        lab.start_keepalived(router)
    lab.wait_role(router, "backup", timeout=timeout, after=since)
    wait_status_role(lab, router, "backup", timeout=timeout)
    for wan in ("charter", "integra"):
        lab.wanbalanced[router].wait_state(wan, "up", timeout=timeout)
    if lab.vips(router):
        raise labkit.LabError(f"{router} came back holding {lab.vips(router)}")


__all__ = ["FAILURES", "HELD", "HELD_SOURCES", "NEW_SOURCES", "ROUTERS", "Takeover", "by_wan",
           "hold", "other", "restore", "take_over", "wait_status_role"]
