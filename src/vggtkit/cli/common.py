"""Pieces shared by the subcommands: user-error types, common options, and library words -> flags."""

from __future__ import annotations

import argparse
import logging
import re

from vggtkit.utils.devices import resolve_device
from vggtkit.utils.dtypes import DTYPE_CHOICES

__all__ = [
    "CLI_FLAGS",
    "CliTermsFilter",
    "UserError",
    "add_device_options",
    "in_cli_terms",
    "resolve_device",
    "user_error_types",
]

# Library option -> command-line flag. Library messages name options as Python does (``max_frames=4``,
# ``shared_camera=True``, ``conf_threshold``); the command line shows its own flags instead.
CLI_FLAGS: dict[str, str] = {
    "device": "--device",
    "dtype": "--dtype",
    "mode": "--mode",
    "resolution": "--resolution",
    "reference": "--reference",
    "runtime": "--runtime",
    "fps": "--fps",
    "max_frames": "--max-frames",
    "chunk_size": "--chunk-size",
    "overlap": "--overlap",
    "loop_closure": "--loop-closure",
    "max_memory": "--max-memory",
    "work_dir": "--work-dir",
    "conf_threshold": "--conf-threshold",
    "branch": "--branch",
    "frame": "--frame",
    "mask_black": "--mask-black",
    "mask_white": "--mask-white",
    "sky_model": "--sky-model",
    "voxel_size": "--voxel-size",
    "camera_model": "--camera-model",
    "shared_camera": "--shared-camera",
    "depth_resolution": "--depth-resolution",
    "query_frames": "--query-frames",
    "max_keypoints": "--max-keypoints",
    "min_inliers": "--min-inliers",
    "max_reproj_error": "--max-reproj-error",
    "iterations": "--iterations",
    "max_error": "--align-max-error",
    "seed": "--seed",
}
_NAMES = "|".join(sorted(CLI_FLAGS, key=len, reverse=True))
# ``name=value`` (value optionally in single quotes), not inside a longer word or path.
_ASSIGNED = re.compile(rf"(?<![\w./-])({_NAMES})=('?)([^\s,;)']*)\2")
# A bare option name with an underscore; single words ("mode", "frame") are plain English too and are
# mapped only where a validation message starts with them ("fps must be > 0").
_BARE = re.compile(rf"(?<![\w./-])({'|'.join(n for n in CLI_FLAGS if '_' in n)})(?![\w/-]|=)")
_LEADING = re.compile(rf"^({_NAMES})(?= (?:must|is) )")


def _flag_with_value(match: re.Match[str]) -> str:
    flag, value = CLI_FLAGS[match[1]], match[3]
    if value == "True":
        return flag
    if value == "False":
        return f"without {flag}"
    return f"{flag} {value}"


def in_cli_terms(message: str) -> str:
    """A library message with its option names as flags: ``max_frames=4`` -> ``--max-frames 4``,
    ``dtype='bfloat16'`` -> ``--dtype bfloat16``, ``shared_camera=True`` -> ``--shared-camera``,
    ``conf_threshold`` -> ``--conf-threshold``, and a leading ``fps must ...`` -> ``--fps must ...``."""
    message = _ASSIGNED.sub(_flag_with_value, message)
    message = _BARE.sub(lambda m: CLI_FLAGS[m[1]], message)
    return _LEADING.sub(lambda m: CLI_FLAGS[m[1]], message)


class CliTermsFilter(logging.Filter):
    """A handler filter that rewrites log messages with :func:`in_cli_terms` (warnings that give advice)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("vggtkit"):
            record.msg = in_cli_terms(record.getMessage())
            record.args = None
        return True


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
        default=DTYPE_CHOICES[0],
        choices=DTYPE_CHOICES,
        help=f"compute precision of the aggregator (default: {DTYPE_CHOICES[0]}, exact)",
    )
