# The soak shared by tests/integration/test_faults.py and bench/soak.py: one WAN flaps every few
# seconds (carrier and upstream in turn) while the daemon's RSS and open fds are sampled; at the
# end every kernel object wanbalance owns must exist exactly once, exactly as before.

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import threading
import time
from typing import TYPE_CHECKING, Callable

from labcore import progress, wait_until
from labwatch import EventWatch, own_objects

if TYPE_CHECKING:
    from labdaemon import Daemon
    from labkit import Lab

# Probing fast enough that a flap's down and up both land within a couple of seconds.
SOAK_PROBE = {"interval_ms": 100, "timeout_ms": 300, "down_after": 2, "up_after": 2}
FLAP_PERIOD_S = 3.0      # one down+up cycle starts every this many seconds
DOWN_HOLD_S = 0.5        # kept down this long after the daemon noticed
SAMPLE_EVERY_S = 1.0
EVENT_TIMEOUT_S = 10.0
# Log lines that would mean the daemon took its own nftables changes for someone else's.
FOREIGN_CHANGE = re.compile(r"changed table inet wanbalance|nftables notifications were lost")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclasses.dataclass
class Sample:
    at: float      # seconds since the soak started
    rss_kib: int
    fds: int


@dataclasses.dataclass
class SoakResult:
    seconds: float
    flaps: int                      # down+up cycles driven
    transitions: int                # the flapped WAN's status "transitions" during the soak
    events: int                     # wan-down/wan-up lines it logged for that WAN during the soak
    samples: list[Sample]
    fds_start: int
    fds_end: int
    objects_start: dict
    objects_end: dict
    kernel_same: bool               # nft ruleset, rules and routes exactly as before the soak
    foreign_repairs: int            # log lines saying someone else changed the table (must be 0)
    missed: list[str]               # flaps whose down or up the daemon did not report in time

    @property
    def rss(self) -> list[int]:
        return [s.rss_kib for s in self.samples]

    def rss_growth_kib(self) -> int:
        """Second half's peak minus first half's peak: steady memory gives ~0, a leak grows
        with the run; the first half absorbs the allocator's warm-up."""
        rss = self.rss
        first, second = rss[:len(rss) // 2], rss[len(rss) // 2:]
        return max(second) - max(first) if first and second else 0

    def rss_summary(self) -> dict[str, int]:
        rss = self.rss
        return {"start": rss[0], "min": min(rss), "max": max(rss), "end": rss[-1],
                "median": int(statistics.median(rss))}

    @staticmethod
    def counts(objects: dict) -> dict[str, int]:
        return {"tables": objects["tables"], "rules": len(objects["rules"]),
                "routes": len(objects["routes"]), "balance map elements": len(objects["balance"])}

    def problems(self, rss_bound_kib: int | None) -> list[str]:
        """Everything that makes the soak a failure, one line each (no RSS bound: None)."""
        out = []
        if self.objects_end["tables"] != 1:
            out.append(f"{self.objects_end['tables']} wanbalance tables at the end")
        for key in ("rules", "routes", "balance"):
            if self.objects_end[key] != self.objects_start[key]:
                out.append(f"{key} differ after the soak: {self.objects_start[key]!r} -> "
                           f"{self.objects_end[key]!r}")
        if not self.kernel_same:
            out.append("the kernel's ruleset, rules or routes differ from before the soak")
        if self.fds_end != self.fds_start:
            out.append(f"open fds {self.fds_start} -> {self.fds_end}")
        if rss_bound_kib is not None and self.rss_growth_kib() > rss_bound_kib:
            out.append(f"RSS grew {self.rss_growth_kib()} KiB from the first half's peak to the "
                       f"second's (bound {rss_bound_kib} KiB)")
        if self.foreign_repairs:
            out.append(f"{self.foreign_repairs} log lines took the daemon's own nftables changes "
                       "for someone else's")
        out += self.missed
        if self.transitions != 2 * self.flaps or self.events != self.transitions:
            out.append(f"{self.flaps} flaps gave {self.transitions} transitions and "
                       f"{self.events} logged events (expected {2 * self.flaps} each)")
        return out


class _Sampler:
    """RSS and fd count of one process every SAMPLE_EVERY_S, from a thread."""

    def __init__(self, pid: int, start: float):
        self.pid, self.start = pid, start
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> Sample:
        s = Sample(time.monotonic() - self.start, rss_kib(self.pid), fd_count(self.pid))
        self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            try:
                self.sample()
            except (OSError, RuntimeError):
                return  # the daemon is gone; run_soak finds out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start_daemon(lab: Lab) -> Daemon:
    """The article's config with fast probes; returns once both WANs answered probes."""
    d = lab.start_daemon(lab.article_config(probe=SOAK_PROBE))
    d.wait_ready()
    wait_until(lambda: all(w["rtt_ms"] for w in d.status()["wans"]), 10,
               "both WANs to answer probes")
    return d


def _transitions(daemon: Daemon, wan: str) -> int:
    return daemon.wan(wan)["transitions"]


def run_soak(lab: Lab, daemon: Daemon, seconds: float, wan: str = "charter",
             progress_every: float = 30.0, say: Callable[[str], None] = progress) -> SoakResult:
    """Flap `wan` (carrier, then upstream, in turn) for `seconds`, bring it back, count."""
    watch = EventWatch(daemon, poll=0.02)
    time.sleep(0.3)
    before = lab.kernel_state()
    objects_start = own_objects(lab)
    transitions_start = _transitions(daemon, wan)
    fds_start = fd_count(daemon.pid)
    start = time.monotonic()
    sampler = _Sampler(daemon.pid, start)
    sampler.sample()
    flaps = 0
    missed: list[str] = []
    next_report = start + progress_every
    try:
        while time.monotonic() - start < seconds:
            cycle = time.monotonic()
            name = "carrier" if flaps % 2 == 0 else "upstream"
            knob = lab.carrier if name == "carrier" else lab.upstream
            knob(wan, False)
            try:
                watch.wait("wan-down", wan, since=cycle, timeout=EVENT_TIMEOUT_S)
            except TimeoutError:
                missed.append(f"flap {flaps + 1} ({name}): no wan-down within {EVENT_TIMEOUT_S:.0f} s")
            time.sleep(DOWN_HOLD_S)
            healed = time.monotonic()
            knob(wan, True)
            try:
                watch.wait("wan-up", wan, since=healed, timeout=EVENT_TIMEOUT_S)
            except TimeoutError:
                missed.append(f"flap {flaps + 1} ({name}): no wan-up within {EVENT_TIMEOUT_S:.0f} s")
            flaps += 1
            if not daemon.running():
                raise RuntimeError(f"wanbalanced exited ({daemon.returncode}) during the soak")
            now = time.monotonic()
            if now >= next_report:
                s = sampler.samples[-1]
                say(f"soak {now - start:.0f}/{seconds:.0f} s: {flaps} flaps, RSS {s.rss_kib} KiB, "
                    f"{s.fds} fds")
                next_report += progress_every
            rest = min(FLAP_PERIOD_S - (now - cycle), seconds - (now - start))
            if rest > 0:
                time.sleep(rest)
        # Every WAN up again (a loaded machine may have delayed the other WAN's probes too),
        # then the last changes land.
        wait_until(lambda: all(w["state"] == "up" for w in daemon.status()["wans"]), 20,
                   "every WAN to be up after the soak", interval=0.2)
        time.sleep(1.0)
        sampler.sample()
    finally:
        sampler.stop()
        watch.stop()
    return SoakResult(
        seconds=time.monotonic() - start, flaps=flaps,
        transitions=_transitions(daemon, wan) - transitions_start,
        events=len(watch.select("wan-down", wan, since=start))
        + len(watch.select("wan-up", wan, since=start)),
        samples=sampler.samples, fds_start=fds_start, fds_end=fd_count(daemon.pid),
        objects_start=objects_start, objects_end=own_objects(lab),
        kernel_same=lab.kernel_state() == before,
        foreign_repairs=sum(1 for _, line in watch.lines if FOREIGN_CHANGE.search(line)),
        missed=missed)
