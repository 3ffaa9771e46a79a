"""GLB export: coloured point cloud plus camera frusta, as the official demo's ``predictions_to_glb``.

Points pass :func:`vggtkit.export.points.select_points` (confidence percentile, frame filter, black / white /
sky masks). Cameras are drawn as frusta of their predicted field of view, coloured by frame index with
matplotlib's ``gist_rainbow``. The scene is aligned to the reference camera and turned to OpenGL / glTF axes
(y up, looking down -z), as the official demo does.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path

import numpy as np

from vggtkit.export.options import DEFAULT_OPTIONS, ExportOptions, ExportResult
from vggtkit.export.points import PointSet, select_points
from vggtkit.reconstruction import Reconstruction
from vggtkit.utils.atomic import atomic_path

__all__ = ["build_glb_scene", "export_glb", "scene_alignment"]

logger = logging.getLogger(__name__)

_OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
_ROT_Y_180 = np.diag([-1.0, 1.0, -1.0, 1.0])
_FRUSTUM_DEPTH = 0.1  # frustum length as a fraction of the scene size


def scene_alignment(rec: Reconstruction) -> np.ndarray:
    """4x4 transform applied to the whole GLB scene: ``world_from_cam(reference) @ flip_yz @ rot_y(180)``."""
    world_from_ref = rec.world_from_cam()[rec.reference_index]
    return world_from_ref @ _OPENGL_FROM_OPENCV @ _ROT_Y_180


def _scene_scale(points: PointSet, rec: Reconstruction) -> float:
    """Extent of the point cloud: norm of the 5th-95th percentile range per axis (camera centres if empty)."""
    xyz = points.xyz if len(points) >= 2 else rec.world_from_cam()[:, :3, 3]
    if len(xyz) >= 2:
        extent = float(np.linalg.norm(np.percentile(xyz, 95, axis=0) - np.percentile(xyz, 5, axis=0)))
        if np.isfinite(extent) and extent > 0:
            return extent
    return 1.0


def _frustum(K: np.ndarray, hw: tuple[int, int], depth: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame vertices (5, 3) and faces of a pyramid (apex at the centre, base at ``depth``)."""
    h, w = hw
    corners_px = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]]) - 0.5
    xy = (corners_px - K[[0, 1], [2, 2]]) / K[[0, 1], [0, 1]] * depth
    verts = np.vstack([np.zeros(3), np.column_stack([xy, np.full(4, depth)])])
    sides = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    base = np.array([[1, 3, 2], [1, 4, 3]])
    faces = np.vstack([sides, base])
    return verts, np.vstack([faces, faces[:, ::-1]])  # both windings: visible from inside and outside


def _camera_meshes(rec: Reconstruction, frames: list[int], scale: float) -> list:
    import matplotlib
    import trimesh

    cmap = matplotlib.colormaps["gist_rainbow"]
    world_from_cam = rec.world_from_cam()
    meshes = []
    for i in frames:
        verts, faces = _frustum(rec.intrinsic[i], rec.model_hw, _FRUSTUM_DEPTH * scale)
        verts_world = verts @ world_from_cam[i, :3, :3].T + world_from_cam[i, :3, 3]
        rgba = (np.array(cmap(i / max(rec.num_frames, 1))) * 255).round().astype(np.uint8)
        meshes.append(
            trimesh.Trimesh(
                vertices=verts_world, faces=faces, face_colors=np.tile(rgba, (len(faces), 1)), process=False
            )
        )
    return meshes


def build_glb_scene(
    rec: Reconstruction, options: ExportOptions = DEFAULT_OPTIONS, keep: np.ndarray | None = None
):
    """The ``trimesh.Scene`` of the GLB (point cloud and camera frusta), already aligned.

    Returns:
        ``(scene, points)``: the scene (None if it would be empty) and the exported :class:`PointSet`.
    """
    import trimesh

    points = select_points(rec, options, keep)
    scene = trimesh.Scene()
    if len(points):
        rgba = np.column_stack([points.rgb, np.full(len(points), 255, np.uint8)])
        scene.add_geometry(trimesh.PointCloud(points.xyz.astype(np.float64), colors=rgba), geom_name="points")
    if options.show_cameras:
        frames = [options.frame] if options.frame is not None else list(range(rec.num_frames))
        for i, mesh in zip(frames, _camera_meshes(rec, frames, _scene_scale(points, rec)), strict=True):
            scene.add_geometry(mesh, geom_name=f"camera_{i:04d}")
    if scene.is_empty:
        return None, points
    scene.apply_transform(scene_alignment(rec))
    return scene, points


def _write_empty_glb(path: Path) -> None:
    """A valid glTF 2.0 binary with an empty scene (trimesh refuses to export empty scenes)."""
    doc = json.dumps(
        {"asset": {"version": "2.0", "generator": "vggtkit"}, "scenes": [{"nodes": []}], "scene": 0},
        separators=(",", ":"),
    ).encode()
    doc += b" " * (-len(doc) % 4)
    path.write_bytes(
        struct.pack("<4sII", b"glTF", 2, 20 + len(doc)) + struct.pack("<I4s", len(doc), b"JSON") + doc
    )


def export_glb(
    rec: Reconstruction,
    path: str | os.PathLike[str],
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """Write the scene as a binary glTF (``.glb``), e.g. for Blender, three.js, gradio's Model3D.

    Args:
        rec: the reconstruction.
        path: output file.
        options: confidence percentile, branch, frame filter, masks, ``show_cameras``.
        keep: optional (S, H, W) bool mask of pixels allowed (e.g. from :func:`vggtkit.export.sky.sky_keep_masks`).

    Returns:
        The written file and the number of points. With no point and no camera left, the file holds an empty
        (valid) scene and a warning is logged.
    """
    path = Path(path)
    scene, points = build_glb_scene(rec, options, keep)
    with atomic_path(path) as tmp:
        if scene is None:
            logger.warning(
                "%s: nothing to draw (no point passes the filters, cameras hidden); writing an empty scene",
                path.name,
            )
            _write_empty_glb(tmp)
        else:
            tmp.write_bytes(scene.export(file_type="glb"))
    logger.info("wrote %s (%d points)", path, len(points))
    return ExportResult((path,), len(points))
