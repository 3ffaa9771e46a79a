"""Settings of the web demo: how the app runs (:class:`DemoSettings`) and what the 3-D view shows
(:class:`ViewSettings`, the exporters' :class:`~vggtkit.export.options.ExportOptions` plus the sky filter). Both
are frozen and validate themselves; neither imports gradio."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
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


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _positive_number(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


@dataclass(frozen=True)
class DemoSettings:
    """How the demo serves its users (the model's own settings live in :class:`~vggtkit.app.engine.ModelRunner`).
    Every limit applies per request.

    Attributes:
        workdir_root: folder that holds every file the app writes or serves (per-browser folders under
            ``sessions/``, bundled example copies under ``examples/``); None: ``build_demo`` creates a
            temporary one.
        max_frames: most frames one reconstruction may use (images plus sampled video frames).
        max_upload_mb: most megabytes one upload (all files together) may have; also gradio's per-file limit.
        concurrency: reconstructions that may run at the same time; more requests wait in the queue.
        queue_size: most requests waiting in the queue (more are refused with a message).
        default_fps: initial video sampling rate (frames per second of video), as the official demo (1).
        sky_model: sky-segmentation ONNX file enabling "Filter Sky" (None: the checkbox explains why it is off).
        share_results: serve result files to anyone who has their address; by default a file is served only to
            the browser that produced it.
        expire_hours: a browser session's uploads and results are deleted this long after its last action.
    """

    workdir_root: Path | None = None
    max_frames: int = 64
    max_upload_mb: float = 200.0
    concurrency: int = 1
    queue_size: int = 20
    default_fps: float = 1.0
    sky_model: Path | None = None
    share_results: bool = False
    expire_hours: float = 24.0

    def __post_init__(self) -> None:
        if self.workdir_root is not None:
            object.__setattr__(self, "workdir_root", Path(self.workdir_root).expanduser().resolve())
        if self.sky_model is not None:
            object.__setattr__(self, "sky_model", Path(self.sky_model).expanduser().resolve())
            if not self.sky_model.is_file():
                raise ValueError(
                    f"sky model not found: '{self.sky_model}'; pass the path of a sky-segmentation "
                    "ONNX file (e.g. skyseg.onnx) or leave it out"
                )
        for name in ("max_frames", "concurrency", "queue_size"):
            _positive_int(name, getattr(self, name))
        for name in ("max_upload_mb", "default_fps", "expire_hours"):
            _positive_number(name, getattr(self, name))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def expire_seconds(self) -> float:
        return self.expire_hours * 3600.0

    @property
    def root(self) -> Path:
        """``workdir_root``, which must be set by now."""
        if self.workdir_root is None:
            raise ValueError("the demo's settings have no work folder (workdir_root)")
        return self.workdir_root

    @property
    def sessions_dir(self) -> Path:
        return self.root / "sessions"

    @property
    def examples_dir(self) -> Path:
        return self.root / "examples"


@dataclass(frozen=True)
class ViewSettings(ExportOptions):
    """What the 3-D view shows: the exporters' options plus the sky filter, whose masks the app computes once per
    run. Changing these never runs the model again.

    Attributes:
        mask_sky: drop sky pixels (needs the demo's sky-segmentation model).
        (the rest: :class:`~vggtkit.export.options.ExportOptions`; ``conf_threshold`` is rounded to 3 decimals so
        that slider values map to stable cache keys.)
    """

    mask_sky: bool = False

    def __post_init__(self) -> None:
        try:
            conf = round(float(self.conf_threshold), 3)
        except (TypeError, ValueError):
            raise ValueError(
                f"confidence threshold must be a number in [0, 100], got {self.conf_threshold!r}"
            ) from None
        object.__setattr__(self, "conf_threshold", conf)
        if isinstance(self.frame, bool):
            raise ValueError(f"frame must be a frame index >= 0, got {self.frame!r}")
        super().__post_init__()

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

    def _masks_key(self) -> str:
        return f"_sky{int(self.mask_sky)}_black{int(self.mask_black)}_white{int(self.mask_white)}"

    def glb_key(self) -> str:
        """File-name-safe key of everything the GLB depends on (one cached GLB per key)."""
        frame = "all" if self.frame is None else str(self.frame)
        return (
            f"conf{self.conf_threshold:g}_frame{frame}_{self.branch}_cam{int(self.show_cameras)}"
            + self._masks_key()
        )

    def ply_key(self) -> str:
        """Key of the PLY (cameras are not part of it)."""
        frame = "all" if self.frame is None else str(self.frame)
        return f"conf{self.conf_threshold:g}_frame{frame}_{self.branch}" + self._masks_key()

    def colmap_key(self) -> str:
        """Key of the COLMAP model (all frames, tracks from the depth branch)."""
        return f"conf{self.conf_threshold:g}" + self._masks_key()

    def export_options(self) -> ExportOptions:
        """The exporters' options alone (the sky masks are passed to the exporters separately)."""
        return ExportOptions(**{f.name: getattr(self, f.name) for f in fields(ExportOptions)})


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
