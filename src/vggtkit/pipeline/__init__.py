"""Reconstruction pipeline: inputs -> preprocessing -> VGGT -> :class:`Reconstruction` (numpy, npz I/O)."""

from __future__ import annotations

from vggtkit.io.paths import natural_key
from vggtkit.reconstruction import OFFICIAL_KEYS, Reconstruction
from vggtkit.utils.devices import resolve_device

from .chunked import ChunkRefiner
from .inputs import InputFrame, find_inputs, resolve_inputs
from .options import FrameSampling, ReconstructOptions
from .prediction import ChunkPrediction
from .run import InsufficientMemoryError, reconstruct
from .sim3 import Sim3

__all__ = [
    "OFFICIAL_KEYS",
    "ChunkPrediction",
    "ChunkRefiner",
    "FrameSampling",
    "InputFrame",
    "InsufficientMemoryError",
    "Reconstruction",
    "ReconstructOptions",
    "Sim3",
    "find_inputs",
    "natural_key",
    "reconstruct",
    "resolve_device",
    "resolve_inputs",
]
