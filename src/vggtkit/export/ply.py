"""PLY export: binary little-endian point cloud with colours and confidence, optional voxel down-sampling.

Vertex properties: ``x y z`` (float32), ``red green blue`` (uint8), ``confidence`` (float32). Readable by
trimesh, Open3D, CloudCompare, MeshLab, Blender, and as nerfstudio / gsplat initial points.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from vggtkit.export.options import DEFAULT_OPTIONS, ExportOptions, ExportResult
from vggtkit.export.points import PointSet, select_points
from vggtkit.reconstruction import Reconstruction
from vggtkit.utils.atomic import atomic_path

__all__ = ["export_ply", "voxel_downsample", "write_ply"]

logger = logging.getLogger(__name__)

_VERTEX = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("confidence", "<f4"),
    ]
)


def voxel_downsample(points: PointSet, voxel_size: float) -> PointSet:
    """Merge the points of each ``voxel_size`` cube: mean position and colour, highest confidence; the frame and
    pixel of the most confident point."""
    if len(points) == 0:
        return points
    keys = np.floor(points.xyz.astype(np.float64) / voxel_size).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n = len(counts)
    xyz = np.zeros((n, 3))
    rgb = np.zeros((n, 3))
    np.add.at(xyz, inverse, points.xyz)
    np.add.at(rgb, inverse, points.rgb)
    conf = np.full(n, -np.inf, dtype=np.float32)
    np.maximum.at(conf, inverse, points.conf)
    best = np.zeros(n, dtype=np.int64)  # index of the most confident point per voxel
    order = np.argsort(points.conf, kind="stable")
    best[inverse[order]] = order
    return PointSet(
        xyz=(xyz / counts[:, None]).astype(np.float32),
        rgb=np.clip(np.rint(rgb / counts[:, None]), 0, 255).astype(np.uint8),
        conf=conf,
        frame=points.frame[best],
        pixel=points.pixel[best],
    )


def write_ply(
    path: str | os.PathLike[str], xyz: np.ndarray, rgb: np.ndarray, conf: np.ndarray | None = None
) -> Path:
    """Write points (N, 3), colours (N, 3) uint8 and confidence (N,) as a binary PLY (atomically)."""
    path = Path(path)
    n = len(xyz)
    vertices = np.empty(n, dtype=_VERTEX)
    vertices["x"], vertices["y"], vertices["z"] = (np.asarray(xyz, np.float32)[:, k] for k in range(3))
    vertices["red"], vertices["green"], vertices["blue"] = (np.asarray(rgb, np.uint8)[:, k] for k in range(3))
    vertices["confidence"] = 1.0 if conf is None else np.asarray(conf, np.float32)
    header = "\n".join(
        [
            "ply",
            "format binary_little_endian 1.0",
            "comment written by vggtkit",
            f"element vertex {n}",
            "property float x",
            "property float y",
            "property float z",
            "property uchar red",
            "property uchar green",
            "property uchar blue",
            "property float confidence",
            "end_header",
        ]
    )
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(header.encode("ascii") + b"\n")
        fh.write(vertices.tobytes())
    return path


def export_ply(
    rec: Reconstruction,
    path: str | os.PathLike[str],
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """Write the selected points (see :func:`vggtkit.export.points.select_points`) as a binary PLY, voxel
    down-sampled when ``options.voxel_size`` is set. Zero points give a valid file with no vertex (and a warning)."""
    points = select_points(rec, options, keep)
    if options.voxel_size is not None:
        before = len(points)
        points = voxel_downsample(points, options.voxel_size)
        logger.info("voxel size %g: %d -> %d points", options.voxel_size, before, len(points))
    write_ply(path, points.xyz, points.rgb, points.conf)
    logger.info("wrote %s (%d points)", path, len(points))
    return ExportResult((Path(path),), len(points))
