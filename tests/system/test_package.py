# The .deb: lintian finds no error, it holds what users need where Debian looks for it, its
# dependencies are the libraries the programs link, Build-Depends match tools/deps.sh.

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import labkit

REPO = Path(__file__).resolve().parents[2]
CONTROL = REPO / "packaging" / "debian" / "control"


FILES = {
    "usr/sbin/wanbalanced", "usr/sbin/wanbalancectl",
    "lib/systemd/system/wanbalance.service",
    "usr/lib/systemd/catalog/wanbalance.catalog",
    "usr/share/wanbalance/wanbalance.schema.json",
    "usr/share/doc/wanbalance/examples/wanbalance.json",
    "usr/share/doc/wanbalance/examples/ha/keepalived.conf",
    "usr/share/doc/wanbalance/examples/ha/conntrackd.conf",
    "usr/share/doc/wanbalance/examples/ha/wanbalance-notify.sh",
    "usr/share/doc/wanbalance/ha.md",
    "usr/share/man/man8/wanbalanced.8.gz", "usr/share/man/man8/wanbalancectl.8.gz",
    "usr/share/man/man5/wanbalance.json.5.gz",
    "etc/iproute2/rt_protos.d/wanbalance.conf",
    "usr/share/doc/wanbalance/copyright",
}


def deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def unpacked(deb, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    subprocess.run(["dpkg-deb", "-e", str(deb), str(root / "DEBIAN")], check=True)
    return root


def test_lintian_finds_no_error(deb):
    if shutil.which("lintian") is None:
        pytest.skip("needs lintian (tools/deps.sh system installs it)")
    proc = subprocess.run(["lintian", "--display-info", "--display-experimental", "--pedantic",
                           "--allow-root", str(deb)], capture_output=True, text=True, timeout=600)
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    print("lintian:\n" + ("\n".join(tags) or "(nothing)"))
    errors = [t for t in tags if t.startswith("E: ")]
    warnings = [t for t in tags if t.startswith("W: ")]
    assert not errors, "\n".join(errors)
    assert len(warnings) <= 3, "\n".join(warnings)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_contents(unpacked):
    have = {str(p.relative_to(unpacked)) for p in unpacked.rglob("*")
            if "DEBIAN" not in p.parts}
    assert FILES <= have, sorted(FILES - have)
    assert (unpacked / "etc/wanbalance/hooks.d").is_dir()
    assert (unpacked / "etc/iproute2/rt_protos.d/wanbalance.conf").read_text().splitlines()[-1] \
        == "87\twanbalance"
    rt = (REPO / "rules" / "routing.hpp").read_text()
    assert "kRouteProtocol = 87;" in rt
    unit = (unpacked / "lib/systemd/system/wanbalance.service").read_text()
    assert "ExecStart=/usr/sbin/wanbalanced\n" in unit
    assert "ExecReload=/usr/sbin/wanbalancectl reload\n" in unit
    conffiles = (unpacked / "DEBIAN" / "conffiles").read_text().split()
    assert "/etc/iproute2/rt_protos.d/wanbalance.conf" in conffiles
    # No /etc/wanbalance.json: the operator writes it (the package must not start unconfigured).
    assert not (unpacked / "etc/wanbalance.json").exists()


def test_postinst_enables_only_with_a_config(unpacked):
    script = (unpacked / "DEBIAN" / "postinst").read_text()
    ours = script.index("[ -e /etc/wanbalance.json ]")
    start = script.index("deb-systemd-invoke $_dh_action")
    assert ours < start, "enabling must come before debhelper's start"
    # dh_installsystemd --no-enable: debhelper itself never enables the unit.
    assert "deb-systemd-helper enable 'wanbalance.service'" not in script.split("was-enabled")[0]


def test_depends_are_the_linked_libraries(deb, unpacked):
    depends = {d.split()[0] for d in deb_field(deb, "Depends").split(", ")}
    needed = set()
    for program in ("wanbalanced", "wanbalancectl"):
        out = subprocess.run(["readelf", "-d", str(unpacked / "usr/sbin" / program)],
                             capture_output=True, text=True, check=True).stdout
        needed |= set(re.findall(r"Shared library: \[([^\]]+)\]", out))
    for lib in needed:
        owner = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True)
        assert owner.returncode == 0, lib
        packages = {line.split(":")[0] for line in owner.stdout.splitlines()}
        assert packages & depends, f"{lib} ({packages}) is not in Depends: {depends}"


# libnftnl.so.11 in ldd, /usr/lib/.../libnl-route-3.so or -lmnl on a link line.
KERNEL_LIBRARIES = re.compile(r"(?:\blib|-l)(?:nftnl|mnl|nl-[\w-]+)\b")


def test_wanbalancectl_links_no_kernel_library(programs):
    """`check` and `ruleset` need only config/ and rules/, the rest is the control client:
    libnftnl, libmnl and libnl are the daemon's alone. ldd alone cannot tell (--as-needed drops
    a library nothing calls), so the link line meson wrote is checked as well."""
    def loaded(program: Path) -> set[str]:
        out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True).stdout
        return set(KERNEL_LIBRARIES.findall(out))
    assert loaded(programs["wanbalanced"]), "ldd shows no kernel library even for wanbalanced"
    assert not loaded(programs["wanbalancectl"])

    ninja = labkit.build_dir() / "build.ninja"
    if not ninja.is_file():
        pytest.skip(f"{ninja} does not exist")
    link = re.search(r"^build ctl/wanbalancectl: \S+_LINKER (.*)\n LINK_ARGS = (.*)$", ninja.read_text(), re.M)
    assert link, f"no link rule for ctl/wanbalancectl in {ninja}"
    inputs = " ".join(link.groups())
    assert not KERNEL_LIBRARIES.search(inputs), inputs
    assert not re.search(r"lib(wbcore|wb_netlink|wb_daemon)\.a", inputs), inputs


def test_build_depends_are_what_tools_deps_installs():
    control = CONTROL.read_text()
    field = re.search(r"^Build-Depends:(.*?)(?=^\S)", control, re.M | re.S)[1]
    build_depends = {re.split(r"[\s(<]", d.strip())[0] for d in field.split(",") if d.strip()}
    deps = (REPO / "tools" / "deps.sh").read_text()
    def array(name: str) -> set[str]:
        m = re.search(rf"^{name}=\(([^)]*)\)", deps, re.M)
        assert m, name
        return set(m[1].split())
    build, packaging = array("build"), array("system")
    assert build <= build_depends | {"ninja-build"}, build - build_depends
    extra = build_depends - build - {"debhelper-compat"}
    assert extra <= packaging, f"Build-Depends not installed by tools/deps.sh: {extra - packaging}"


def test_version_matches_meson(deb):
    meson = re.search(r"version: '([^']+)'", (REPO / "meson.build").read_text())[1]
    assert deb_field(deb, "Version") == meson
