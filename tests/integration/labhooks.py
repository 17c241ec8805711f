"""pytest wiring shared by the integration and system suites (each conftest imports it):
a test's report per phase on the item (fixtures read item.rep_call to keep a failed lab's logs),
removal of labs left by runs that were killed before they could clean up, and, with
WANBALANCE_NO_SKIPS=1 (test.sh sets it), a skipped test reported as a failure: in CI a missing
tool or a missing privilege means the run did not test what it claims."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import labkit


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("WANBALANCE_NO_SKIPS") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which WANBALANCE_NO_SKIPS=1 does not allow: {reason}"
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session", autouse=True)
def _lab_gc():
    """Remove labs left by runs that were killed before they could clean up."""
    if labkit.lab_available()[0]:
        proc = subprocess.run([str(labkit.LAB_SH), "gc"], text=True, capture_output=True,
                              timeout=120)
        if proc.stdout.strip():
            print(proc.stdout.strip(), file=sys.stderr)
    yield


def pytest_sessionfinish(session, exitstatus):
    """Skips that never became a test report (a module skipped as it was collected) fail the
    run too under WANBALANCE_NO_SKIPS=1."""
    if os.environ.get("WANBALANCE_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        print(f"\n{len(skipped)} skipped, which WANBALANCE_NO_SKIPS=1 does not allow", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
