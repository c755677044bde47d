"""``meridian.site`` — the composition root: configuration and the ``Site`` built from it."""

from meridian.site.config import SiteConfig, load_config, parse_config, write_config
from meridian.site.site import Site

__all__ = ["Site", "SiteConfig", "load_config", "parse_config", "write_config"]
