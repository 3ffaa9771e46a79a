"""Exports of a refined reconstruction, written beside (or instead of) the feed-forward ones.

* ``predictions_refined.npz``: the refined :class:`Reconstruction` (the name the viewer looks for beside
  ``predictions.npz``; ``vggtkit export`` re-exports it), and ``refine.json``: the report.
* every other format of :data:`vggtkit.export.EXPORTERS` from the refined reconstruction (GLB, PLY,
  ``cameras.json``, ``transforms.json``, depth maps: refined cameras, depth rescaled per frame), in the
  aligned frame when the result was aligned.
* ``colmap``: ``images/`` and ``sparse/0`` holding the refined cameras and one 3-D point per track, observed at
  its matched keypoints at the original resolution (:func:`~vggtkit.refine.colmap.write_colmap_model`).

When nothing was refined (status ``feed-forward``) there is no refined npz (a stale one is removed so that
the viewer shows no refined set) and the COLMAP model is the regular export of the feed-forward cameras.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from vggtkit.export import DEFAULT_OPTIONS, ExportOptions, ExportResult, export_all, parse_export_names
from vggtkit.export._images import write_images
from vggtkit.refine.colmap import write_colmap_model
from vggtkit.refine.result import RefineResult

__all__ = ["REFINED_PREDICTIONS", "REPORT_NAME", "export_refined"]

logger = logging.getLogger(__name__)

REFINED_PREDICTIONS = "predictions_refined.npz"
REPORT_NAME = "refine.json"

Progress = Callable[[str, int, int], None]


def _refined_colmap(result: RefineResult, out_dir: Path) -> ExportResult:
    """``images/`` + ``sparse/0`` with the matched keypoints as observations."""
    rec = result.reconstruction
    frames = write_images(rec, out_dir / "images")
    model_dir = write_colmap_model(result, out_dir / "sparse" / "0")
    logger.info(
        "COLMAP model of the refined cameras: %d tracks, mean track length %.2f",
        len(result.tracks),
        result.mean_track_length,
    )
    if not all(f.original for f in frames):
        logger.warning(
            "the COLMAP model's cameras and observations are at the original resolution, but some images were "
            "written at the model resolution (their originals are unavailable)"
        )
    return ExportResult((model_dir, out_dir / "images"), len(result.tracks))


def _write_predictions(result: RefineResult, out_dir: Path) -> Path | None:
    """The refined npz, or None (and no stale file) when nothing was refined."""
    path = out_dir / REFINED_PREDICTIONS
    if result.report.status == "feed-forward" and result.report.alignment is None:
        path.unlink(missing_ok=True)
        return None
    result.reconstruction.save_npz(path)
    return path


def export_refined(
    result: RefineResult,
    out_dir: str | os.PathLike[str],
    names: str | Iterable[str] = (),
    options: ExportOptions = DEFAULT_OPTIONS,
    progress: Progress | None = None,
) -> dict[str, ExportResult]:
    """Write the refined reconstruction, its report and the chosen exports into ``out_dir``.

    Args:
        result: a refinement result (aligned or not).
        out_dir: the output folder (created).
        names: exports to write from the refined reconstruction (see ``vggtkit.export.EXPORTERS``); ``npz``
            is the refined npz, written always, under :data:`REFINED_PREDICTIONS`.
        options: thresholds, masks and format options of the exports.
        progress: called as ``progress(stage, done, total)``.

    Returns:
        name -> :class:`ExportResult`; ``"refined"`` holds the refined npz (when written) and ``refine.json``.
    """
    selected = [n for n in (parse_export_names(names) if names else []) if n != "npz"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = result.report.save(out_dir / REPORT_NAME)
    npz = _write_predictions(result, out_dir)
    results = {"refined": ExportResult(tuple(p for p in (npz, report) if p is not None))}
    others = [n for n in selected if n != "colmap" or result.report.status == "feed-forward"]
    if others:
        results.update(export_all(result.reconstruction, out_dir, others, options, progress=progress))
    if "colmap" in selected and result.report.status != "feed-forward":
        results["colmap"] = _refined_colmap(result, out_dir)
    return results
