"""How a command finds its site (docs/design.md, "Interfaces").

``--config FILE``, else ``$MERIDIAN_CONFIG``, else the site whose mount holds the current
directory or the PATH given: every mount answers at ``/.meridian/site.json`` with its config.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from meridian.errors import BadInput
from meridian.site import SiteConfig, load_config


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="the site's meridian.toml (default: $MERIDIAN_CONFIG, else the "
                             "site whose mount holds the current directory or PATH)")


def find_mount_root(start: Path) -> tuple[Path, dict[str, object]] | None:
    """The nearest ancestor of ``start`` that is a Meridian mount, with its site.json."""
    current = start.absolute()
    for candidate in [current, *current.parents]:
        marker = candidate / ".meridian" / "site.json"
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and "site" in info:
            return candidate, info
    return None


def locate_config(args: argparse.Namespace, path: str | None = None) -> SiteConfig:
    """The config of the site a command is about. Raises BadInput if none can be found."""
    if getattr(args, "config", None):
        return load_config(args.config)
    if os.environ.get("MERIDIAN_CONFIG"):
        return load_config(os.environ["MERIDIAN_CONFIG"])
    found = find_mount_root(Path(path) if path else Path.cwd())
    if found is not None and isinstance(found[1].get("config"), str):
        return load_config(str(found[1]["config"]))
    raise BadInput("which site? give --config FILE, set MERIDIAN_CONFIG, or run inside a "
                   "Meridian mount")


def namespace_path(config: SiteConfig, path: str) -> str:
    """A namespace path (``/a/b``) for a CLI PATH: ``./a/b`` (a namespace path), or a path
    inside the site's mount. Raises BadInput for a path outside the namespace."""
    if path.startswith("./") or path == ".":
        if ".." in path.split("/"):
            raise BadInput(f"{path}: '..' is not allowed in a namespace path")
        return "/" + path[2:].strip("/")
    absolute = Path(path).absolute()
    found = find_mount_root(absolute)
    if found is not None:
        return "/" + str(absolute.relative_to(found[0])).strip(".").strip("/")
    if config.mount and absolute.is_relative_to(config.mount):
        return "/" + str(absolute.relative_to(config.mount)).strip(".").strip("/")
    raise BadInput(f"{path}: not inside a Meridian mount; write a namespace path as ./a/b")
