"""bench/summary.py: the README's benchmark table is built from the results files, medians with
their spread, targets judged from the same run, and results of another run named."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "summary.py"


def load_summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_summary", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_summary"] = module
    spec.loader.exec_module(module)
    return module


def compare_doc(date: str, samples: dict[str, dict[str, list[float]]]) -> dict[str, object]:
    return {"date": date, "samples": {fig: {who: [[v, 0.0] for v in values]
                                            for who, values in per.items()}
                                      for fig, per in samples.items()}}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    small = compare_doc("2026-12-06T10:00:00+00:00", {"write-durable": {
        "meridian": [300.0, 320.0, 310.0], "rclone:write-back-0s": [100.0, 90.0, 95.0],
        "rclone": [70.0, 71.0, 72.0]}})
    (folder / "compare_smallfiles.json").write_text(json.dumps(small))
    api = {"date": "2026-12-06T10:05:00+00:00",
           "round_trip": {"median_of_run_medians_ms": 2.5, "min_run_median_ms": 2.1,
                          "max_run_median_ms": 3.0}}
    (folder / "api_roundtrip.json").write_text(json.dumps(api))
    (folder / "join.json").write_text(json.dumps(
        {"date": "2026-12-01T10:00:00+00:00", "files": 1000, "join_s": [1.0, 2.0, 3.0]}))
    return folder


def test_rows_give_median_spread_and_verdict(results: Path) -> None:
    summary = load_summary()
    text = summary.table(summary.Results(results))
    small = next(line for line in text.splitlines() if line.startswith("| 500 × 64 KiB"))
    # 310 files/s is 3.26x the tuned rclone's median of 95: met; spread from the three runs
    assert "| 310 (300–320) |" in small and "`--vfs-write-back 0s` 95.0 (90.0–100)" in small
    assert small.rstrip().endswith("| met |")
    api = next(line for line in text.splitlines() if line.startswith("| site API round trip"))
    assert "2.50 (2.10–3.00)" in api and api.rstrip().endswith("| not met |")
    # a figure whose script did not run says so instead of vanishing or showing an old value
    assert "| close at east → name visible at west, p99 (ms) | not run |" in text


def test_a_file_from_another_run_is_named(results: Path) -> None:
    summary = load_summary()
    text = summary.table(summary.Results(results))
    assert "older than the rest of the run: join" in text
    assert "api_roundtrip" not in text.split("older than the rest of the run:")[1]


def test_readme_part_between_markers_is_replaced(results: Path, tmp_path: Path) -> None:
    summary = load_summary()
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{summary.START}\nold table\n{summary.END}\nafter\n")
    assert summary.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{summary.END}\nafter\n")
    assert "old table" not in text and "| 500 × 64 KiB" in text
    assert (results / "summary.md").read_text().count("| 500 × 64 KiB") == 1


def test_readme_without_markers_is_refused_and_left_alone(results: Path, tmp_path: Path) -> None:
    summary = load_summary()
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    assert summary.main(["--results", str(results), "--readme", str(readme)]) == 1
    assert readme.read_text() == "no markers here\n"


def test_every_bench_script_imports() -> None:
    """make bench runs these one after another: a script that no longer imports (a helper
    moved into bench/harness/, say) would stop the run half-way and leave old results."""
    import subprocess

    bench = SCRIPT.parent
    scripts = sorted(p.stem for p in bench.glob("*.py"))
    assert "compare_all" in scripts and "undo" in scripts
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run([sys.executable, "-c", code, *scripts], cwd=bench,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_gateway_row_gives_the_ceiling_measured_in_the_same_rounds(results: Path) -> None:
    summary = load_summary()
    rounds = {"mount": [1500.0, 2000.0, 1600.0], "nfs": [450.0, 400.0, 480.0],
              "smb": [750.0, 700.0, 800.0], "ram_nfs": [870.0, 840.0, 880.0]}
    (results / "gateways.json").write_text(json.dumps(
        {"date": "2026-12-06T10:06:00+00:00", "seq_read": {"MBps": rounds}}))
    lines = summary.table(summary.Results(results)).splitlines()
    nfs = next(line for line in lines if line.startswith("| NFS (4 READs in flight) gateway"))
    # per round: 0.30, 0.20, 0.30 of the mount; the ceiling 0.58, 0.42, 0.55
    assert "| 0.30 (0.20–0.30) |" in nfs and "0.55 (0.42–0.58)" in nfs
    assert "folder in memory" in nfs and nfs.rstrip().endswith("| not met |")
    smb = next(line for line in lines if line.startswith("| SMB gateway"))
    assert "folder in memory" not in smb


def test_small_files_row_gives_the_ceilings_measured_alone(results: Path) -> None:
    summary = load_summary()
    samples = {"moto CPU per PUT (ms)": [3.0, 4.0, 3.2],
               "pyfuse3 doing nothing, to close (files/s)": [1700.0, 1800.0, 1750.0],
               "durable chain on this disk (files/s)": [1300.0, 1250.0, 1330.0],
               "Meridian one site, durable (files/s)": [210.0, 200.0, 220.0]}
    small = next(line for line in summary.table(summary.Results(results)).splitlines()
                 if line.startswith("| 500 × 64 KiB"))
    assert "ceilings" not in small  # not measured: nothing claimed
    (results / "smallfile_ceiling.json").write_text(json.dumps(
        {"date": "2026-12-06T10:07:00+00:00", "samples": samples}))
    small = next(line for line in summary.table(summary.Results(results)).splitlines()
                 if line.startswith("| 500 × 64 KiB"))
    # the median 3.2 ms of moto CPU a PUT: 1,000 / 3.2 = 312 PUT/s
    assert "moto 312 PUT/s" in small and "3.20 (3.00–4.00) ms" in small
    assert "doing nothing 1,750 (1,700–1,800)" in small and "fsyncs 1,300 (1,250–1,330)" in small
    assert "file:// bucket 210 (200–220)" in small and small.rstrip().endswith("| met |")
