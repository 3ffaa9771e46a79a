"""Pieces shared by the subcommands: user-error types and common options."""

from __future__ import annotations

import argparse

from vggtkit.pipeline.run import resolve_device  # noqa: F401  (re-exported for the subcommands)


class UserError(Exception):
    """A mistake the user can fix; reported as one line with exit code 2."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Library exceptions that mean bad user input (ValueError covers CheckpointError and input checks)."""
    return (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """--device and --dtype, shared by every command that runs the model."""
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: auto)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16", "float16"),
        help="compute precision of the aggregator (default: float32, exact)",
    )
