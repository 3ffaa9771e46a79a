"""Compute devices by name: the one place "auto", "cuda:1" or "mps" become a ``torch.device``."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; otherwise ``torch.device(device)``, checked to be available.

    Raises:
        ValueError: an unknown device name, or a device this machine does not have.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but CUDA is not available; use cpu or auto")
    if dev.type == "mps" and not _mps_available():
        raise ValueError("device mps was asked for but MPS is not available; use cpu or auto")
    return dev
