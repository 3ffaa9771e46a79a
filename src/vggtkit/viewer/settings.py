"""What the viewer shows (:class:`ViewSettings`, one value per control) and how it is served
(:class:`ViewerOptions`). Both are frozen dataclasses that check themselves."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vggtkit.export.options import ExportOptions

__all__ = [
    "DEFAULT_MAX_POINTS",
    "DEFAULT_PORT",
    "DEFAULT_VIEWER_OPTIONS",
    "PREDICTED",
    "REFINED",
    "ViewSettings",
    "ViewerOptions",
]

DEFAULT_MAX_POINTS = 1_000_000
"""Default point budget: the largest whose update of a 10-million-point scene costs the server no more than smaller
budgets (filtering dominates), with a 9 MB payload (docs/viewer.md, benchmarks/viewer.py)."""
DEFAULT_PORT = 8080
PREDICTED = "predicted"
REFINED = "refined"


@dataclass(frozen=True)
class ViewSettings:
    """The state of the viewer's controls.

    Attributes:
        conf_threshold: percentile (0-100) of confidence to drop, as the exports' ``conf_threshold``.
        frame: only this frame's points and camera; None: all frames.
        branch: points from "depth" (depth unprojected with the cameras) or "pointmap" (the point head).
        mask_black: drop black background pixels; mask_white: drop white background pixels.
        mask_sky: drop sky pixels (needs a sky-segmentation model, see :class:`ViewerOptions`).
        point_size: point size as a multiple of the size that leaves no gaps between the points shown (see
            :meth:`SceneLayout.point_size`).
        max_points: point budget: at most this many points are sent to the browser, a random subset that stays
            the same for the points that remain when a filter tightens; None sends every selected point.
        show_cameras: draw the camera frusta, each with its frame's image.
        cameras: which cameras (and the points computed with them) to show: "predicted" or "refined".
        compare_cameras: also draw the other camera set's frusta, in grey, to see what refinement moved.
    """

    conf_threshold: float = 50.0
    frame: int | None = None
    branch: Literal["depth", "pointmap"] = "depth"
    mask_black: bool = False
    mask_white: bool = False
    mask_sky: bool = False
    point_size: float = 1.0
    max_points: int | None = DEFAULT_MAX_POINTS
    show_cameras: bool = True
    cameras: str = PREDICTED
    compare_cameras: bool = False

    def __post_init__(self) -> None:
        # ExportOptions checks the shared fields (percentile range, branch, frame >= 0).
        self.export_options()
        if not (math.isfinite(self.point_size) and self.point_size > 0):
            raise ValueError(f"point_size must be > 0, got {self.point_size}")
        if self.max_points is not None and self.max_points < 1:
            raise ValueError(f"max_points must be >= 1 (or None for no budget), got {self.max_points}")
        if self.cameras not in (PREDICTED, REFINED):
            raise ValueError(f"cameras must be '{PREDICTED}' or '{REFINED}', got {self.cameras!r}")

    @classmethod
    def from_export_options(cls, options: ExportOptions, **changes: object) -> ViewSettings:
        """The settings that show what an export with ``options`` wrote (sky masked when it names a sky model),
        with ``changes`` applied."""
        fields = {
            "conf_threshold": options.conf_threshold,
            "frame": options.frame,
            "branch": options.branch,
            "mask_black": options.mask_black,
            "mask_white": options.mask_white,
            "mask_sky": options.sky_model is not None,
            "show_cameras": options.show_cameras,
        }
        return cls(**(fields | changes))

    def export_options(self) -> ExportOptions:
        """The point-selection part of these settings, as the exports take it (sky masks are passed apart)."""
        return ExportOptions(
            conf_threshold=self.conf_threshold,
            branch=self.branch,
            frame=self.frame,
            mask_black=self.mask_black,
            mask_white=self.mask_white,
        )

    def selection_key(self) -> tuple:
        """The fields that decide which points pass the filters (not the budget or the display)."""
        return (
            self.cameras,
            self.conf_threshold,
            self.frame,
            self.branch,
            self.mask_black,
            self.mask_white,
            self.mask_sky,
        )


@dataclass(frozen=True)
class ViewerOptions:
    """How the viewer is served.

    Attributes:
        host: address to listen on; 127.0.0.1 (default) keeps the viewer on this machine.
        port: None: 8080, or the next free port; 0: any free port; otherwise exactly this port (an error if busy).
        initial: the controls' values when the viewer opens.
        sky_model: a sky-segmentation ONNX file; enables the sky mask (None: the control is disabled).
        save_dir: folder where "Save PLY" writes; None: the folder of the predictions file (or the current
            folder for a reconstruction held only in memory).
        frustum_image_size: longest side, in pixels, of the image drawn in each camera frustum.
        title: the label of the control panel.
    """

    host: str = "127.0.0.1"
    port: int | None = None
    initial: ViewSettings = field(default_factory=ViewSettings)
    sky_model: str | None = None
    save_dir: Path | None = None
    frustum_image_size: int = 160
    title: str = "vggtkit viewer"

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty (use 127.0.0.1 for this machine only)")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.frustum_image_size < 8:
            raise ValueError(f"frustum_image_size must be >= 8 pixels, got {self.frustum_image_size}")


DEFAULT_VIEWER_OPTIONS = ViewerOptions()
