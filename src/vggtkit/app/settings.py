"""Settings of the web demo: how the app runs (:class:`DemoSettings`) and what the 3-D view shows
(:class:`ViewSettings`). Both are frozen and validate themselves; neither imports gradio."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vggtkit.export.options import ExportOptions

__all__ = [
    "BRANCH_CHOICES",
    "DemoSettings",
    "ViewSettings",
    "frame_choices",
    "parse_frame_choice",
]

# Labels of the prediction-mode radio (the official demo's wording) -> Reconstruction branch.
BRANCH_CHOICES: dict[str, Literal["depth", "pointmap"]] = {
    "Depthmap and Camera Branch": "depth",
    "Pointmap Branch": "pointmap",
}
ALL_FRAMES = "All"


@dataclass(frozen=True)
class DemoSettings:
    """How the demo runs. Every limit applies per request.

    Attributes:
        workdir_root: folder that holds every file the app writes or serves (per-session folders under
            ``sessions/``, bundled example copies under ``examples/``).
        device: torch device for the model ("auto", "cpu", "cuda", "cuda:N", "mps").
        dtype: "float32", "bfloat16" or "float16" (autocast).
        resolution: model input width in pixels, a multiple of 14 (518 as trained).
        max_frames: most frames one reconstruction may use (images plus sampled video frames).
        max_upload_mb: most megabytes one upload (all files together) may have; also gradio's per-file limit.
        concurrency: reconstructions that may run at the same time; more requests wait in the queue.
        queue_size: most requests waiting in the queue (more are refused with a message).
        default_fps: initial video sampling rate (frames per second of video), as the official demo (1).
        sky_model: sky-segmentation ONNX file enabling "Filter Sky" (None: the checkbox explains why it is off).
    """

    workdir_root: Path
    device: str = "auto"
    dtype: str = "float32"
    resolution: int = 518
    max_frames: int = 64
    max_upload_mb: float = 200.0
    concurrency: int = 1
    queue_size: int = 20
    default_fps: float = 1.0
    sky_model: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "workdir_root", Path(self.workdir_root).expanduser().resolve())
        if self.sky_model is not None:
            object.__setattr__(self, "sky_model", Path(self.sky_model).expanduser().resolve())
            if not self.sky_model.is_file():
                raise ValueError(
                    f"sky model not found: '{self.sky_model}'; pass the path of a sky-segmentation "
                    "ONNX file (e.g. skyseg.onnx) or leave it out"
                )
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if (
            isinstance(self.resolution, bool)
            or not isinstance(self.resolution, int)
            or self.resolution < 14
            or self.resolution % 14
        ):
            raise ValueError(
                f"resolution must be a positive multiple of 14 (e.g. 518), got {self.resolution!r}"
            )
        for name in ("max_frames", "concurrency", "queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(self.max_upload_mb) and self.max_upload_mb > 0):
            raise ValueError(f"max_upload_mb must be > 0, got {self.max_upload_mb!r}")
        if not (math.isfinite(self.default_fps) and self.default_fps > 0):
            raise ValueError(f"default_fps must be > 0, got {self.default_fps!r}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def sessions_dir(self) -> Path:
        return self.workdir_root / "sessions"

    @property
    def examples_dir(self) -> Path:
        return self.workdir_root / "examples"


@dataclass(frozen=True)
class ViewSettings:
    """What the 3-D view shows; changing these never runs the model again.

    Attributes:
        conf_threshold: percentile (0-100) of confidence to drop, as the official slider.
        frame: show only this frame's points and camera (None: all frames).
        branch: "depth" (depth map + camera) or "pointmap" (point head).
        show_cameras: draw camera frusta.
        mask_sky / mask_black / mask_white: drop sky, black-background or white-background pixels.
    """

    conf_threshold: float = 50.0
    frame: int | None = None
    branch: Literal["depth", "pointmap"] = "depth"
    show_cameras: bool = True
    mask_sky: bool = False
    mask_black: bool = False
    mask_white: bool = False

    def __post_init__(self) -> None:
        try:
            conf = float(self.conf_threshold)
        except (TypeError, ValueError):
            raise ValueError(
                f"confidence threshold must be a number in [0, 100], got {self.conf_threshold!r}"
            ) from None
        if not 0 <= conf <= 100:
            raise ValueError(f"confidence threshold must be in [0, 100], got {conf:g}")
        object.__setattr__(self, "conf_threshold", round(conf, 3))
        if self.frame is not None and (isinstance(self.frame, bool) or int(self.frame) < 0):
            raise ValueError(f"frame must be >= 0, got {self.frame!r}")
        if self.branch not in ("depth", "pointmap"):
            raise ValueError(f"branch must be 'depth' or 'pointmap', got {self.branch!r}")

    @classmethod
    def from_controls(
        cls,
        conf: float,
        frame: str | None,
        mode: str,
        show_cameras: bool,
        sky: bool,
        black: bool,
        white: bool,
    ) -> ViewSettings:
        """From the UI's values: the prediction-mode label and the "All" / "i: name" frame choice."""
        branch = BRANCH_CHOICES.get(mode, "pointmap" if "pointmap" in str(mode).lower() else "depth")
        return cls(
            conf_threshold=50.0 if conf is None else conf,
            frame=parse_frame_choice(frame),
            branch=branch,
            show_cameras=bool(show_cameras),
            mask_sky=bool(sky),
            mask_black=bool(black),
            mask_white=bool(white),
        )

    def glb_key(self) -> str:
        """File-name-safe key of everything the GLB depends on (one cached GLB per key)."""
        frame = "all" if self.frame is None else str(self.frame)
        return (
            f"conf{self.conf_threshold:g}_frame{frame}_{self.branch}_cam{int(self.show_cameras)}"
            f"_sky{int(self.mask_sky)}_black{int(self.mask_black)}_white{int(self.mask_white)}"
        )

    def ply_key(self) -> str:
        """Key of the PLY (cameras are not part of it)."""
        frame = "all" if self.frame is None else str(self.frame)
        return (
            f"conf{self.conf_threshold:g}_frame{frame}_{self.branch}"
            f"_sky{int(self.mask_sky)}_black{int(self.mask_black)}_white{int(self.mask_white)}"
        )

    def colmap_key(self) -> str:
        """Key of the COLMAP model (all frames, tracks from the depth branch)."""
        return (
            f"conf{self.conf_threshold:g}_sky{int(self.mask_sky)}_black{int(self.mask_black)}"
            f"_white{int(self.mask_white)}"
        )

    def export_options(self) -> ExportOptions:
        """Exporter options (sky masks are passed separately, computed once per run)."""
        return ExportOptions(
            conf_threshold=self.conf_threshold,
            branch=self.branch,
            frame=self.frame,
            mask_black=self.mask_black,
            mask_white=self.mask_white,
            show_cameras=self.show_cameras,
        )


def frame_choices(names: Sequence[str]) -> list[str]:
    """``["All", "0: a.png", "1: b.png", ...]`` for the frame selector."""
    return [ALL_FRAMES, *(f"{i}: {name}" for i, name in enumerate(names))]


def parse_frame_choice(choice: str | int | None) -> int | None:
    """ "All" (or empty) -> None; "3: name.png" (or 3) -> 3.

    Raises:
        ValueError: for anything else.
    """
    if choice is None or (isinstance(choice, str) and choice.strip() in ("", ALL_FRAMES)):
        return None
    if isinstance(choice, int) and not isinstance(choice, bool):
        return choice
    match = re.match(r"\s*(\d+)\s*(:|$)", str(choice))
    if not match:
        raise ValueError(f"frame choice must be 'All' or 'N: name', got {choice!r}")
    return int(match.group(1))
