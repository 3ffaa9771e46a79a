"""Metric scale and georeferencing: move a reconstruction into a known frame with a similarity transform.

Two kinds of knowledge: camera positions (image name -> x, y, z, e.g. GPS in a local metric frame or the
camera centres of another reconstruction), fitted by a robust Umeyama similarity (LO-RANSAC, then least
squares on the inliers); or the distance between two cameras, which fixes the scale alone. Residuals
(distance from each aligned camera centre to its given position) are reported.

Positions files: JSON ``{"img1.jpg": [x, y, z], ...}`` or text lines ``img1.jpg x y z`` (COLMAP's
``model_aligner`` reference format; ``#`` starts a comment).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from vggtkit.geometry import extri_intri_to_pose_encoding
from vggtkit.reconstruction import Reconstruction
from vggtkit.refine.options import AlignOptions
from vggtkit.refine.result import RefineResult

__all__ = [
    "AlignmentReport",
    "Similarity",
    "align",
    "apply_similarity",
    "camera_centres",
    "check_alignment",
    "load_positions",
]

logger = logging.getLogger(__name__)

Target = TypeVar("Target", Reconstruction, RefineResult)
_DEFAULT_ERROR_SHARE = 0.05  # default inlier distance: this share of the positions' spread


@dataclass(frozen=True)
class Similarity:
    """``x_new = scale * rotation @ x_old + translation``."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def identity(cls) -> Similarity:
        return cls(1.0, np.eye(3), np.zeros(3))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points in the old frame -> the new frame."""
        return self.scale * points @ self.rotation.T + self.translation

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": float(self.scale),
            "rotation": np.asarray(self.rotation, dtype=float).tolist(),
            "translation": np.asarray(self.translation, dtype=float).tolist(),
        }


@dataclass
class AlignmentReport:
    """How a reconstruction was aligned.

    Attributes:
        kind: "positions" or "distance".
        similarity: the transform applied.
        residuals: image name -> distance (target units) between its aligned camera centre and its given
            position (positions), or the aligned distance minus the given one (distance).
        inliers: names whose positions the similarity was fitted to.
        unmatched: given names that are not images of the reconstruction.
        rms: root mean square of the inliers' residuals.
    """

    kind: str
    similarity: Similarity
    residuals: dict[str, float] = field(default_factory=dict)
    inliers: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    rms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "similarity": self.similarity.to_dict(),
            "residuals": {k: round(v, 6) for k, v in self.residuals.items()},
            "inliers": list(self.inliers),
            "unmatched": list(self.unmatched),
            "rms": round(self.rms, 6),
        }


def load_positions(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read camera positions (see the module docstring).

    Raises:
        ValueError: a missing or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"positions file not found: '{path}'")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read '{path}': {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"'{path}' is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"'{path}' must map image names to [x, y, z]")
        items = list(data.items())
    else:
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 4:
                raise ValueError(f"{path} line {number}: expected 'IMAGE_NAME X Y Z'")
            items.append((fields[0], fields[1:]))
    return {str(name): _position(value, f"{path}: {name}") for name, value in items}


def _position(value: Any, where: str) -> np.ndarray:
    try:
        xyz = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        xyz = np.zeros(0)
    if xyz.shape != (3,) or not np.isfinite(xyz).all():
        raise ValueError(f"{where}: a position must be three finite numbers x, y, z")
    return xyz


def camera_centres(rec: Reconstruction) -> np.ndarray:
    """(S, 3) camera centres in world coordinates."""
    rot, trans = rec.extrinsic[:, :, :3], rec.extrinsic[:, :, 3]
    return -np.einsum("sji,sj->si", rot, trans)


def _frame_index(rec: Reconstruction, name: str) -> int | None:
    """The frame called ``name`` (exact name, else the same stem)."""
    if name in rec.names:
        return rec.names.index(name)
    stems = [Path(n).stem for n in rec.names]
    stem = Path(name).stem
    return stems.index(stem) if stems.count(stem) == 1 else None


def _fit_positions(
    src: np.ndarray, dst: np.ndarray, max_error: float, seed: int
) -> tuple[Similarity, np.ndarray]:
    import pycolmap

    from vggtkit.metrics import umeyama

    options = pycolmap.RANSACOptions(max_error=max_error, random_seed=seed)
    result = pycolmap.estimate_sim3d_robust(src, dst, options)
    if result is None:
        raise ValueError(
            "no similarity fits the given positions (are the cameras or positions all in a line?)"
        )
    inliers = np.asarray(result["inlier_mask"], dtype=bool)
    if inliers.sum() < 3:
        raise ValueError(
            f"only {int(inliers.sum())} positions agree within {max_error:g}; give a larger tolerance"
        )
    scale, rot, trans = umeyama(src[inliers], dst[inliers])
    return Similarity(scale, rot, trans), inliers


def _matched_positions(rec: Reconstruction, positions: Mapping[str, Any]) -> tuple[dict[str, int], list[str]]:
    """Given names -> frame index for those that are images of ``rec``, and the sorted unknown names.

    Raises:
        ValueError: fewer than three given names are images of ``rec``.
    """
    found = {n: _frame_index(rec, n) for n in positions}
    matched = {n: i for n, i in found.items() if i is not None}
    unmatched = sorted(n for n, i in found.items() if i is None)
    if len(matched) < 3:
        unknown = "" if not unmatched else " (unknown: " + ", ".join(unmatched[:3]) + ")"
        raise ValueError(
            f"aligning to positions needs at least 3 cameras with known positions, {len(matched)} of the given "
            f"names are images of the reconstruction{unknown}; with two cameras give their distance instead"
        )
    return matched, unmatched


def _distance_frames(rec: Reconstruction, distance: tuple[str, str, float]) -> tuple[int, int]:
    """The frames of a known distance's two cameras.

    Raises:
        ValueError: a name that is no image of ``rec``, or a length that is not positive.
    """
    name_a, name_b, length = distance
    index = [_frame_index(rec, n) for n in (name_a, name_b)]
    missing = [n for n, i in zip((name_a, name_b), index, strict=True) if i is None]
    if missing:
        raise ValueError(f"no image named {', '.join(repr(n) for n in missing)} in the reconstruction")
    if not (np.isfinite(length) and length > 0):
        raise ValueError(f"the distance between two cameras must be positive, got {length!r}")
    return index[0], index[1]


def check_alignment(rec: Reconstruction, alignment: AlignOptions) -> None:
    """Check, before any work, that ``alignment`` names images of ``rec`` (enough of them).

    Raises:
        ValueError: unknown names or too few cameras.
    """
    if alignment.positions is not None:
        _matched_positions(rec, alignment.positions)
    else:
        _distance_frames(rec, alignment.distance)


def _align_positions(
    rec: Reconstruction, positions: Mapping[str, Any], max_error: float | None, seed: int
) -> AlignmentReport:
    matched, unmatched = _matched_positions(rec, positions)
    names = list(matched)
    src = camera_centres(rec)[list(matched.values())]
    dst = np.stack([_position(positions[n], n) for n in names])
    if max_error is None:
        spread = float(np.sqrt(np.mean(np.sum((dst - dst.mean(axis=0)) ** 2, axis=1))))
        max_error = max(_DEFAULT_ERROR_SHARE * spread, 1e-9)
    similarity, inliers = _fit_positions(src, dst, max_error, seed)
    residual = np.linalg.norm(similarity.apply(src) - dst, axis=1)
    return AlignmentReport(
        kind="positions",
        similarity=similarity,
        residuals={n: float(r) for n, r in zip(names, residual, strict=True)},
        inliers=[n for n, ok in zip(names, inliers, strict=True) if ok],
        unmatched=unmatched,
        rms=float(np.sqrt(np.mean(residual[inliers] ** 2))),
    )


def _align_distance(rec: Reconstruction, distance: tuple[str, str, float]) -> AlignmentReport:
    name_a, name_b, length = distance
    a, b = _distance_frames(rec, distance)
    centres = camera_centres(rec)
    current = float(np.linalg.norm(centres[a] - centres[b]))
    if current < 1e-12:
        raise ValueError(
            f"cameras {name_a!r} and {name_b!r} are at the same place: their distance sets no scale"
        )
    similarity = Similarity(length / current, np.eye(3), np.zeros(3))
    return AlignmentReport(
        kind="distance",
        similarity=similarity,
        residuals={f"{name_a}-{name_b}": 0.0},
        inliers=[name_a, name_b],
    )


def apply_similarity(rec: Reconstruction, similarity: Similarity) -> Reconstruction:
    """A copy of ``rec`` in the new frame: poses, depth (times the scale), point maps and pose encodings."""
    s, rot, trans = similarity.scale, similarity.rotation, similarity.translation
    cam_rot = rec.extrinsic[:, :, :3] @ rot.T
    cam_trans = s * rec.extrinsic[:, :, 3] - cam_rot @ trans
    extrinsic = np.concatenate((cam_rot, cam_trans[:, :, None]), axis=2)
    world_points = None if rec.world_points is None else similarity.apply(rec.world_points).astype(np.float32)
    pose_enc = extri_intri_to_pose_encoding(
        torch.from_numpy(extrinsic), torch.from_numpy(rec.intrinsic), rec.model_hw
    )
    return dataclasses.replace(
        rec,
        extrinsic=extrinsic,
        pose_enc=pose_enc.numpy().astype(np.float32),
        depth=(rec.depth * s).astype(np.float32),
        world_points=world_points,
        world_points_from_depth=similarity.apply(rec.world_points_from_depth).astype(np.float32),
        names=list(rec.names),
        image_paths=list(rec.image_paths),
        timings=dict(rec.timings),
    )


def align(
    target: Target,
    *,
    positions: Mapping[str, Any] | None = None,
    distance: tuple[str, str, float] | None = None,
    max_error: float | None = None,
    seed: int = 0,
) -> tuple[Target, AlignmentReport]:
    """Move a reconstruction (or a refinement result) into a known frame.

    Args:
        target: a :class:`Reconstruction` or a :class:`RefineResult` (its tracks' points move too).
        positions: image name -> (x, y, z) of the camera centre; at least 3 cameras.
        distance: ``(name_a, name_b, metres)``: the distance between two cameras (scale only).
        max_error: inlier distance for the positions, in their units (default: 5 % of their spread).
        seed: RANSAC seed.

    Returns:
        The aligned copy (same type as ``target``) and the report (also stored in a result's report).

    Raises:
        ValueError: neither or both of positions and distance, unknown names, too few positions, or positions
            that fit no similarity.
    """
    if (positions is None) == (distance is None):
        raise ValueError("align needs camera positions or a distance between two cameras (one of them)")
    rec = target.reconstruction if isinstance(target, RefineResult) else target
    report = (
        _align_distance(rec, distance)
        if distance is not None
        else _align_positions(rec, positions, max_error, seed)
    )
    logger.info(
        "aligned to %s: scale %.6g, rms residual %.4g", report.kind, report.similarity.scale, report.rms
    )
    aligned = apply_similarity(rec, report.similarity)
    if not isinstance(target, RefineResult):
        return aligned, report
    result = dataclasses.replace(
        target,
        reconstruction=aligned,
        report=dataclasses.replace(target.report, alignment=report.to_dict()),
        points=report.similarity.apply(target.points),
        depth_scale=target.depth_scale * report.similarity.scale,
    )
    return result, report
