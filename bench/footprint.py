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
Build first: meson setup build && ninja -C build wanbalanced ctl/wanbalancectl
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import Figures, add_json_argument, fail, finish, problems_text  # noqa: E402

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
        samples = [s0]
        next_report = time.monotonic() + 10
        while time.monotonic() - s0["t"] < seconds:
            time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - s0["t"]))))
            if not d.running():
                raise LabError(f"wanbalanced exited ({d.returncode}); log:\n{d.log_tail()}")
            samples.append(sample(d.pid))
            if time.monotonic() >= next_report:
                progress(f"footprint: {time.monotonic() - s0['t']:.0f}/{seconds:.0f} s, "
                         f"RSS {mib(samples[-1]['rss_kb'])}")
                next_report += 10
        s1 = sample(d.pid)
        p1 = probes(d)
        samples.append(s1)
        code = d.stop()
        if code != 0:
            raise LabError(f"wanbalanced exited {code} on SIGTERM; log:\n{d.log_tail()}")
    wall = s1["t"] - s0["t"]
    return {"ready_s": t_ready, "wall": wall, "s0": s0, "s1": s1, "p0": p0, "p1": p1,
            "samples": samples, "rss_min": min(s["rss_kb"] for s in samples),
            "rss_max": max(s["rss_kb"] for s in samples),
            "cpu_pct": (s1["cpu_ticks"] - s0["cpu_ticks"]) / TICKS / wall * 100}


def figures(r: dict, seconds: float) -> Figures:
    """Every /proc sample of the window (t from its start) and the probe counters at its ends."""
    fig = Figures("footprint", "footprint.py", {
        "wans": N_WANS, "probe_interval_ms": INTERVAL_MS, "window_s": seconds,
        "clock_ticks_per_s": TICKS, "cpus": os.cpu_count()})
    fig.series("ready", "s from start to READY=1")
    fig.point("ready", r["ready_s"])
    fig.series("samples", "KiB VmRSS", {"t": "s since the window's start", "hwm_kib": "KiB VmHWM",
                                        "cpu_s": "s of user + system CPU time since start",
                                        "cpu_ticks": "clock ticks of user + system CPU time",
                                        "threads": "threads", "fds": "open file descriptors"},
               wans=N_WANS, probe_interval_ms=INTERVAL_MS)
    t0 = r["s0"]["t"]
    for s in r["samples"]:
        fig.point("samples", s["rss_kb"], t=s["t"] - t0, hwm_kib=s["hwm_kb"],
                  cpu_s=s["cpu_ticks"] / TICKS, cpu_ticks=s["cpu_ticks"], threads=s["threads"],
                  fds=s["fds"])
    fig.series("probes", "probes sent, all WANs (daemon's status counters)",
               {"t": "s since the window's start", "lost": "probes lost", "up": "WANs up",
                "answering": "WANs answering", "transitions": "state changes, all WANs"})
    for p, s in ((r["p0"], r["s0"]), (r["p1"], r["s1"])):
        fig.point("probes", p["sent"], t=s["t"] - t0, lost=p["lost"], up=p["up"],
                  answering=p["answering"], transitions=p["transitions"])
    return fig


def report(r: dict, quick: bool, fig: Figures) -> str:
    s0, s1, p0, p1 = r["s0"], r["s1"], r["p0"], r["p1"]
    sum_ = fig.summarize
    sent = sum_("probes sent over the window", "delta", "probes", p1["sent"] - p0["sent"],
                "probes")
    lost = sum_("probes lost over the window", "delta", "probes:lost", p1["lost"] - p0["lost"],
                "probes")
    flaps = sum_("WAN state changes over the window", "delta", "probes:transitions",
                 p1["transitions"] - p0["transitions"], "state changes")
    sum_("ready after start", "first", "ready", r["ready_s"] * 1000, "ms", scale=1000)
    for name, statistic, of, value in (
            ("VmRSS at the start", "first", "samples", s0["rss_kb"]),
            ("VmRSS at the end", "last", "samples", s1["rss_kb"]),
            ("VmRSS, lowest sample", "min", "samples", r["rss_min"]),
            ("VmRSS, highest sample", "max", "samples", r["rss_max"]),
            ("VmHWM at the start", "first", "samples:hwm_kib", s0["hwm_kb"]),
            ("VmHWM at the end", "last", "samples:hwm_kib", s1["hwm_kb"])):
        sum_(name, statistic, of, value, "KiB")
    sum_("CPU, user + system, of one core", "rate", "samples:cpu_s", r["cpu_pct"], "%",
         scale=100)
    sum_("CPU time over the window", "delta", "samples:cpu_s",
         (s1["cpu_ticks"] - s0["cpu_ticks"]) / TICKS, "s")
    sum_("window", "delta", "samples:t", r["wall"], "s")
    sum_("probes per second", "rate", "probes", sent / r["wall"], "probes/s")
    for name, of, value in (("open file descriptors at the start", "samples:fds", s0["fds"]),
                            ("threads at the start", "samples:threads", s0["threads"])):
        sum_(name, "first", of, value, name.split(" at ")[0])
    for name, of, value in (("open file descriptors at the end", "samples:fds", s1["fds"]),
                            ("threads at the end", "samples:threads", s1["threads"])):
        sum_(name, "last", of, value, name.split(" at ")[0])
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
    fig.outcome["problems"] = problems
    return text + problems_text(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 10 s window (smoke test)")
    parser.add_argument("--seconds", type=float, help="window length (default 60, quick 10)")
    parser.add_argument("--markdown", type=Path, help="write the markdown section here")
    add_json_argument(parser)
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
    fig = figures(r, seconds)
    text = report(r, args.quick, fig)
    return finish(text, args.markdown, fig, args.json)


if __name__ == "__main__":
    sys.exit(main())
