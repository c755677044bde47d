"""Fixtures shared by every test package. Package-specific fixtures live in subfolder conftests.

``moto_server``: one moto S3 server over real HTTP on 127.0.0.1 for the whole session, with
fake credentials in the environment. ``s3_bucket``: a fresh, uniquely named bucket on it.

The ``tests.ciguard`` plugin makes every skip a failure when the environment variable ``CI`` is
set, and stops the run at once if FUSE tests were collected on a machine that cannot mount.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.ciguard"]

_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_CLEARED_AWS_ENV = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL")


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """A CLI command run in this process sets the site's private umask (077, site/privacy.py);
    restore the test process's own after every test, so no later test (or program it starts,
    such as the demo) inherits it."""
    import os

    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto's S3 server on a free port of 127.0.0.1; yield ``http://127.0.0.1:PORT``.

    Sets fake AWS credentials and region in the environment for the rest of the session (and
    removes profile/token/endpoint variables that would override them); restores them after.
    """
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    with pytest.MonkeyPatch.context() as env:
        for name, value in _FAKE_AWS_ENV.items():
            env.setenv(name, value)
        for name in _CLEARED_AWS_ENV:
            env.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
            # ThreadedMotoServer.stop() leaves the listening socket open.
            wsgi_server = getattr(server, "_server", None)
            if wsgi_server is not None:
                wsgi_server.server_close()


@pytest.fixture
def s3_bucket(moto_server: str) -> Iterator[tuple[str, str]]:
    """Create a fresh, uniquely named bucket on the moto server; yield (endpoint_url, name)."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:20]}"
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    try:
        client.create_bucket(Bucket=name)
        yield moto_server, name
    finally:
        client.close()
