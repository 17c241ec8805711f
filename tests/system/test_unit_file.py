# units/wanbalance.service.in on the host, without a running systemd: `systemd-analyze verify`
# says nothing, the sandbox scores at most 2.5, and the sandbox fits what the code does.

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT_IN = REPO / "units" / "wanbalance.service.in"
MAX_EXPOSURE = 2.5

if shutil.which("systemd-analyze") is None:
    pytest.skip("needs systemd-analyze", allow_module_level=True)


def render_man(page: Path, outdir: Path) -> None:
    section = page.name.split(".")[-2]
    text = page.read_text().replace("@VERSION@", "test")
    proc = subprocess.run(["scdoc"], input=text, capture_output=True, text=True, check=True)
    target = outdir / f"man{section}" / page.name.removesuffix(".scd")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(proc.stdout)


@pytest.fixture(scope="module")
def unit_tree(programs, tmp_path_factory) -> dict[str, Path]:
    """The unit as meson configures it, pointing at the built programs, and the man pages
    its Documentation= names (verify runs `man` on them)."""
    if shutil.which("scdoc") is None or shutil.which("man") is None:
        pytest.skip("needs scdoc and man (tools/deps.sh system installs them)")
    tmp = tmp_path_factory.mktemp("unit")
    sbin = tmp / "sbin"
    sbin.mkdir()
    for name, path in programs.items():
        (sbin / name).symlink_to(path)
    man = tmp / "man"
    for page in sorted((REPO / "docs" / "man").glob("*.scd")):
        render_man(page, man)
    unit = tmp / "wanbalance.service"
    unit.write_text(UNIT_IN.read_text().replace("@SBINDIR@", str(sbin)))
    return {"unit": unit, "man": man, "dir": tmp}


def verify(unit: Path, man: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                          "MANPATH": str(man), "SYSTEMD_LOG_COLOR": "0"},
                          timeout=120)


def exposure(unit: Path) -> tuple[float, str]:
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert m, proc.stdout + proc.stderr
    return float(m[1]), proc.stdout


def unit_settings(text: str) -> dict[str, list[str]]:
    """KEY -> every value it is given (systemd allows repeating many keys)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_verify_prints_nothing(unit_tree):
    proc = verify(unit_tree["unit"], unit_tree["man"])
    assert proc.stderr == "" and proc.stdout == "", proc.stderr + proc.stdout
    assert proc.returncode == 0


def test_verify_would_catch_a_mistake(unit_tree):
    """The check above can fail: an unknown key and a missing program are reported on stderr
    (verify still exits 0 for the unknown key, which is why stderr is what counts)."""
    text = unit_tree["unit"].read_text()
    typo = unit_tree["dir"] / "typo.service"
    typo.write_text(text.replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomes=yes"))
    proc = verify(typo, unit_tree["man"])
    assert "Unknown key 'ProtectHomes'" in proc.stderr, proc.stderr
    missing = unit_tree["dir"] / "missing.service"
    missing.write_text(text.replace(str(unit_tree["dir"] / "sbin"), "/nonexistent"))
    assert "is not executable" in verify(missing, unit_tree["man"]).stderr


def test_security_exposure_is_at_most_2_5(unit_tree):
    score, report = exposure(unit_tree["unit"])
    print(f"exposure {score}")
    assert score <= MAX_EXPOSURE, report
    # And the threshold is one a careless unit does not meet.
    bare = unit_tree["dir"] / "bare.service"
    bare.write_text("[Service]\nType=notify\nExecStart=/bin/true\n")
    assert exposure(bare)[0] > MAX_EXPOSURE


def test_service_contract():
    s = unit_settings(UNIT_IN.read_text())
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["ExecStart"] == "@SBINDIR@/wanbalanced"
    assert one["ExecReload"] == "@SBINDIR@/wanbalancectl reload"
    assert one["Restart"] == "on-failure" and one["RestartPreventExitStatus"] == "78"
    assert one["RuntimeDirectory"] == "wanbalance"
    assert re.fullmatch(r"\d+s", one["WatchdogSec"])
    # A netlink request that never gets its answer gives up after kAnswerTimeout: the watchdog
    # must not fire first (a slow kernel is not a hung daemon), with room for a few in a row.
    answer_ms = int(re.search(r"kAnswerTimeout\{(\d+)\}", (REPO / "netlink" / "answer.hpp").read_text())[1])
    assert int(one["WatchdogSec"][:-1]) * 1000 >= 3 * answer_ms
    assert one["StateDirectory"] == "wanbalance"
    assert "network-pre.target" in one["After"].split()
    assert "network-online.target" in one["Before"].split()
    assert set(one["CapabilityBoundingSet"].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert set(one["AmbientCapabilities"].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "NoNewPrivileges": "yes", "ProtectKernelTunables": "yes",
                       "PrivateNetwork": "no", "PrivateUsers": "no"}.items():
        assert one[key] == value, key
    assert one["WantedBy"] == "multi-user.target"


# Sources whose sockets the service never opens. The ARP and neighbour solicitations of
# `wanbalancectl check --live` (AF_PACKET) run in `wanbalanced --check-live`, started by an
# operator as root; the daemon's own live check reads the neighbour table instead.
OUTSIDE_THE_SERVICE = {"probe/neighbour_solicit.cpp"}


def test_only_the_check_live_mode_solicits_neighbours():
    """What OUTSIDE_THE_SERVICE relies on: solicit_neighbour() is called from the live check
    alone, and the daemon asks for the live check without solicitations."""
    callers = [p.relative_to(REPO).as_posix() for p in REPO.glob("*/*.cpp")
               if p.parts[-2] not in ("tests", "bench") and "solicit_neighbour(" in p.read_text()
               and p.relative_to(REPO).as_posix() not in OUTSIDE_THE_SERVICE]
    assert callers == ["daemon/live_check.cpp"], callers
    calls = re.findall(r"\blive_check\(([^;]*)\);", "".join(
        p.read_text() for p in (REPO / "daemon").glob("*.cpp") if p.name != "live_check.cpp"))
    assert calls and all(c.rstrip().endswith("false)") or c.rstrip().endswith("false") for c in calls), calls
    main = (REPO / "daemon" / "live_check.cpp").read_text()
    assert re.search(r"live_check\(\*loaded\.config, path, true\)", main), "run_live_check solicits"


def test_address_families_are_the_ones_the_code_opens():
    """RestrictAddressFamilies= lists exactly the families the daemon's sources open sockets
    of; a new family in the code fails here until the unit (and the man page) allow it."""
    allowed = set(unit_settings(UNIT_IN.read_text())["RestrictAddressFamilies"][-1].split())
    used = set()
    for path in REPO.glob("*/*.cpp"):
        if path.parts[-2] in ("tests", "bench", "ctl"):
            continue
        if path.relative_to(REPO).as_posix() in OUTSIDE_THE_SERVICE:
            continue
        text = path.read_text()
        used |= set(re.findall(r"\bsocket\(\s*(AF_[A-Z0-9]+)", text))
        if re.search(r"\bmnl_socket_open|\bnl_socket_alloc|\bnl_connect", text):
            used.add("AF_NETLINK")
        if re.search(r"\bsd_journal_send|\bsd_notify|\bsockaddr_un\b", text):
            used.add("AF_UNIX")
    assert used == allowed, f"code opens {sorted(used)}, unit allows {sorted(allowed)}"
