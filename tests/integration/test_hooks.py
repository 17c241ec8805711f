# Issue 10, item 5: hooks run only from trusted places (like sshd's StrictModes: the hooks
# directory, its parents and every hook owned by root and writable by nobody else, no symlink out
# of the directory), refused at `check`, at start and at reload, and re-checked before each run;
# the hooks of one WAN run one at a time, in order, queued and never dropped.
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

import labkit
from labwatch import EventWatch, main_default

# A root-owned 0755 parent: /tmp, world-writable, is no place for hooks (as for sshd).
TRUSTED_ROOT = Path("/run/wanbalance-test-hooks")
FAST_PROBE = {"interval_ms": 200, "down_after": 3}
FLAPS = 20  # each a set down and a set up: 40 operator-set events
CARRIER_LIMIT_S, CARRIER_MARGIN_S = 0.3, 0.3
UPSTREAM_LIMIT_S, MARGIN_S = 1.5, 1.0  # margins for a loaded 2-core CI machine
HOOK_TIMEOUT_S = 20  # daemon/hooks.hpp, kHookTimeout
HOOKS = ("10-first", "20-second", "30-third")
DIR_RULE = "the hooks directory and its parents must be writable only by root"


@pytest.fixture
def trusted(request):
    """A fresh directory under a root-owned 0755 parent; its hooks.d/ is the hooks directory."""
    if os.geteuid() != 0:
        pytest.skip("needs root (hooks must be owned by root)")
    TRUSTED_ROOT.mkdir(mode=0o755, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="hooks-", dir=TRUSTED_ROOT))
    hooks = base / "hooks.d"
    hooks.mkdir()
    hooks.chmod(0o755)
    yield hooks
    shutil.rmtree(base, ignore_errors=True)
    try:
        TRUSTED_ROOT.rmdir()
    except OSError:
        pass  # another test's directory is still in it


def write_hook(path, body, mode=0o755):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)


def write_config(path, config):
    path.write_text(json.dumps(config, indent=2) + "\n")


# -- one at a time, in order, never dropped -------------------------------------------------------

def recording_hooks(hooks, runs, hold):
    """Hooks that log "start|end WAN HOOK EVENT TIME" to `runs`; the first sleeps 0.2 s and,
    for charter, waits while `hold` exists."""
    for name in HOOKS:
        wait = ""
        if name == HOOKS[0]:
            wait = (f'if [ "$WANBALANCE_WAN" = charter ]; then\n'
                    f'    while [ -e {hold} ]; do sleep 0.05; done\nfi\nsleep 0.2\n')
        write_hook(hooks / name,
                   f'echo "start ${{WANBALANCE_WAN:--}} {name} $WANBALANCE_EVENT $(date +%s.%N)" >> {runs}\n'
                   + wait +
                   f'echo "end ${{WANBALANCE_WAN:--}} {name} $WANBALANCE_EVENT $(date +%s.%N)" >> {runs}\n')


def read_runs(runs, wan):
    """The WAN's hook runs: [(start|end, hook, event, time)]."""
    if not runs.exists():
        return []
    out = []
    for line in runs.read_text().splitlines():
        what, w, hook, event, at = line.split()
        if w == wan:
            out.append((what, hook, event, float(at)))
    return out


def in_flight(runs, wan):
    lines = read_runs(runs, wan)
    return sum(1 for r in lines if r[0] == "start") - sum(1 for r in lines if r[0] == "end")


def test_hooks_of_one_wan_run_one_at_a_time_in_order_and_none_is_dropped(lab, need_build, trusted):
    runs, hold = lab.workdir / "runs", lab.workdir / "hold"
    recording_hooks(trusted, runs, hold)
    d = lab.start_daemon(lab.article_config(probe=FAST_PROBE, hooks_dir=str(trusted)))
    d.wait_ready()
    labkit.wait_until(lambda: all(w["rtt_ms"] for w in d.status()["wans"]), 5,
                      "both WANs to answer probes")
    watch = EventWatch(d)
    labkit.wait_until(lambda: in_flight(runs, "charter") == 0, 10, "start-up hooks to finish")

    # 40 events for charter while its first hook is held: one hook may run, the rest must wait.
    hold.touch()
    for _ in range(FLAPS):
        for mode in ("down", "up"):
            result = d.ctl("set", "charter", mode)
            assert result.returncode == 0, result.stderr
    time.sleep(0.5)
    assert in_flight(runs, "charter") == 1, read_runs(runs, "charter")[-6:]
    # Another WAN's hooks do not wait for charter's.
    mark = time.monotonic()
    assert d.ctl("set", "integra", "down").returncode == 0
    labkit.wait_until(lambda: [r[:3] for r in read_runs(runs, "integra") if r[0] == "end"][-3:]
                      == [("end", h, "operator-set") for h in HOOKS], 10,
                      "integra's hooks to run while charter's wait")
    print(f"\nintegra's three hooks ran in {time.monotonic() - mark:.2f} s while charter's were held")
    assert in_flight(runs, "charter") == 1
    # More than kHookBacklogWarning runs waiting: the operator is told (nothing is dropped).
    assert "hook runs are waiting for WAN charter" in d.log(), d.log_tail()

    hold.unlink()
    charter = [e.kind for e in watch.events if e.wan == "charter"]
    assert charter[-2 * FLAPS:] == ["operator-set", "operator-set"] * FLAPS, charter
    expected_runs = [(kind, hook) for kind in charter for hook in HOOKS]
    started = time.monotonic()
    labkit.wait_until(lambda: sum(1 for r in read_runs(runs, "charter") if r[0] == "end")
                      >= len(expected_runs), 60, "charter's hooks to drain")
    print(f"{len(expected_runs)} queued hook runs drained in {time.monotonic() - started:.1f} s")
    watch.stop()

    lines = read_runs(runs, "charter")
    # Strictly start, end, start, end...: never two at once; each starts after the last ended.
    assert [r[0] for r in lines] == ["start", "end"] * len(expected_runs)
    for (_, hook_a, event_a, t_start), (_, hook_b, event_b, t_end) in zip(lines[::2], lines[1::2]):
        assert (hook_a, event_a) == (hook_b, event_b)
        assert t_end >= t_start
    ends = [r[3] for r in lines[1::2]]
    starts = [r[3] for r in lines[::2]]
    assert all(s >= e for s, e in zip(starts[1:], ends)), "a hook started before the previous ended"
    # Every event's hooks, in event order, each event's in name order: none dropped.
    assert [(r[2], r[1]) for r in lines[::2]] == expected_runs
    assert "not run" not in d.log()
    # Every hook was reaped.
    ps = lab.run("rtr", ["ps", "-o", "stat=", "--ppid", str(d.pid)], check=False).stdout.split()
    assert not [s for s in ps if s.startswith("Z")], ps
    assert d.stop() == 0


def test_a_hook_made_writable_after_start_is_not_run(lab, need_build, trusted):
    ran = lab.workdir / "ran"
    write_hook(trusted / "10-record", f'echo "$WANBALANCE_EVENT $WANBALANCE_WAN" >> {ran}\n')
    d = lab.start_daemon(lab.article_config(probe=FAST_PROBE, hooks_dir=str(trusted)))
    d.wait_ready()
    assert d.ctl("set", "integra", "down").returncode == 0
    labkit.wait_until(lambda: ran.exists() and "operator-set integra" in ran.read_text(), 5,
                      "the trusted hook to run")
    # Swapped for one anybody may edit: checked just before it runs, and refused.
    (trusted / "10-record").chmod(0o777)
    before = ran.read_text()
    assert d.ctl("set", "integra", "auto").returncode == 0
    message = (f"hook {trusted}/10-record not run for wan-up integra: {trusted}/10-record is writable "
               "by group or others (mode 0777): hooks must be writable only by root")
    labkit.wait_until(lambda: message in d.log(), 10, "the refusal in the log")
    assert ran.read_text() == before
    assert d.running()


def started_runs(slow):
    """"EVENT WAN" of each run of the slow hook, in the order they started."""
    path = Path(f"{slow}.started")
    return [line.strip() for line in path.read_text().splitlines()] if path.exists() else []


def records(envs):
    """(EVENT, WAN, INTERFACE, STATE) of each run of the recording hook."""
    out = []
    for f in envs.iterdir():
        env = dict(line.split("=", 1) for line in f.read_text().splitlines() if "=" in line)
        if "PATH" not in env:  # mktemp made the file, `env` has not written it yet
            continue
        out.append(tuple(env.get(k) for k in ("WANBALANCE_EVENT", "WANBALANCE_WAN",
                                               "WANBALANCE_INTERFACE", "WANBALANCE_STATE")))
    return out


def test_a_hanging_hook_delays_no_failover_and_holds_only_its_wans_later_hooks(lab, need_build, trusted):
    envs = lab.workdir / "hook-envs"
    envs.mkdir()
    slow = lab.workdir / "slow-hook"
    # The first hook of the first charter wan-down hangs until the timeout kills it; so does any
    # run while {slow}.again exists.
    write_hook(trusted / "10-slow",
               f'echo "$WANBALANCE_EVENT $WANBALANCE_WAN" >> {slow}.started\n'
               f'if {{ [ "$WANBALANCE_EVENT $WANBALANCE_WAN" = "wan-down charter" ] && mkdir {slow}.once; }} '
               f'|| [ -e {slow}.again ]; then\n    sleep 30\n    echo done >> {slow}.finished\nfi\n')
    write_hook(trusted / "20-record", f'env > "$(mktemp {envs}/env.XXXXXX)"\n')
    write_hook(trusted / "30-not-executable", "touch /nonexistent\n", mode=0o644)
    d = lab.start_daemon(lab.article_config(probe=FAST_PROBE, hooks_dir=str(trusted)))
    d.wait_ready()
    labkit.wait_until(lambda: all(w["rtt_ms"] for w in d.status()["wans"]), 5,
                      "both WANs to answer probes")
    watch = EventWatch(d)

    # Carrier loss while nothing runs yet; then recovery and a dead upstream while the hook hangs.
    fault = time.monotonic()
    lab.carrier("charter", up=False)
    down = watch.wait("wan-down", "charter", since=fault, timeout=5)
    hung_at = time.monotonic()
    print(f"\ncarrier loss with hooks: {(down.at - fault) * 1000:.0f} ms")
    assert down.at - fault < CARRIER_LIMIT_S + CARRIER_MARGIN_S
    labkit.wait_until(lambda: started_runs(slow), 2, "the slow hook to start")
    lab.carrier("charter", up=True)
    watch.wait("wan-up", "charter", since=fault, timeout=5)
    assert "ether1" in main_default(lab)
    fault = time.monotonic()
    lab.upstream("charter", up=False)
    down = watch.wait("wan-down", "charter", since=fault, timeout=10)
    print(f"dead upstream while a hook hangs: {down.at - fault:.3f} s")
    assert down.at - fault < UPSTREAM_LIMIT_S + MARGIN_S
    labkit.wait_until(lambda: "ether1" not in main_default(lab), 1, "charter's nexthop to go")
    assert lab.spread(40, src=labkit.LAN_HOSTS) == Counter(integra=40)
    # Charter's later hooks wait for the hanging one, in order; integra's and the all-down's
    # (every WAN is down now) do not.
    assert started_runs(slow) == ["wan-down charter"]
    assert records(envs) == []
    assert d.ctl("set", "integra", "down").returncode == 0
    others = [("operator-set", "integra", "ether2", "disabled"), ("all-down", "", "", "down")]
    labkit.wait_until(lambda: sorted(records(envs)) == sorted(others), 3,
                      "integra's and all-down's hooks to run")

    # Killed at its timeout, the hanging hook lets the rest of charter's queue run.
    charter = [("wan-down", "charter", "ether1", "down"), ("wan-up", "charter", "ether1", "up"),
               ("wan-down", "charter", "ether1", "down")]
    labkit.wait_until(lambda: sorted(records(envs)) == sorted(charter + others), HOOK_TIMEOUT_S + 10,
                      "charter's queued hooks to run after the timeout")
    assert time.monotonic() - hung_at > HOOK_TIMEOUT_S - 1
    assert not os.path.exists(f"{slow}.finished"), "the slow hook cannot have finished"
    assert f"hook {trusted}/10-slow (wan-down charter) still running after" in d.log()
    runs = started_runs(slow)
    assert runs[0] == "wan-down charter" and sorted(runs[1:3]) == ["all-down", "operator-set integra"]
    assert runs[3:] == ["wan-up charter", "wan-down charter"], runs

    # The daemon stops promptly with a hook hanging and queued ones waiting, and leaves none behind.
    open(f"{slow}.again", "w").close()
    assert d.ctl("set", "integra", "auto").returncode == 0
    labkit.wait_until(lambda: started_runs(slow).count("wan-up integra") == 1, 5,
                      "integra's hook to hang")
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 5
    left = lab.run("rtr", ["pgrep", "-f", str(trusted / "10-slow")], check=False).stdout.split()
    assert left == [], f"hooks left running: {left}"
    watch.stop()


# -- refused at check, start and reload -----------------------------------------------------------

def test_check_refuses_untrusted_hooks(need_build, trusted, tmp_path):
    ctl = str(need_build["wanbalancectl"])
    config = tmp_path / "wanbalance.json"
    write_config(config, {"wans": [{"name": "a", "interface": "eth0", "gateway": "auto"}],
                          "lans": ["eth1"], "hooks_dir": str(trusted)})
    write_hook(trusted / "10-ok", "exit 0\n")
    proc = subprocess.run([ctl, "check", "--config", str(config)], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{config}: OK: 1 WAN (a), 1 LAN\n", "")

    trusted.chmod(0o775)
    write_hook(trusted / "20-world", "exit 0\n", mode=0o757)
    os.symlink("/bin/true", trusted / "30-out")
    proc = subprocess.run([ctl, "check", "--config", str(config)], capture_output=True, text=True)
    assert proc.returncode == 78, proc
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"{config}: /hooks_dir: {trusted} is writable by group or others (mode 0775): {DIR_RULE}",
        f"{config}: /hooks_dir: {trusted}/20-world is writable by group or others (mode 0757): "
        "hooks must be writable only by root",
        f"{config}: /hooks_dir: {trusted}/30-out is a symlink to {os.path.realpath('/bin/true')}, "
        f"outside {trusted}",
    ]

    # /tmp is world-writable: sshd's StrictModes would refuse it, and so does check.
    in_tmp = tmp_path / "hooks.d"
    in_tmp.mkdir(mode=0o755)
    write_config(config, {"wans": [{"name": "a", "interface": "eth0", "gateway": "auto"}],
                          "lans": ["eth1"], "hooks_dir": str(in_tmp)})
    proc = subprocess.run([ctl, "check", "--config", str(config)], capture_output=True, text=True)
    assert proc.returncode == 78
    assert f"{config}: /hooks_dir: /tmp is writable by group or others (mode 1777): {DIR_RULE}" \
        in proc.stderr.splitlines(), proc.stderr


def test_start_refuses_untrusted_hooks(lab, need_build, trusted):
    write_hook(trusted / "10-ok", "exit 0\n")
    trusted.chmod(0o775)
    before = lab.kernel_state()
    d = lab.start_daemon(lab.article_config(hooks_dir=str(trusted)))
    try:
        d.proc.wait(10)
    except subprocess.TimeoutExpired:
        d.stop()
        pytest.fail(f"wanbalanced started with a group-writable hooks directory; log:\n{d.log_tail()}")
    assert d.returncode == 78, d.log_tail()
    assert (f"{d.config_path}: /hooks_dir: {trusted} is writable by group or others (mode 0775): "
            f"{DIR_RULE}") in d.log(), d.log_tail()
    assert lab.kernel_state() == before


def test_reload_refuses_untrusted_hooks_and_the_old_config_keeps_running(lab, need_build, trusted):
    ran = lab.workdir / "ran"
    write_hook(trusted / "10-record", f'echo "$WANBALANCE_EVENT $WANBALANCE_WAN" >> {ran}\n')
    config = lab.article_config(probe=FAST_PROBE, hooks_dir=str(trusted))
    d = lab.start_daemon(config)
    d.wait_ready()
    labkit.wait_until(lambda: all(w["rtt_ms"] for w in d.status()["wans"]), 5,
                      "both WANs to answer probes")
    before = lab.kernel_state()

    # The new config moves the hooks to a directory its group may write, and drops a WAN.
    shared = trusted.parent / "shared.d"
    shared.mkdir()
    shared.chmod(0o775)
    write_hook(shared / "10-record", f'echo "NEW $WANBALANCE_EVENT" >> {ran}\n')
    lab.write_config(d, dict(config, hooks_dir=str(shared), wans=config["wans"][:1]))
    result = d.ctl("reload")
    assert result.returncode == 78, result
    assert (f"{d.config_path}: /hooks_dir: {shared} is writable by group or others (mode 0775): "
            f"{DIR_RULE}") in result.stderr.splitlines(), result.stderr
    assert d.running()
    assert [w["name"] for w in d.status()["wans"]] == ["charter", "integra"]
    assert lab.kernel_state() == before
    # The old config's hooks still run, the new directory's never did.
    assert d.ctl("set", "integra", "down").returncode == 0
    labkit.wait_until(lambda: ran.exists() and "operator-set integra" in ran.read_text(), 5,
                      "the old config's hook to run")
    assert "NEW" not in ran.read_text()
    assert d.stop() == 0
