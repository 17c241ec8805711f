# pytest wiring for the system tests: the integration harness (labkit) on sys.path, the built
# programs, and the .deb (built once per session, or given as WANBALANCE_DEB).

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(HERE))

import labkit  # noqa: E402
from labhooks import _lab_gc, pytest_runtest_makereport, pytest_sessionfinish  # noqa: E402,F401

LAB_OK, LAB_REASON = labkit.lab_available()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("root") and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root"))


@pytest.fixture(scope="session")
def programs() -> dict[str, Path]:
    """{"wanbalanced": path, "wanbalancectl": path} from WANBALANCE_BUILD_DIR (default build/)."""
    try:
        return {name: labkit.program(name) for name in ("wanbalanced", "wanbalancectl")}
    except FileNotFoundError as e:
        pytest.skip(str(e))


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (tools/deps.sh system installs them)")


@pytest.fixture(scope="session")
def deb():
    """The .deb under test: $WANBALANCE_DEB, else built from the working tree once per
    session with packaging/build-deb.sh (unit tests skipped: the unit suite runs on its own)."""
    given = os.environ.get("WANBALANCE_DEB")
    if given:
        path = Path(given)
        if not path.is_file():
            pytest.fail(f"WANBALANCE_DEB={given} does not exist")
        yield path
        return
    _need("dpkg-buildpackage", "dh")
    outdir = Path(tempfile.mkdtemp(prefix="wanbalance-deb-out-"))
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck")
    proc = subprocess.run([str(REPO / "packaging" / "build-deb.sh"), str(outdir)], text=True,
                          capture_output=True, env=env, timeout=1800)
    if proc.returncode != 0:
        shutil.rmtree(outdir, ignore_errors=True)
        pytest.fail("packaging/build-deb.sh failed:\n" + proc.stderr[-4000:])
    yield Path(proc.stdout.strip().splitlines()[-1])
    shutil.rmtree(outdir, ignore_errors=True)
