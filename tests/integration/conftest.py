"""Fixtures that run real sites: a real FUSE mount, a real bucket (directory or moto over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ciguard import missing_for_fuse
from tests.sitehelpers import RunningSite, init_site

# Outside CI a machine that cannot mount skips these tests; under CI tests.ciguard stops the run.
_MISSING_FOR_FUSE = missing_for_fuse()
needs_fuse = pytest.mark.skipif(
    bool(_MISSING_FOR_FUSE),
    reason=f"FUSE mounts with allow_other: this machine lacks {', '.join(_MISSING_FOR_FUSE)}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(needs_fuse)
            item.add_marker(pytest.mark.fuse)


@pytest.fixture
def file_site(tmp_path: Path) -> Iterator[RunningSite]:
    """A running site with a local-directory bucket (the embedded default)."""
    site = init_site(tmp_path, "solo", f"file://{tmp_path}/bucket")
    site.start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def s3_site(tmp_path: Path, s3_bucket: tuple[str, str]) -> Iterator[RunningSite]:
    """A running site whose bucket is on a moto server, spoken to over HTTP."""
    endpoint, bucket = s3_bucket
    site = init_site(tmp_path, "solo", f"s3://{bucket}/studio", "--endpoint-url", endpoint,
                     "--region", "us-east-1")
    site.start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(params=["file", "s3"])
def site(request: pytest.FixtureRequest) -> RunningSite:
    """Each test that takes ``site`` runs against both bucket kinds."""
    fixture = "file_site" if request.param == "file" else "s3_site"
    running: RunningSite = request.getfixturevalue(fixture)
    return running


@pytest.fixture
def stopper() -> Iterator[list[RunningSite]]:
    """Sites appended here are stopped (and unmounted) whatever happens."""
    started: list[RunningSite] = []
    yield started
    for site in started:
        site.stop()
