"""A real Chromium for the console's tests: Debian's ``chromium`` driven through its
``chromedriver`` by Selenium (``make test`` installs both).

Headless, sandbox off (the tests run as root), no network of its own (no component updates,
sync or QUIC), a fresh profile per test. TLS: the sites' certificates come from their namespace
CA, which this profile does not know; rather than ignoring every certificate error, the browser
is told the SHA-256 of each site's public key (``--ignore-certificate-errors-spki-list``, which
Chromium honours only with a ``--user-data-dir``): it accepts those keys and no other bad one.
The browser always quits, whatever the test does.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900"]


def missing_browser() -> list[str]:
    """What this machine lacks to run the browser tests (empty: nothing)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    return missing


def spki_hash(cert_pem: Path) -> str:
    """base64 SHA-256 of a certificate's SubjectPublicKeyInfo (Chromium's pin format)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextlib.contextmanager
def chromium(profile: Path, trusted_certs: list[Path]) -> Iterator[Any]:
    """A headless Chromium (a Selenium WebDriver) that accepts the sites' certificates."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if trusted_certs:
        pins = ",".join(spki_hash(cert) for cert in trusted_certs)
        options.add_argument(f"--ignore-certificate-errors-spki-list={pins}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The browser console's messages of level SEVERE since the last call."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry.get("level") == "SEVERE"]
