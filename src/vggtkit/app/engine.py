"""The demo's model: loaded once, shared by all sessions, every forward pass counted and measured."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vggtkit.pipeline import Reconstruction, ReconstructOptions, reconstruct
from vggtkit.pipeline.frames import preprocessing_for
from vggtkit.pipeline.model import load_model
from vggtkit.utils.devices import resolve_device
from vggtkit.utils.dtypes import dtype_name, parse_dtype
from vggtkit.utils.memory import PeakMemory

__all__ = ["ModelRunner", "RunReport"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunReport:
    """What one reconstruction cost: seconds in total and per stage, peak memory, frames and resolution."""

    seconds: float
    stage_seconds: dict[str, float]
    peak_bytes: int
    memory_kind: str
    num_frames: int
    model_hw: tuple[int, int]
    device: str
    dtype: str

    def summary(self) -> str:
        stages = ", ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in self.stage_seconds.items())
        h, w = self.model_hw
        return (
            f"Reconstructed {self.num_frames} frame(s) at {w}x{h} in {self.seconds:.2f} s ({stages}) on "
            f"{self.device} {self.dtype}; peak {self.memory_kind} {self.peak_bytes / 2**30:.2f} GiB."
        )


class ModelRunner:
    """Holds the model and runs :func:`vggtkit.reconstruct` on a folder of frames.

    ``model_runs`` counts the model's forward passes (a forward hook), so tests can prove that changing the
    view never runs the model.

    Args:
        model: a model of any family, or anything :func:`vggtkit.from_pretrained` takes.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        dtype: "float32", "bfloat16" or "float16".
        resolution: model input resolution in pixels, a multiple of the model's patch size (None: the resolution
            the checkpoint was trained at, e.g. 112 for ``tiny-synthetic``, 518 for VGGT-1B, 512 for
            VGGT-Omega-1B-512). The preprocessing mode is the family's default (crop, or balanced).

    Raises:
        ValueError: a model that cannot be loaded, or a bad dtype or resolution.
    """

    def __init__(
        self, model: Any, *, device: str = "auto", dtype: str = "float32", resolution: int | None = None
    ) -> None:
        self.dtype = dtype_name(parse_dtype(dtype))
        self.device = resolve_device(device)
        self.model = load_model(model, self.device)
        self.source = (
            str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__ + " instance"
        )
        self.preprocessing = preprocessing_for(self.model, None, resolution)
        self.resolution = self.preprocessing.resolution
        self._runs = 0
        self._lock = threading.Lock()
        self.model.register_forward_pre_hook(self._count)

    def _count(self, module: torch.nn.Module, args: tuple) -> None:
        with self._lock:
            self._runs += 1

    @property
    def model_runs(self) -> int:
        """Forward passes of the model since the runner was created."""
        return self._runs

    def run(
        self,
        images_dir: str | os.PathLike[str],
        *,
        reference: int = 0,
        mode: str | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> tuple[Reconstruction, RunReport]:
        """Reconstruct the frames in ``images_dir`` (natural order), preprocessed in ``mode`` (None: the model
        family's default).

        Raises:
            ValueError: for inputs the pipeline rejects (message from the pipeline), or out of memory.
        """
        start = time.perf_counter()
        with PeakMemory(self.device, shared=True) as memory:  # concurrent reconstructions share the process
            options = ReconstructOptions(
                device=self.device,
                dtype=self.dtype,
                mode=mode or self.preprocessing.mode,
                resolution=self.resolution,
                reference=reference,
            )
            rec = reconstruct(Path(images_dir), self.model, options, progress=progress)
        report = RunReport(
            seconds=time.perf_counter() - start,
            stage_seconds=dict(rec.timings),
            peak_bytes=memory.peak_bytes,
            memory_kind=memory.kind,
            num_frames=rec.num_frames,
            model_hw=rec.model_hw,
            device=str(self.device),
            dtype=self.dtype,
        )
        logger.info("%s", report.summary())
        return rec, report
