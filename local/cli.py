"""`dressvision`: the one-machine command line. Each command lives in `local/commands/<name>.py`
with `register(subparsers)` and `run(args) -> int`; heavy imports (torch) stay inside `run`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from local.runtime import default_home
from shared.errors import DressvisionError

# Order = order in `dressvision --help`.
COMMAND_MODULES = (
    "synth",
    "importer",
    "labels",
    "train",
    "evaluate",
    "models",
    "tag",
    "locate",
    "similar",
    "relabel",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dressvision",
        description="Understand a fashion catalog: import photos, tag facets, review labels.",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="state folder (default: $DRESSVISION_HOME, else ./.dressvision)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"local.commands.{name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.home = args.home or default_home()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except DressvisionError as exc:
        print(f"dressvision: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dressvision: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
