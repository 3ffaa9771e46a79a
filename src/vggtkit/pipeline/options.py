"""How :func:`vggtkit.reconstruct` runs: frame sampling, device, precision, preprocessing (self-validating)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch

from vggtkit.io.preprocessing import FAMILY_MODES
from vggtkit.utils.dtypes import parse_dtype
from vggtkit.utils.memory import parse_memory

__all__ = ["FrameSampling", "ReconstructOptions"]

_MODES = tuple(mode for modes in FAMILY_MODES.values() for mode in modes)
RUNTIMES = ("torch", "onnx")


@dataclass(frozen=True)
class FrameSampling:
    """Which frames to use.

    Attributes:
        fps: video sampling rate in frames per second of video time (default 1, as the official demo).
        max_frames: at most this many frames in total, evenly spaced (None: all).
    """

    fps: float = 1.0
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ReconstructOptions:
    """Options of :func:`vggtkit.reconstruct`; each can also be passed to it as a keyword.

    Attributes:
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N", "mps" or a ``torch.device``.
        dtype: precision of the aggregator: "float32" (exact), "bfloat16" or "float16" (faster, less memory;
            the heads stay in float32).
        mode: the image preprocessing, one of the model family's (None: the family's default). VGGT: "crop"
            (width = resolution, taller images centre-cropped; the default) or "pad" (square, white padding).
            VGGT-Omega: "balanced" (about (resolution / 16)^2 patches whatever the aspect ratio; the default) or
            "max_size" (longer side = resolution).
        resolution: in pixels, a multiple of the model's patch size (14 for VGGT, 16 for VGGT-Omega): VGGT's input
            width (crop) or side (pad), VGGT-Omega's resolution (see ``mode``); None: the resolution the
            checkpoint was trained at (518 for VGGT-1B, 512 for VGGT-Omega-1B-512).
        reference: index (in sorted order) of the frame that defines the world frame; it is passed to the
            model first, and the outputs keep the sorted order.
        sampling: video frame rate and a limit on the number of frames.
        chunk_size: run the model on overlapping chunks of this many frames and join them into one
            reconstruction, in memory that does not grow with the number of frames (None: one pass, unless
            ``max_memory`` calls for chunks); see :mod:`vggtkit.pipeline.chunked`.
        overlap: frames shared by consecutive chunks (None: a quarter of a chunk).
        loop_closure: with chunks, detect revisited places and spread the drift of the chunk chain over it.
        max_memory: memory budget (bytes, or a string like '8GB') for the model's weights, its forward pass and
            the frames in flight; one pass when it fits, otherwise the largest chunks that do.
        work_dir: folder where chunked runs keep per-frame maps on disk (None: the system's temporary folder);
            the files are unlinked once mapped.
        runtime: "torch" (the PyTorch model) or "onnx" (a file written by ``vggtkit.onnx.export_onnx``, run by
            onnxruntime; its precision and image size were chosen at export).
    """

    device: str | torch.device = "auto"
    dtype: str | torch.dtype = "float32"
    mode: str | None = None
    resolution: int | None = None
    reference: int = 0
    sampling: FrameSampling = field(default_factory=FrameSampling)
    chunk_size: int | None = None
    overlap: int | None = None
    loop_closure: bool = False
    max_memory: int | float | str | None = None
    work_dir: str | os.PathLike[str] | None = None
    runtime: str = "torch"

    def __post_init__(self) -> None:
        parse_dtype(self.dtype)
        if self.mode is not None and self.mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(repr(m) for m in _MODES)}, got {self.mode!r}")
        res = self.resolution
        if res is not None and not (_is_int(res) and res > 0):
            raise ValueError(
                f"resolution must be a positive multiple of the model's patch size (e.g. 518), got {res!r}"
            )
        if not (_is_int(self.reference) and self.reference >= 0):
            raise ValueError(f"reference must be a frame index >= 0, got {self.reference!r}")
        if not isinstance(self.sampling, FrameSampling):
            raise ValueError(f"sampling must be a FrameSampling, got {type(self.sampling).__name__}")
        self._check_chunking()
        self._check_runtime()

    def _check_runtime(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {self.runtime!r}")
        if self.runtime == "onnx" and self.max_memory is not None:
            raise ValueError(
                "max_memory plans the PyTorch model's memory; with runtime='onnx' give chunk_size instead"
            )

    def _check_chunking(self) -> None:
        chunk, overlap = self.chunk_size, self.overlap
        if chunk is not None and not (_is_int(chunk) and chunk >= 2):
            raise ValueError(f"chunk_size must be a number of frames >= 2, got {chunk!r}")
        if overlap is not None:
            if not (_is_int(overlap) and overlap >= 1):
                raise ValueError(f"overlap must be a number of frames >= 1, got {overlap!r}")
            if chunk is None:
                raise ValueError(
                    "overlap is only used with chunk_size: give both, or max_memory to choose them"
                )
            if overlap >= chunk:
                raise ValueError(f"overlap must be smaller than chunk_size ({chunk}), got {overlap}")
        if self.max_memory is not None:
            object.__setattr__(self, "max_memory", parse_memory(self.max_memory, "max_memory"))

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a ``torch.dtype``."""
        return parse_dtype(self.dtype)
