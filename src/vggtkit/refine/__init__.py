"""Refinement of a feed-forward reconstruction against its images ("VGGT + BA").

``refine(reconstruction, options)`` finds correspondences at each image's original resolution (the classical
matcher, or the model's track head), starts from the predicted cameras and depth (re-initialising frames whose
predicted pose the correspondences contradict), runs bundle adjustment with pycolmap, and returns a
:class:`RefineResult`: the refined :class:`~vggtkit.pipeline.Reconstruction`, the tracks and points behind
it, and a per-frame report. ``align(...)`` puts a reconstruction in a known frame (camera positions, or a
known distance between two cameras). ``to_pycolmap(result)`` builds the COLMAP model with the real
correspondences.
"""

from __future__ import annotations

from vggtkit.refine.align import AlignmentReport, Similarity, align, apply_similarity, load_positions
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
from vggtkit.refine.intrinsics import KnownIntrinsics
from vggtkit.refine.options import BundleOptions, InitOptions, MatchOptions, RefineOptions
from vggtkit.refine.pipeline import refine
from vggtkit.refine.report import FrameReport, RefineReport
from vggtkit.refine.result import RefineResult
from vggtkit.refine.tracks import Tracks

__all__ = [
    "AlignmentReport",
    "Similarity",
    "align",
    "apply_similarity",
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
