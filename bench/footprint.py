#!/usr/bin/env python3
# Footprint benchmark: the daemon's memory (VmRSS, VmHWM), CPU time and open file descriptors
# over a steady run with 16 WANs all up, each probed every 200 ms.
"""Measure wanbalanced's resident memory and CPU with 16 WANs probed every 200 ms (needs root
and a built daemon).

Lab: bench/multiwan.py with 16 WANs, probes every 200 ms to a target beyond each gateway (80
probes a second), every WAN up and answering. After READY and every WAN answering, the script
reads /proc/PID/status (VmRSS, VmHWM, Threads), /proc/PID/stat (utime + stime) and
/proc/PID/fd at the start, once a second during the window (RSS) and at the end. CPU is the
daemon's user + system time over the window as a percentage of one core.
Build first: meson setup build && ninja -C build wanbalanced wanbalancectl
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import fail, finish, problems_text  # noqa: E402

import multiwan as mw  # noqa: E402
from multiwan import LabError, progress  # noqa: E402

N_WANS = 16
INTERVAL_MS = 200
TICKS = os.sysconf("SC_CLK_TCK")


def sample(pid: int) -> dict:
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.split()
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"t": time.monotonic(), "rss_kb": int(status["VmRSS"][0]),
            "hwm_kb": int(status["VmHWM"][0]), "threads": int(status["Threads"][0]),
            "cpu_ticks": int(stat[11]) + int(stat[12]),  # utime, stime: fields 14 and 15
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def probes(daemon) -> dict:
    st = mw.control(daemon, {"command": "status"})["status"]
    return {"up": sum(w["state"] == "up" for w in st["wans"]),
            "answering": sum(w["rtt_ms"] is not None for w in st["wans"]),
            "sent": sum(w["probes_sent"] for w in st["wans"]),
            "lost": sum(w["probes_lost"] for w in st["wans"]),
            "transitions": sum(w["transitions"] for w in st["wans"])}


def mib(kb: int) -> str:
    return f"{kb / 1024:.1f} MiB"


def measure(seconds: float) -> dict:
    with mw.MultiWanLab(N_WANS) as lab:
        ready = mw.ReadyListener(lab.workdir)
        t0 = time.monotonic()
        d = lab.start_daemon(lab.config(interval_ms=INTERVAL_MS), env=ready.env())
        try:
            t_ready = ready.wait_ready(60) - t0
        finally:
            ready.close()
        comm = Path(f"/proc/{d.pid}/comm").read_text().strip()
        if comm != "wanbalanced":
            raise LabError(f"pid {d.pid} is {comm!r}, not wanbalanced")
        mw.labkit.wait_until(lambda: probes(d)["answering"] == N_WANS, 30,
                             f"all {N_WANS} WANs to answer probes", interval=0.2)
        time.sleep(0.2)  # the status request's connection is closed by then
        s0 = sample(d.pid)  # before the status request: its connection is an fd too
        p0 = probes(d)
        rss = [s0["rss_kb"]]
        next_report = time.monotonic() + 10
        while time.monotonic() - s0["t"] < seconds:
            time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - s0["t"]))))
            if not d.running():
                raise LabError(f"wanbalanced exited ({d.returncode}); log:\n{d.log_tail()}")
            rss.append(sample(d.pid)["rss_kb"])
            if time.monotonic() >= next_report:
                progress(f"footprint: {time.monotonic() - s0['t']:.0f}/{seconds:.0f} s, "
                         f"RSS {mib(rss[-1])}")
                next_report += 10
        s1 = sample(d.pid)
        p1 = probes(d)
        code = d.stop()
        if code != 0:
            raise LabError(f"wanbalanced exited {code} on SIGTERM; log:\n{d.log_tail()}")
    wall = s1["t"] - s0["t"]
    return {"ready_s": t_ready, "wall": wall, "s0": s0, "s1": s1, "p0": p0, "p1": p1,
            "rss_min": min(rss), "rss_max": max(rss),
            "cpu_pct": (s1["cpu_ticks"] - s0["cpu_ticks"]) / TICKS / wall * 100}


def report(r: dict, quick: bool) -> str:
    s0, s1, p0, p1 = r["s0"], r["s1"], r["p0"], r["p1"]
    sent = p1["sent"] - p0["sent"]
    lost = p1["lost"] - p0["lost"]
    flaps = p1["transitions"] - p0["transitions"]
    all_up = p1["up"] == N_WANS and p1["answering"] == N_WANS
    rows = [
        ("VmRSS (resident memory)", mib(s0["rss_kb"]), mib(s1["rss_kb"]),
         f"{mib(r['rss_min'])} – {mib(r['rss_max'])} (sampled every second)"),
        ("VmHWM (peak resident)", mib(s0["hwm_kb"]), mib(s1["hwm_kb"]), ""),
        ("CPU (user + system)", "", "",
         f"{r['cpu_pct']:.2f} % of one core "
         f"({(s1['cpu_ticks'] - s0['cpu_ticks']) / TICKS:.2f} s in {r['wall']:.0f} s)"),
        ("open file descriptors", str(s0["fds"]), str(s1["fds"]),
         "same" if s0["fds"] == s1["fds"] else f"{s1['fds'] - s0['fds']:+d}"),
        ("threads", str(s0["threads"]), str(s1["threads"]), ""),
        ("probes sent / lost", "", "", f"{sent} / {lost} ({sent / r['wall']:.0f} per second, "
                                      f"expected {N_WANS * 1000 / INTERVAL_MS:.0f})"),
        ("WANs up and answering", f"{p0['up']}/{N_WANS}", f"{p1['up']}/{N_WANS}",
         f"{flaps} state changes during the window"),
    ]
    lines = ["| measure | start | end | over the window |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    mode = " --quick" if quick else ""
    text = f"""## Footprint: memory and CPU with 16 WANs probed every 200 ms

`bench/footprint.py{mode}`: wanbalanced with {N_WANS} WANs (bench/multiwan.py: router namespace
with {N_WANS} veth WANs to one upstream namespace), each probed every {INTERVAL_MS} ms to a target
beyond its gateway, all up and answering, no traffic. After READY ({r['ready_s'] * 1000:.0f} ms
after start) and every WAN answering, the daemon's /proc/PID/status (VmRSS, VmHWM, Threads),
/proc/PID/stat (utime + stime) and /proc/PID/fd were read at the start and end of a
{r['wall']:.0f} s window, RSS also once a second. CPU is user + system time over the window as a
percentage of one core ({os.cpu_count()} CPUs on the machine; the kernel counts CPU time in
{1000 // TICKS} ms ticks, so ±{100 / TICKS / r['wall']:.2f} % over this window).

{chr(10).join(lines)}
"""
    problems = []
    if not all_up or flaps:
        problems.append(f"WANs did not stay up: {p1['up']}/{N_WANS} up at the end, "
                        f"{flaps} state changes")
    if s1["fds"] != s0["fds"]:
        problems.append(f"open file descriptors changed from {s0['fds']} to {s1['fds']}")
    return text + problems_text(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 10 s window (smoke test)")
    parser.add_argument("--seconds", type=float, help="window length (default 60, quick 10)")
    parser.add_argument("--markdown", type=Path, help="write the markdown section here")
    parser.add_argument("--build-dir", help="where wanbalanced is built (default: "
                        "$WANBALANCE_BUILD_DIR or build/)")
    args = parser.parse_args()
    seconds = args.seconds or (10 if args.quick else 60)
    if seconds <= 0:
        parser.error("--seconds must be positive")
    if args.build_dir:
        os.environ["WANBALANCE_BUILD_DIR"] = args.build_dir
    if reason := mw.preflight():
        print(f"footprint.py: {reason}", file=sys.stderr)
        return 1
    mw.exit_on_hangup()
    progress(f"footprint: {N_WANS} WANs, probes every {INTERVAL_MS} ms, {seconds:.0f} s window ...")
    try:
        r = measure(seconds)
    except (LabError, TimeoutError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        return fail("footprint.py", str(e) or type(e).__name__)
    text = report(r, args.quick)
    return finish(text, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
