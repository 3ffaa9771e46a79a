"""Refinement of a feed-forward reconstruction against its images ("VGGT + BA").

``refine(reconstruction, options)`` finds correspondences at each image's original resolution (the classical
matcher, or the model's track head), starts from the predicted cameras and depth (re-initialising frames whose
predicted pose the correspondences contradict), runs bundle adjustment with pycolmap, and returns a
:class:`RefineResult`: the refined :class:`~vggtkit.pipeline.Reconstruction`, the tracks and points behind
it, and a per-frame report. ``align(...)`` puts a reconstruction in a known frame (camera positions, or a
known distance between two cameras); ``RefineOptions.alignment`` does it as part of ``refine``.
``to_pycolmap(result)`` builds the COLMAP model with the real correspondences; ``export_refined(result, out)``
writes the refined npz, ``refine.json`` and every export of the refined result.

The package itself is callable: ``vggtkit.refine(rec, options)`` is ``vggtkit.refine.refine(rec, options)``.
"""

from __future__ import annotations

import sys
import types

from vggtkit.refine.align import (
    AlignmentReport,
    Similarity,
    align,
    apply_similarity,
    check_alignment,
    load_positions,
)
from vggtkit.refine.cameras import Camera
from vggtkit.refine.colmap import to_pycolmap, write_colmap_model
from vggtkit.refine.correspondences import (
    ClassicalMatcher,
    Correspondences,
    CorrespondenceSource,
    Geometry,
    GuidedSource,
    select_query_frames,
)
from vggtkit.refine.export import REFINED_PREDICTIONS, REPORT_NAME, export_refined
from vggtkit.refine.intrinsics import KnownIntrinsics
from vggtkit.refine.options import AlignOptions, BundleOptions, InitOptions, MatchOptions, RefineOptions
from vggtkit.refine.pipeline import refine
from vggtkit.refine.report import FrameReport, RefineReport
from vggtkit.refine.result import RefineResult
from vggtkit.refine.tracks import Tracks

__all__ = [
    "REFINED_PREDICTIONS",
    "REPORT_NAME",
    "AlignOptions",
    "AlignmentReport",
    "Similarity",
    "align",
    "apply_similarity",
    "check_alignment",
    "export_refined",
    "load_positions",
    "to_pycolmap",
    "write_colmap_model",
    "BundleOptions",
    "Camera",
    "ClassicalMatcher",
    "CorrespondenceSource",
    "Correspondences",
    "FrameReport",
    "Geometry",
    "GuidedSource",
    "InitOptions",
    "KnownIntrinsics",
    "MatchOptions",
    "RefineOptions",
    "RefineReport",
    "RefineResult",
    "Tracks",
    "refine",
    "select_query_frames",
]


class _CallablePackage(types.ModuleType):
    """This package, callable as its main function, so that ``vggtkit.refine(rec)`` reads like
    ``vggtkit.reconstruct(...)`` while ``vggtkit.refine.RefineOptions`` stays reachable."""

    def __call__(self, *args, **kwargs) -> RefineResult:
        return refine(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
