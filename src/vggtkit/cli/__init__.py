"""The ``vggtkit`` command line: a thin layer over the library.

Each subcommand lives in its own module exposing ``register(subparsers)`` (adds its parser and sets
``func``) and is listed in ``SUBCOMMANDS``. ``main(argv)`` returns the exit code: 0 success, 2 for a user error
(one clear line on stderr, a traceback only with ``--debug``), 1 for an unexpected failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence

from vggtkit.cli.common import CliTermsFilter, UserError, in_cli_terms, user_error_types

# Module names under vggtkit.cli, in the order they appear in --help.
SUBCOMMANDS = (
    "quickstart",
    "train",
    "evaluate",
    "reconstruct",
    "refine",
    "export",
    "export-onnx",
    "view",
    "info",
    "demo",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vggtkit",
        description="VGGT reconstruction toolkit: images or video in, cameras, depth and 3-D scenes out.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `vggtkit COMMAND --help` for the options and examples of each command.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"vggtkit.cli.{name.replace('-', '_')}").register(subparsers)
    return parser


@contextlib.contextmanager
def _logs_in_cli_terms(debug: bool) -> Iterator[None]:
    """Log lines name command-line flags where the library names its options (see ``CLI_FLAGS``), for the
    duration of one command: the filters come off the handlers afterwards (an embedding application, or the
    next test, sees the library's own words)."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    added = []
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, CliTermsFilter) for f in handler.filters):
            handler.addFilter(terms := CliTermsFilter())
            added.append((handler, terms))
    try:
        yield
    finally:
        for handler, terms in added:
            handler.removeFilter(terms)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with _logs_in_cli_terms(args.debug):
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("vggtkit: interrupted", file=sys.stderr)
            return 130
        except (UserError, *user_error_types()) as exc:
            if args.debug:
                raise
            print(f"vggtkit {args.command}: error: {in_cli_terms(str(exc))}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
