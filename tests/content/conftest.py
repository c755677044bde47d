"""Fixtures for the local-volume tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from meridian.content import LocalVolume


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "vol"


@pytest.fixture
def volume(root: Path) -> LocalVolume:
    return LocalVolume(root)
