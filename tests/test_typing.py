"""The package type-checks under mypy --strict (configured in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("mypy", path=str(Path(sys.executable).parent)) is None
                    and not (Path(sys.executable).parent / "mypy").exists(),
                    reason="mypy is not installed in this environment (pip install -e '.[test]')")
def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
