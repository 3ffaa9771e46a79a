"""The demo's model: loaded once, shared by all sessions, every forward pass counted and measured."""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vggtkit.pipeline import FrameSampling, Reconstruction, reconstruct, resolve_device

__all__ = ["ModelRunner", "PeakMemory", "RunReport"]

logger = logging.getLogger(__name__)


class PeakMemory:
    """Peak memory during a block: allocated GPU memory on CUDA, else the process's resident set size,
    sampled every ``interval`` seconds (other work in the process, e.g. a concurrent run, counts too)."""

    def __init__(self, device: torch.device, interval: float = 0.02) -> None:
        self.device = device
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def kind(self) -> str:
        return "GPU memory allocated" if self.device.type == "cuda" else "process RSS"

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):  # not Linux: the lifetime peak is the best we have
            scale = 1 if os.uname().sysname == "Darwin" else 1024
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, self._rss())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_bytes = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak_bytes = max(self.peak_bytes, self._rss())


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
    """

    def __init__(
        self, model: Any, *, device: str = "auto", dtype: str = "float32", resolution: int = 518
    ) -> None:
        from vggtkit.models.vggt.model import VGGT

        self.device = resolve_device(device)
        self.dtype = dtype
        self.resolution = resolution
        if isinstance(model, VGGT):
            self.model = model.to(self.device).eval()
            self.source = type(model).__name__ + " instance"
        elif isinstance(model, (str, os.PathLike)):
            self.model = VGGT.from_pretrained(model, map_location=self.device).eval()
            self.source = str(model)
        else:
            raise ValueError(
                f"model must be a vggtkit.VGGT or a checkpoint source (name, folder, file or hub id), "
                f"got {type(model).__name__}"
            )
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
        mode: str = "crop",
        progress: Callable[[str, int, int], None] | None = None,
    ) -> tuple[Reconstruction, RunReport]:
        """Reconstruct the frames in ``images_dir`` (natural order).

        Raises:
            ValueError: for inputs the pipeline rejects (message from the pipeline), or out of memory.
        """
        start = time.perf_counter()
        with PeakMemory(self.device) as memory:
            rec = reconstruct(
                Path(images_dir),
                self.model,
                device=self.device,
                dtype=self.dtype,
                mode=mode,
                resolution=self.resolution,
                reference=reference,
                sampling=FrameSampling(),
                progress=progress,
            )
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
