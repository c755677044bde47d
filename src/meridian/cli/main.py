"""``meridian`` — the command line. The one place where errors become exit codes.

Exit codes (every command): 0 done, 1 partly done (what failed is listed), 2 bad input or
usage, 3 a site, peer or bucket unreachable.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from meridian import __version__
from meridian.errors import (
    BadInput,
    BucketAccessDenied,
    BucketFormatError,
    BucketUnreachable,
    PeerUnreachable,
    MeridianError,
)

EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3

DESCRIPTION = """\
Meridian: one file tree at every site of a studio. Each site keeps content on its local
volume and in one shared S3 bucket; a site's mount shows the namespace as a POSIX file system.

Which site a command talks to: --config FILE, else $MERIDIAN_CONFIG, else the site whose mount
holds the current directory (or the PATH given).

exit codes: 0 done, 1 partly done, 2 bad input, 3 site/peer/bucket unreachable
"""


class Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line hint on bad usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from meridian.cli import (flame_cmds, inspect_cmds, objective_cmds, peer_cmds, site_cmds,
                              up_cmd)

    parser = Parser(prog="meridian", description=DESCRIPTION,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"meridian {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    site_cmds.register(commands)
    inspect_cmds.register(commands)
    up_cmd.register(commands)
    up_cmd.register_exec(commands)
    objective_cmds.register(commands)
    flame_cmds.register(commands)
    peer_cmds.register(commands)
    from meridian.cli import console_cmd
    console_cmd.register(commands)
    from meridian.cli import undo_cmds
    undo_cmds.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result: int = args.func(args)
        return result
    except BadInput as exc:
        print(f"meridian: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (BucketUnreachable, BucketAccessDenied) as exc:
        print(f"meridian: bucket unreachable: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except PeerUnreachable as exc:
        print(f"meridian: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except BucketFormatError as exc:
        print(f"meridian: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MeridianError as exc:
        print(f"meridian: {exc}", file=sys.stderr)
        return EXIT_PARTIAL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
