"""``scripts/soak.py`` (``make soak``): its summary line and exit status."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.meta.randomized import Outcome

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clean_runs_end_with_the_summary_and_status_0(capsys: pytest.CaptureFixture[str]) -> None:
    soak = load()
    assert soak.main(["--runs", "4", "--mix", "wr", "--mix", "wmu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["soak: 4 runs, 0 diverged, 0 lost"]


def test_failures_are_named_counted_and_fail_the_soak(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    soak = load()
    outcomes = iter([Outcome(), Outcome(diverged=["west"]), Outcome(lost=[("east", "x")]),
                     Outcome(diverged=["north"], lost=[("north", "y")])])

    def fake_run(seed: int, mix: str, engine: str, steps: int) -> tuple[Outcome, str]:
        return next(outcomes), ""

    monkeypatch.setattr(soak, "run", fake_run)
    assert soak.main(["--runs", "4", "--mix", "wr"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "soak: 4 runs, 2 diverged, 2 lost"
    assert lines[0] == "FAILED seed 0 mix wr engine sqlite: diverged at west"
    assert len([line for line in lines if line.startswith("FAILED seed ")]) == 3


def test_bad_counts_are_refused() -> None:
    with pytest.raises(SystemExit) as stopped:
        load().main(["--runs", "0"])
    assert stopped.value.code == 2
