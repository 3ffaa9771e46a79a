"""Reconstruction pipeline: inputs -> preprocessing -> VGGT -> :class:`Reconstruction` (numpy, npz I/O)."""

from __future__ import annotations

from .inputs import InputFrame, find_inputs, natural_key, resolve_inputs
from .reconstruction import OFFICIAL_KEYS, Reconstruction
from .run import DTYPES, FrameSampling, InsufficientMemoryError, reconstruct, resolve_device

__all__ = [
    "DTYPES",
    "OFFICIAL_KEYS",
    "FrameSampling",
    "InputFrame",
    "InsufficientMemoryError",
    "Reconstruction",
    "find_inputs",
    "natural_key",
    "reconstruct",
    "resolve_device",
    "resolve_inputs",
]
