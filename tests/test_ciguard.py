"""Under CI a test that cannot run fails the run (tests/ciguard.py); elsewhere it skips.

Each case runs pytest in a subprocess with ``CI`` set or not: on the real integration tests
with a PATH that has no ``fusermount3`` (collected only, so nothing mounts), and on a small test
folder whose tests skip in every way pytest offers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ciguard import ci_is_on

ROOT = Path(__file__).resolve().parent.parent
FUSE_TESTS = "tests/integration/test_lifecycle.py"

SKIPPING = '''
import pytest

def test_runs():
    assert 1 + 1 == 2

def test_skips_in_its_body():
    pytest.skip("no widget on this machine")

@pytest.mark.skipif(True, reason="a mark says no gadget here")
def test_skipped_by_a_mark():
    raise AssertionError("never runs")
'''

SKIPPED_MODULE = '''
import pytest

pytest.importorskip("a_module_nobody_installed", reason="the gizmo library is missing")

def test_never_collected():
    raise AssertionError("never runs")
'''


def run_pytest(args: list[str], cwd: Path, ci: str, path: str | None = None,
               ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_under_ci_a_missing_fusermount3_stops_the_run_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    stopped = run_pytest(["--collect-only", "-q", FUSE_TESTS], ROOT, ci="1", path=str(empty))
    assert stopped.returncode == 4, stopped.stdout + stopped.stderr
    assert "fusermount3" in stopped.stderr and "CI is set" in stopped.stderr, stopped.stderr


def test_outside_ci_the_fuse_tests_skip_saying_what_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    skipped = run_pytest(["-q", "-rs", FUSE_TESTS], ROOT, ci="0", path=str(empty))
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert " skipped" in skipped.stdout and " passed" not in skipped.stdout, skipped.stdout
    assert "lacks fusermount3" in skipped.stdout, skipped.stdout


def test_under_ci_every_kind_of_skip_fails_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "test_skipped_module.py").write_text(SKIPPED_MODULE)
    args = ["-p", "tests.ciguard", "-q", "--continue-on-collection-errors", "."]

    failed = run_pytest(args, tmp_path, ci="true")
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output
    assert "1 failed, 1 passed, 2 errors" in output, output
    for reason in ["no widget on this machine", "a mark says no gadget here",
                   "the gizmo library is missing"]:
        assert f"it would have skipped: {reason}" in output, output

    skipped = run_pytest([*args, "-rs"], tmp_path, ci="0")
    output = skipped.stdout + skipped.stderr
    assert skipped.returncode == 0, output
    assert "1 passed, 3 skipped" in output, output
    assert "no widget on this machine" in output, output


@pytest.mark.parametrize(("value", "on"), [
    ("1", True), ("true", True), ("yes", True), ("FALSE", False), ("false", False), ("0", False),
    ("", False), (" ", False), (None, False)])
def test_which_values_of_ci_turn_it_on(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                       on: bool) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert ci_is_on() is on
