"""Pieces shared by the subcommands: user-error types and common options."""

from __future__ import annotations

import argparse


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


def resolve_device(name: str):
    """'auto' -> the best available torch device; otherwise validate the name."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but CUDA is not available; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but MPS is not available; use --device cpu or auto")
    return device
