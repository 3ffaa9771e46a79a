"""What a refinement did, frame by frame: a JSON-serialisable report (saved as ``refine.json`` by callers)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FrameReport", "RefineReport"]


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


@dataclass
class FrameReport:
    """One frame.

    Attributes:
        name: image name.
        status: "anchor" (held pose, defines the world frame), "refined" (started from its feed-forward pose),
            "re-initialised" (feed-forward pose contradicted by the correspondences; started from PnP) or
            "kept" (not refined: keeps its feed-forward camera, see ``reason``).
        reason: why a frame was kept, else None.
        observations: correspondences (track observations) found in the frame.
        inliers_before, inliers_after: observations within the reprojection threshold with the feed-forward
            cameras (points triangulated with them) and after refinement.
        reproj_error_before, reproj_error_after: median reprojection error (pixels) of the frame's
            observations before and of its inliers after; None where undefined.
        refined: what was refined: any of "pose", "focal_length", "principal_point", "distortion".
        focal_before, focal_after: mean focal length in pixels at the original resolution.
        depth_scale: factor applied to the frame's predicted depth.
    """

    name: str
    status: str
    reason: str | None = None
    observations: int = 0
    inliers_before: int = 0
    inliers_after: int = 0
    reproj_error_before: float | None = None
    reproj_error_after: float | None = None
    refined: list[str] = field(default_factory=list)
    focal_before: float | None = None
    focal_after: float | None = None
    depth_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in (
            "reproj_error_before",
            "reproj_error_after",
            "focal_before",
            "focal_after",
            "depth_scale",
        ):
            out[key] = _finite_or_none(out[key])
        return out


@dataclass
class RefineReport:
    """The whole refinement.

    Attributes:
        status: "refined" (every frame), "partial" (some frames kept their feed-forward camera) or
            "feed-forward" (nothing refined; see ``warnings``).
        source: where correspondences came from ("sift", "track-head").
        camera_model, shared_camera: the camera parametrisation.
        known_intrinsics: frames whose intrinsics were given (held fixed).
        query_frames: names of the frames tracks started from.
        anchor: name of the frame whose pose was held (None when nothing was refined).
        num_tracks, num_observations, mean_track_length: the refined model's correspondences.
        frames: per-frame reports, in frame order.
        warnings: what went wrong, in words.
        seconds: time per stage: correspondences, registration (with its adjustments), guided_matching,
            final_adjustment, total.
        options: the options used.
        alignment: how the result was aligned to known positions or a distance (see
            :func:`vggtkit.refine.align`), or None.
    """

    status: str
    source: str
    camera_model: str
    shared_camera: bool
    known_intrinsics: list[str] = field(default_factory=list)
    query_frames: list[str] = field(default_factory=list)
    anchor: str | None = None
    num_tracks: int = 0
    num_observations: int = 0
    mean_track_length: float = 0.0
    frames: list[FrameReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    alignment: dict[str, Any] | None = None

    @property
    def kept_frames(self) -> list[str]:
        """Names of the frames that keep their feed-forward camera."""
        return [f.name for f in self.frames if f.status == "kept"]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["frames"] = [f.to_dict() for f in self.frames]
        out["mean_track_length"] = round(self.mean_track_length, 4)
        out["seconds"] = {k: round(v, 4) for k, v in self.seconds.items()}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON (temporary name, then rename)."""
        from vggtkit.utils.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json() + "\n")
        return path

    def summary(self) -> str:
        """A short table of the frames, for printing."""
        lines = [
            f"refinement: {self.status} ({self.source}, {self.camera_model}"
            f"{', shared camera' if self.shared_camera else ''}); {self.num_tracks} tracks, mean length "
            f"{self.mean_track_length:.2f}",
            f"  {'frame':24s} {'status':15s} {'inliers':>15s} {'error px':>15s}  refined",
        ]
        for f in self.frames:
            before = "-" if f.reproj_error_before is None else f"{f.reproj_error_before:.2f}"
            after = "-" if f.reproj_error_after is None else f"{f.reproj_error_after:.2f}"
            lines.append(
                f"  {f.name[:24]:24s} {f.status:15s} {f.inliers_before:>6d} -> {f.inliers_after:<6d} "
                f"{before:>6s} -> {after:<6s}  {', '.join(f.refined) or '-'}"
                + (f" ({f.reason})" if f.reason else "")
            )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)
