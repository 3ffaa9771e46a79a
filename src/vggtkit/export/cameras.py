"""``cameras.json``: every frame's camera in plain JSON (OpenCV conventions), for scripts and other tools.

Per frame: ``name``, ``width``/``height`` and ``K`` at the original resolution, ``K_model`` with
``model_width``/``model_height`` at the model resolution, ``cam_from_world`` and ``world_from_cam`` (4x4,
OpenCV axes: x right, y down, z forward). Pixel centres are at integer coordinates (OpenCV).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vggtkit.export._json import write_json
from vggtkit.export.options import DEFAULT_OPTIONS, ExportOptions, ExportResult
from vggtkit.reconstruction import Reconstruction

__all__ = ["cameras_dict", "export_cameras_json"]


def cameras_dict(rec: Reconstruction) -> dict:
    """The content of ``cameras.json``."""
    cam_from_world = rec.cam_from_world()
    world_from_cam = rec.world_from_cam()
    model_h, model_w = rec.model_hw
    frames = []
    for i, name in enumerate(rec.names):
        frames.append(
            {
                "index": i,
                "name": name,
                "source": rec.image_paths[i] or None,
                "width": int(rec.original_hw[i, 1]),
                "height": int(rec.original_hw[i, 0]),
                "K": np.asarray(rec.intrinsic_original[i], dtype=float).tolist(),
                "model_width": model_w,
                "model_height": model_h,
                "K_model": np.asarray(rec.intrinsic[i], dtype=float).tolist(),
                "cam_from_world": cam_from_world[i].tolist(),
                "world_from_cam": world_from_cam[i].tolist(),
            }
        )
    return {
        "convention": "OpenCV: x right, y down, z forward; pixel centres at integer coordinates",
        "reference_frame": rec.reference_index,
        "frames": frames,
    }


def export_cameras_json(
    rec: Reconstruction,
    path: str | os.PathLike[str],
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """Write ``cameras.json`` (see the module docstring)."""
    return ExportResult((write_json(Path(path), cameras_dict(rec)),))
