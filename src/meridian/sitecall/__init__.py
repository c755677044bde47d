"""The one way to call a site's API: links, joining, drain and leave, garbage collection's
questions, content from peers, the CLI's admin calls and ``flame watch`` all go through
``meridian.sitecall.client`` (TLS, credentials, timeouts and retries in one place)."""

from meridian.sitecall.client import (
    AsyncSiteCaller,
    CallRefused,
    SiteClient,
    SiteEndpoint,
    check_site_url,
    is_loopback,
)

__all__ = ["AsyncSiteCaller", "CallRefused", "SiteClient", "SiteEndpoint", "check_site_url",
           "is_loopback"]
