"""Options shared by the exporters (one frozen, self-validating dataclass)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["CAMERA_MODELS", "DEFAULT_OPTIONS", "ExportOptions", "ExportResult"]

CAMERA_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")


@dataclass(frozen=True)
class ExportOptions:
    """How exports select and write points and cameras.

    Attributes:
        conf_threshold: percentile (0-100) of confidence to drop, as the official demo's slider: 50 keeps the
            most confident half of the image pixels; 0 keeps all (points with conf <= 1e-5 are always dropped).
        branch: "depth" (depth map + predicted camera; default, as the official demo) or "pointmap" (point head).
        frame: only this frame's points (and, in the GLB, its camera); None: all frames.
        mask_black: drop pixels with R + G + B < 16 (black background).
        mask_white: drop pixels with R, G and B all > 240 (white background).
        sky_model: path to a sky-segmentation ONNX model (e.g. the official demo's ``skyseg.onnx``); sky pixels
            are dropped. Needs ``onnxruntime`` (``pip install 'vggtkit[sky]'``).
        show_cameras: draw camera frusta in the GLB.
        voxel_size: PLY voxel down-sampling edge length in scene units (None: off).
        camera_model: COLMAP camera model, "PINHOLE" (fx, fy, cx, cy) or "SIMPLE_PINHOLE" (f, cx, cy).
        shared_camera: one COLMAP camera for all images (the mean intrinsics; all images must share a size).
        track_points_per_frame: COLMAP: at most this many confident pixels per frame start a track.
        track_depth_tolerance: COLMAP: a point is observed in another frame when its depth there agrees with
            that frame's depth map within this relative error.
        depth_resolution: depth PNGs at the "model" resolution or resampled to the "original" image size.
    """

    conf_threshold: float = 50.0
    branch: Literal["depth", "pointmap"] = "depth"
    frame: int | None = None
    mask_black: bool = False
    mask_white: bool = False
    sky_model: str | None = None
    show_cameras: bool = True
    voxel_size: float | None = None
    camera_model: Literal["PINHOLE", "SIMPLE_PINHOLE"] = "PINHOLE"
    shared_camera: bool = False
    track_points_per_frame: int = 2048
    track_depth_tolerance: float = 0.03
    depth_resolution: Literal["model", "original"] = "model"

    def __post_init__(self) -> None:
        if not (isinstance(self.conf_threshold, (int, float)) and 0 <= self.conf_threshold <= 100):
            raise ValueError(f"conf_threshold is a percentile in [0, 100], got {self.conf_threshold!r}")
        if self.branch not in ("depth", "pointmap"):
            raise ValueError(f"branch must be 'depth' or 'pointmap', got {self.branch!r}")
        if self.frame is not None and self.frame < 0:
            raise ValueError(f"frame must be >= 0, got {self.frame}")
        if self.voxel_size is not None and not (math.isfinite(self.voxel_size) and self.voxel_size > 0):
            raise ValueError(f"voxel_size must be > 0, got {self.voxel_size}")
        if self.camera_model not in CAMERA_MODELS:
            raise ValueError(
                f"camera_model must be one of {', '.join(CAMERA_MODELS)}, got {self.camera_model!r}"
            )
        if self.track_points_per_frame < 1:
            raise ValueError(f"track_points_per_frame must be >= 1, got {self.track_points_per_frame}")
        if not 0 < self.track_depth_tolerance < 1:
            raise ValueError(f"track_depth_tolerance must be in (0, 1), got {self.track_depth_tolerance}")
        if self.depth_resolution not in ("model", "original"):
            raise ValueError(f"depth_resolution must be 'model' or 'original', got {self.depth_resolution!r}")


DEFAULT_OPTIONS = ExportOptions()


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote: the files (main file first) and, for point exports, the number of points."""

    files: tuple[Path, ...]
    points: int | None = None

    @property
    def path(self) -> Path:
        """The main file (or folder) written."""
        return self.files[0]
