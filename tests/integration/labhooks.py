"""pytest wiring shared by the integration and system suites (each conftest imports it):
a test's report per phase on the item (fixtures read item.rep_call to keep a failed lab's logs),
and removal of labs left by runs that were killed before they could clean up."""

from __future__ import annotations

import subprocess
import sys

import pytest

import labkit


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
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
