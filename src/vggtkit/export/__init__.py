"""Exports of a :class:`~vggtkit.pipeline.Reconstruction`: one module per format, a registry, ``export_all``.

Every registered exporter is called as ``EXPORTERS[name](rec, out_dir, options, keep)`` and writes its files
under ``out_dir`` (temporary names, renamed when complete), returning an :class:`ExportResult`.

| name | writes | read by |
|---|---|---|
| glb | ``scene.glb`` | Blender, three.js / Babylon viewers, gradio Model3D, trimesh |
| ply | ``points.ply`` | trimesh, Open3D, CloudCompare, MeshLab, 3DGS initialisation |
| colmap | ``sparse/0/*.bin`` + ``*.txt``, ``images/`` | COLMAP, pycolmap, nerfstudio, gsplat, 3DGS |
| depth | ``depth/*.png`` + ``depth.json`` | any 16-bit PNG reader |
| npz | ``predictions.npz`` | ``Reconstruction.load_npz``, ``vggtkit export``, numpy |
| cameras | ``cameras.json`` | any JSON reader |
| transforms | ``transforms.json``, ``images/``, ``points.ply`` | nerfstudio, gsplat (nerfstudio format) |
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from vggtkit.export.options import CAMERA_MODELS, DEFAULT_OPTIONS, ExportOptions, ExportResult
from vggtkit.pipeline.reconstruction import Reconstruction

__all__ = [
    "CAMERA_MODELS",
    "DEFAULT_OPTIONS",
    "EXPORTERS",
    "EXPORT_DESCRIPTIONS",
    "ExportOptions",
    "ExportResult",
    "export_all",
    "export_cameras_json",
    "export_colmap",
    "export_depth",
    "export_glb",
    "export_npz",
    "export_ply",
    "export_transforms_json",
    "parse_export_names",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
ExportFn = Callable[[Reconstruction, PathLike, ExportOptions, "np.ndarray | None"], ExportResult]


def export_glb(
    rec: Reconstruction,
    out_dir: PathLike,
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """``out_dir/scene.glb``; see :func:`vggtkit.export.glb.export_glb`."""
    from vggtkit.export.glb import export_glb as write

    return write(rec, Path(out_dir) / "scene.glb", options, keep)


def export_ply(
    rec: Reconstruction,
    out_dir: PathLike,
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """``out_dir/points.ply``; see :func:`vggtkit.export.ply.export_ply`."""
    from vggtkit.export.ply import export_ply as write

    return write(rec, Path(out_dir) / "points.ply", options, keep)


def export_colmap(
    rec: Reconstruction,
    out_dir: PathLike,
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """``out_dir/sparse/0`` and ``out_dir/images``; see :func:`vggtkit.export.colmap.export_colmap`."""
    from vggtkit.export.colmap import export_colmap as write

    return write(rec, out_dir, options, keep)


def export_depth(
    rec: Reconstruction,
    out_dir: PathLike,
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """``out_dir/depth/``; see :func:`vggtkit.export.depth.export_depth`."""
    from vggtkit.export.depth import export_depth as write

    return write(rec, Path(out_dir) / "depth", options, keep)


def export_npz(
    rec: Reconstruction,
    out_dir: PathLike,
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """``out_dir/predictions.npz`` (:meth:`Reconstruction.save_npz`; options and keep do not apply)."""
    return ExportResult((rec.save_npz(Path(out_dir) / "predictions.npz"),))


def export_cameras_json(
    rec: Reconstruction,
    out_dir: PathLike,
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """``out_dir/cameras.json``; see :mod:`vggtkit.export.cameras`."""
    from vggtkit.export.cameras import export_cameras_json as write

    return write(rec, Path(out_dir) / "cameras.json", options, keep)


def export_transforms_json(
    rec: Reconstruction,
    out_dir: PathLike,
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
    write_ply: bool = True,
) -> ExportResult:
    """``out_dir/transforms.json`` (+ ``images/``, ``points.ply``); see :mod:`vggtkit.export.transforms`."""
    from vggtkit.export.transforms import export_transforms_json as write

    return write(rec, Path(out_dir) / "transforms.json", options, keep, write_ply=write_ply)


EXPORTERS: dict[str, ExportFn] = {
    "npz": export_npz,
    "glb": export_glb,
    "ply": export_ply,
    "colmap": export_colmap,
    "depth": export_depth,
    "cameras": export_cameras_json,
    "transforms": export_transforms_json,
}
EXPORT_DESCRIPTIONS: dict[str, str] = {
    "npz": "predictions.npz: every prediction (re-export later with `vggtkit export`)",
    "glb": "scene.glb: coloured point cloud and camera frusta (Blender, web viewers)",
    "ply": "points.ply: binary point cloud with colours and confidence",
    "colmap": "sparse/0 (.bin and .txt) + images/: COLMAP model with multi-view tracks",
    "depth": "depth/: 16-bit depth PNGs, colour previews, confidence PNGs",
    "cameras": "cameras.json: per-frame intrinsics and poses (OpenCV)",
    "transforms": "transforms.json + images/ + points.ply: nerfstudio / Gaussian splatting",
}
_USES_MASKS = ("glb", "ply", "colmap", "depth", "transforms")


def parse_export_names(text: str | Iterable[str]) -> list[str]:
    """``"glb,ply"`` (or a list) -> ``["glb", "ply"]``; ``"all"`` selects every format.

    Raises:
        ValueError: naming the unknown entries and the known ones.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip().lower() for n in items if n.strip()]
    if "all" in names:
        return list(EXPORTERS)
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise ValueError(
            f"unknown export {', '.join(map(repr, unknown))}; choose from {', '.join(EXPORTERS)} "
            "or all (comma separated)"
        )
    if not names:
        raise ValueError(f"no export chosen; choose from {', '.join(EXPORTERS)} or all")
    return list(dict.fromkeys(names))


def export_all(
    rec: Reconstruction,
    out_dir: str | os.PathLike[str],
    names: str | Iterable[str],
    options: ExportOptions = DEFAULT_OPTIONS,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, ExportResult]:
    """Run several exports into ``out_dir``, computing shared inputs (sky masks) once.

    Args:
        rec: the reconstruction.
        out_dir: output folder (created; must not be a file).
        names: export names (see ``EXPORTERS``) as a list or comma-separated string.
        options: thresholds, masks and format options.
        progress: called as ``progress("export <name>", done, total)``.

    Returns:
        name -> :class:`ExportResult`, in the order run.
    """
    selected = parse_export_names(names)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output '{out_dir}' exists and is a file; choose a folder path")
    if options.frame is not None and options.frame >= rec.num_frames:
        raise ValueError(f"frame {options.frame} is out of range: frames 0..{rec.num_frames - 1}")
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = None
    if options.sky_model and any(n in _USES_MASKS for n in selected):
        from vggtkit.export.sky import sky_keep_masks

        keep = sky_keep_masks(rec, options.sky_model)
    results: dict[str, ExportResult] = {}
    order = [n for n in EXPORTERS if n in selected]  # npz first, ply before transforms
    for k, name in enumerate(order):
        if progress is not None:
            progress(f"export {name}", k, len(order))
        if name == "transforms":
            results[name] = export_transforms_json(
                rec, out_dir, options, keep, write_ply="ply" not in selected
            )
        else:
            results[name] = EXPORTERS[name](rec, out_dir, options, keep)
    if progress is not None:
        progress("export", len(order), len(order))
    return results
