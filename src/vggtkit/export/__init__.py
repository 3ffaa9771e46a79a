"""Exports of a :class:`~vggtkit.Reconstruction`: one module per format, a registry, ``export_all``.

Every registered exporter is called as ``EXPORTERS[name](rec, out_dir, options, keep)`` and writes its files
under ``out_dir`` (temporary names, renamed when complete), returning an :class:`ExportResult`. The same
exporters are importable by name (``export_glb``, ``export_colmap``, ...); the modules (``vggtkit.export.glb``,
...) hold the writers, which take the exact file or folder to write.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vggtkit.export import cameras, colmap, depth, glb, npz, ply, sky, transforms
from vggtkit.export.options import CAMERA_MODELS, DEFAULT_OPTIONS, ExportOptions, ExportResult
from vggtkit.reconstruction import Reconstruction

__all__ = [
    "CAMERA_MODELS",
    "DEFAULT_OPTIONS",
    "EXPORTERS",
    "EXPORT_DESCRIPTIONS",
    "ExportOptions",
    "ExportResult",
    "Exporter",
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


@dataclass(frozen=True)
class Exporter:
    """One export format: the function that writes it and where it writes under the output folder.

    ``exporter(rec, out_dir, options, keep)`` calls ``write(rec, out_dir / target, options, keep)``.

    Attributes:
        name: the format's name in :data:`EXPORTERS` (and on the command line).
        target: the file or folder ``write`` gets, relative to the output folder ("." for the folder itself).
        write: ``write(rec, path, options, keep, **extra) -> ExportResult``, from the format's module.
        description: what it writes and what reads it, in one line.
        uses_masks: whether ``keep`` masks (sky) change what it writes.
    """

    name: str
    target: str
    write: Callable[..., ExportResult]
    description: str
    uses_masks: bool = True

    def __call__(
        self,
        rec: Reconstruction,
        out_dir: PathLike,
        options: ExportOptions = DEFAULT_OPTIONS,
        keep: np.ndarray | None = None,
        **extra: Any,
    ) -> ExportResult:
        """Write this format under ``out_dir``.

        Args:
            rec: the reconstruction.
            out_dir: the output folder.
            options: thresholds, masks and format options.
            keep: optional (S, H, W) bool mask of allowed pixels (e.g. not sky).
            **extra: keywords of this format's writer (transforms: ``write_ply``).
        """
        return self.write(rec, Path(out_dir) / self.target, options, keep, **extra)


# In the order export_all runs them: npz first, ply before transforms (which can reuse its points.ply).
EXPORTERS: dict[str, Exporter] = {
    e.name: e
    for e in (
        Exporter(
            "npz",
            "predictions.npz",
            npz.export_npz,
            "predictions.npz: every prediction (re-export later with `vggtkit export`)",
            uses_masks=False,
        ),
        Exporter(
            "glb",
            "scene.glb",
            glb.export_glb,
            "scene.glb: coloured point cloud and camera frusta (Blender, web viewers)",
        ),
        Exporter(
            "ply", "points.ply", ply.export_ply, "points.ply: binary point cloud with colours and confidence"
        ),
        Exporter(
            "colmap",
            ".",
            colmap.export_colmap,
            "sparse/0 (.bin and .txt) + images/: COLMAP model with multi-view tracks",
        ),
        Exporter(
            "depth",
            "depth",
            depth.export_depth,
            "depth/: 16-bit depth PNGs, colour previews, confidence PNGs",
        ),
        Exporter(
            "cameras",
            "cameras.json",
            cameras.export_cameras_json,
            "cameras.json: per-frame intrinsics and poses (OpenCV)",
            uses_masks=False,
        ),
        Exporter(
            "transforms",
            "transforms.json",
            transforms.export_transforms_json,
            "transforms.json + images/ + points.ply: nerfstudio / Gaussian splatting",
        ),
    )
}
EXPORT_DESCRIPTIONS: dict[str, str] = {name: e.description for name, e in EXPORTERS.items()}

export_npz = EXPORTERS["npz"]
export_glb = EXPORTERS["glb"]
export_ply = EXPORTERS["ply"]
export_colmap = EXPORTERS["colmap"]
export_depth = EXPORTERS["depth"]
export_cameras_json = EXPORTERS["cameras"]
export_transforms_json = EXPORTERS["transforms"]


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


def _keep_masks(rec: Reconstruction, options: ExportOptions, selected: list[str]) -> np.ndarray | None:
    """The (S, H, W) pixels not masked as sky, computed once for every selected export that uses masks."""
    if not options.sky_model or not any(EXPORTERS[n].uses_masks for n in selected):
        return None
    return sky.sky_keep_masks(rec, options.sky_model)


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
    keep = _keep_masks(rec, options, selected)
    results: dict[str, ExportResult] = {}
    order = [n for n in EXPORTERS if n in selected]
    for k, name in enumerate(order):
        if progress is not None:
            progress(f"export {name}", k, len(order))
        # transforms.json names points.ply: written already when the ply export runs too.
        extra = {"write_ply": "ply" not in selected} if name == "transforms" else {}
        results[name] = EXPORTERS[name](rec, out_dir, options, keep, **extra)
    if progress is not None:
        progress("export", len(order), len(order))
    return results
