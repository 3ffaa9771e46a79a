"""nerfstudio ``transforms.json``: cameras for NeRF / Gaussian-splatting tools (nerfstudio, gsplat, instant-ngp style).

Per frame: ``file_path`` (``images/<name>``, relative to the output folder, where the images are linked or
copied), ``transform_matrix`` (camera-to-world in OpenGL axes: x right, y up, z back), and ``fl_x, fl_y, cx,
cy, w, h`` at the image file's resolution (COLMAP's pixel convention, as nerfstudio's own COLMAP converter
writes). ``ply_file_path`` names the point cloud nerfstudio's splatfacto uses as initial points.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vggtkit.export._images import write_images
from vggtkit.export._json import write_json
from vggtkit.export.options import DEFAULT_OPTIONS, ExportOptions, ExportResult
from vggtkit.export.ply import export_ply
from vggtkit.reconstruction import Reconstruction

__all__ = ["export_transforms_json"]

_OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
PLY_NAME = "points.ply"


def export_transforms_json(
    rec: Reconstruction,
    path: str | os.PathLike[str],
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
    write_ply: bool = True,
) -> ExportResult:
    """Write ``transforms.json``, the images beside it (``images/``) and, unless ``write_ply`` is False (the
    caller writes it), the point cloud ``points.ply`` it refers to.

    Returns:
        ``transforms.json`` (then the images folder and the PLY) and the number of points in the PLY.
    """
    path = Path(path)
    out_dir = path.parent
    frames = write_images(rec, out_dir / "images")
    world_from_cam = rec.world_from_cam()
    entries = []
    for i, frame in enumerate(frames):
        K = frame.K
        entries.append(
            {
                "file_path": f"images/{frame.path.name}",
                "transform_matrix": (world_from_cam[i] @ _OPENGL_FROM_OPENCV).tolist(),
                "fl_x": float(K[0, 0]),
                "fl_y": float(K[1, 1]),
                "cx": float(K[0, 2]) + 0.5,
                "cy": float(K[1, 2]) + 0.5,
                "w": int(frame.hw[1]),
                "h": int(frame.hw[0]),
                "colmap_im_id": i + 1,
            }
        )
    points = None
    files = [path, out_dir / "images"]
    if write_ply:
        result = export_ply(rec, out_dir / PLY_NAME, options, keep)
        points = result.points
        files.append(result.path)
    data = {"camera_model": "OPENCV", "frames": entries, "ply_file_path": PLY_NAME}
    write_json(path, data)
    return ExportResult(tuple(files), points)
