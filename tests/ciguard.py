"""Under CI a test that cannot run fails the run; elsewhere it may skip, saying why.

A pytest plugin (tests/conftest.py loads it). CI is on when the environment variable ``CI``
holds anything but "", "0" or "false" (any case); ``.ci/run`` sets ``CI=1``.

Under CI:

- before any test runs, if a collected test is marked ``fuse`` (tests/integration marks all of
  its tests) and the machine lacks /dev/fuse, ``fusermount3`` on PATH or root, the run stops with
  a usage error naming what is missing (exit status 4), so a green CI always ran the mounts;
- any other skip (a ``skip``/``skipif`` mark, ``pytest.skip()`` in a test or fixture, a module
  skipped at collection) is reported as a failure carrying the skip's reason.

Outside CI nothing changes: such tests skip, and ``-ra`` prints the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator

import pytest

_CI_OFF = ("", "0", "false")


def ci_is_on() -> bool:
    """True when the environment variable ``CI`` is set to anything but "", "0" or "false"."""
    return os.environ.get("CI", "").strip().lower() not in _CI_OFF


def missing_for_fuse() -> list[str]:
    """What this machine lacks to run the FUSE integration tests (empty: nothing)."""
    missing = []
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    if shutil.which("fusermount3") is None:
        missing.append("fusermount3 (not on PATH)")
    if os.geteuid() != 0:
        missing.append("root (they mount with allow_other)")
    return missing


@pytest.hookimpl(trylast=True)  # after the conftests that add the ``fuse`` mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not ci_is_on():
        return
    fuse_tests = [item for item in items if item.get_closest_marker("fuse") is not None]
    missing = missing_for_fuse() if fuse_tests else []
    if missing:
        raise pytest.UsageError(
            f"CI is set and {len(fuse_tests)} FUSE test(s) cannot run: this machine lacks "
            f"{', '.join(missing)}. Run them where FUSE works, or deselect them (-m 'not fuse').")


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_instead_of_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    reason = _skip_reason(report)
    report.outcome = "failed"
    report.longrepr = f"CI is set, so a test may not skip; it would have skipped: {reason}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                        pytest.TestReport]:
    report = yield
    if ci_is_on() and report.skipped and not hasattr(report, "wasxfail"):
        _fail_instead_of_skip(report)
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(
        collector: pytest.Collector) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if ci_is_on() and report.skipped:
        _fail_instead_of_skip(report)
    return report
