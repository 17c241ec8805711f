# pytest wiring for the integration tests: a fresh Lab per test (torn down even when the test
# fails), stale labs from killed runs removed at session start, root-only tests skipped otherwise.

import signal
import sys

import pytest

import labkit
from labhooks import _lab_gc, pytest_runtest_makereport, pytest_sessionfinish  # noqa: F401

LAB_OK, LAB_REASON = labkit.lab_available()

# A run started under nohup ignores SIGHUP, and every program the tests start would inherit
# that: a shell cannot even trap a signal ignored on entry. The tests send SIGHUP for reloads.
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def pytest_collection_modifyitems(config, items):
    if LAB_OK:
        return
    skip = pytest.mark.skip(reason=LAB_REASON)
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()) or item.get_closest_marker("root"):
            item.add_marker(skip)


@pytest.fixture
def lab(request):
    """A fresh lab for one test. On failure, the tail of each daemon's log goes to stderr."""
    instance = labkit.Lab()
    instance.up()
    try:
        yield instance
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for i, daemon in enumerate(instance.daemons):
                print(f"--- wanbalanced #{i} log (tail) ---\n{daemon.log_tail(80)}",
                      file=sys.stderr)
    finally:
        instance.down()


@pytest.fixture(scope="session")
def need_build():
    """{"wanbalanced": path, "wanbalancectl": path}; skips the test when they are not built."""
    try:
        return {name: labkit.program(name) for name in ("wanbalanced", "wanbalancectl")}
    except FileNotFoundError as e:
        pytest.skip(str(e))
