"""`dressvision`: the one-machine command line. Each command lives in `local/commands/<name>.py`
with `register(subparsers)` and `run(args) -> int`; heavy imports (torch) stay inside `run`.

Conventions every command follows (README, "The command line"):
- exit status 0 on success, 1 on a runtime failure (no model yet, a missing file or folder, an
  unknown task: a `DressvisionError`), 2 on a usage error (argparse's own, a `UsageError`, a
  label the taxonomy does not know); the failure is one line on stderr, never a traceback;
- `--json` prints exactly one JSON document on stdout;
- the global options (`--home`, `--verbose`) are accepted before or after the command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from local.runtime import default_home
from shared.errors import DressvisionError, UnknownLabelError, UsageError

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
    "workers",
    "serve",
    "demo",
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _add_global_options(parser: argparse.ArgumentParser, *, default) -> None:
    """--home and --verbose. On subcommands their default is SUPPRESS, so a value given before
    the command is not overwritten by the subcommand's default."""
    parser.add_argument(
        "--home",
        type=Path,
        default=default,
        help="state folder (default: $DRESSVISION_HOME, else ./.dressvision)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log what happens"
    )


def _global_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    _add_global_options(parent, default=argparse.SUPPRESS)
    return parent


class _Parser(argparse.ArgumentParser):
    """Every (sub)command parser it creates also takes the global options, at any depth
    (`dressvision labels export --home DIR` works like `dressvision --home DIR labels export`)."""

    def add_subparsers(self, **kwargs):
        action = super().add_subparsers(**kwargs)
        add_parser = action.add_parser

        def add_parser_with_globals(name, **options):
            options["parents"] = [*options.get("parents", ()), _global_options()]
            return add_parser(name, **options)

        action.add_parser = add_parser_with_globals
        return action


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dressvision")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dressvision",
        description="Understand a fashion catalog: import photos, tag facets, review labels.",
        epilog="Exit status: 0 success, 1 a runtime failure, 2 a usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    _add_global_options(parser, default=None)
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
    except (UsageError, UnknownLabelError) as exc:
        print(f"dressvision: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DressvisionError as exc:
        print(f"dressvision: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("dressvision: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
