"""Options of the refinement: matching, initialisation, bundle adjustment. Frozen dataclasses that check
themselves (a ``ValueError`` names the field)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from vggtkit.refine.intrinsics import KnownIntrinsics

__all__ = [
    "CAMERA_MODELS",
    "AlignOptions",
    "BundleOptions",
    "CameraModel",
    "InitOptions",
    "MatchOptions",
    "RefineOptions",
]

CameraModel = Literal["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL"]
CAMERA_MODELS: tuple[str, ...] = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL")
LOSSES: tuple[str, ...] = ("cauchy", "huber", "soft_l1", "trivial")


def _check_positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def _check_int_at_least(obj: object, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class MatchOptions:
    """How correspondences are found (classical matcher: SIFT, mutual nearest neighbours, ratio test, RANSAC).

    Attributes:
        query_frames: frames whose keypoints start tracks (each is matched against every other frame); chosen
            evenly over the sequence, always including the reference frame. None: every frame (exhaustive
            pairs) up to 12 frames, else 12 query frames.
        max_keypoints: SIFT keypoints per image at most (strongest first).
        contrast_threshold: SIFT detection threshold (OpenCV's default is 0.04; the synthetic scenes' smooth,
            tiled textures give 2-3 times more correct matches at 0.01).
        ratio: Lowe's ratio test on the two nearest descriptors.
        ransac_threshold: epipolar (Sampson) distance in pixels for the fundamental-matrix RANSAC.
        min_pair_matches: verified matches a frame pair needs to be used.
        guided: after a first refinement, match again along the refined epipolar lines, within the depth range
            the refined depth allows, which resolves repeated texture.
        guided_epipolar_px: distance to the epipolar line (pixels) of a guided match.
        guided_depth_range: a guided match's depth lies within this factor of the (rescaled) predicted depth.
        guided_ratio: ratio test among the candidates the geometry allows.
    """

    query_frames: int | None = None
    max_keypoints: int = 8192
    contrast_threshold: float = 0.01
    ratio: float = 0.8
    ransac_threshold: float = 1.5
    min_pair_matches: int = 15
    guided: bool = True
    guided_epipolar_px: float = 2.0
    guided_depth_range: float = 1.6
    guided_ratio: float = 0.9

    def __post_init__(self) -> None:
        if self.query_frames is not None:
            _check_int_at_least(self, 1, "query_frames")
        _check_int_at_least(self, 8, "max_keypoints", "min_pair_matches")
        _check_positive(self, "contrast_threshold", "ransac_threshold", "guided_epipolar_px")
        for name in ("ratio", "guided_ratio"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1], got {getattr(self, name)!r}")
        if not self.guided_depth_range > 1:
            raise ValueError(f"guided_depth_range must be > 1, got {self.guided_depth_range!r}")


@dataclass(frozen=True)
class InitOptions:
    """Initial cameras: the feed-forward pose where the correspondences agree with it, PnP otherwise.

    Attributes:
        pnp_threshold: RANSAC reprojection threshold of PnP against points from the predicted depth, as a
            fraction of the image's larger side (predicted depth is too coarse for pixel thresholds).
        min_inliers: a frame with fewer PnP inliers keeps its feed-forward pose and is not refined.
        feed_forward_tolerance: refinement first adjusts every frame from its feed-forward camera at once;
            that start is kept when at least half the frames end trusted and none of them turned by more
            than this many degrees (relative to the anchor) on the way. Otherwise the feed-forward cameras
            are taken to be too far off, and frames are registered one by one (PnP).
        agreement: when registering one by one, the feed-forward pose is kept as the starting point when it explains at least this fraction
            of the correspondences the PnP pose explains (both counted within three times the PnP
            threshold, so that a pose a few degrees off still agrees); otherwise the frame is re-initialised
            by PnP.
    """

    pnp_threshold: float = 0.03
    min_inliers: int = 20
    feed_forward_tolerance: float = 10.0
    agreement: float = 0.8

    def __post_init__(self) -> None:
        _check_positive(self, "pnp_threshold", "feed_forward_tolerance")
        _check_int_at_least(self, 4, "min_inliers")
        if not 0 < self.agreement <= 1:
            raise ValueError(f"agreement must lie in (0, 1], got {self.agreement!r}")


@dataclass(frozen=True)
class BundleOptions:
    """Bundle adjustment (pycolmap, Ceres), at each image's original resolution.

    Attributes:
        camera_model: SIMPLE_PINHOLE (one focal length), PINHOLE (fx, fy) or SIMPLE_RADIAL (one focal length
            and one radial distortion coefficient).
        shared_camera: one camera for all images (they must have one size) instead of one per image.
        refine_focal_length, refine_principal_point: let the adjustment change them (known intrinsics are
            always held fixed).
        refine_distortion: refine SIMPLE_RADIAL's coefficient.
        loss: robust loss of the reprojection residuals; loss_scale its scale in pixels.
        max_reproj_error: observations with a larger reprojection error (pixels) are dropped after each round
            and taken back when a later round fits them again.
        min_tri_angle: points seen under a smaller triangulation angle (degrees) are dropped.
        iterations: rounds of adjustment, filtering and re-triangulation after the initial registration.
        filter_schedule: while frames are registered (points from the predicted depth), each adjustment runs
            one pass per entry, dropping observations above that multiple of ``max_reproj_error`` after it:
            dropping at the final threshold at once loses correct observations and biases focal lengths.
        max_focal_change: a camera whose refined focal length leaves [f / x, f x] of its starting value is
            considered diverged: its focal length is reset and held fixed.
    """

    camera_model: CameraModel = "SIMPLE_PINHOLE"
    shared_camera: bool = False
    refine_focal_length: bool = True
    refine_principal_point: bool = False
    refine_distortion: bool = True
    loss: Literal["cauchy", "huber", "soft_l1", "trivial"] = "cauchy"
    loss_scale: float = 1.0
    max_reproj_error: float = 4.0
    min_tri_angle: float = 1.0
    iterations: int = 3
    filter_schedule: tuple[float, ...] = (3.0, 2.0, 1.0)
    max_focal_change: float = 2.5

    def __post_init__(self) -> None:
        if self.camera_model not in CAMERA_MODELS:
            raise ValueError(
                f"camera_model must be one of {', '.join(CAMERA_MODELS)}, got {self.camera_model!r}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        _check_positive(self, "loss_scale", "max_reproj_error")
        if not self.min_tri_angle >= 0:
            raise ValueError(f"min_tri_angle must be >= 0, got {self.min_tri_angle!r}")
        _check_int_at_least(self, 1, "iterations")
        object.__setattr__(self, "filter_schedule", tuple(float(x) for x in self.filter_schedule))
        if not self.filter_schedule or not all(x >= 1 for x in self.filter_schedule):
            raise ValueError(
                f"filter_schedule must be a non-empty list of factors >= 1, got {self.filter_schedule}"
            )
        if not self.max_focal_change > 1:
            raise ValueError(f"max_focal_change must be > 1, got {self.max_focal_change!r}")


@dataclass(frozen=True)
class AlignOptions:
    """A known frame for the result: camera positions or the distance between two cameras (one of them).

    Attributes:
        positions: image name -> (x, y, z) of its camera centre (e.g. GPS, another reconstruction); at least
            three cameras. A robust similarity (Umeyama) maps the camera centres onto them.
        distance: ``(name_a, name_b, length)``: the distance between two cameras, which sets the scale alone.
        max_error: inlier distance of the positions, in their units (None: 5 % of their spread).
    """

    positions: Mapping[str, Sequence[float]] | None = None
    distance: tuple[str, str, float] | None = None
    max_error: float | None = None

    def __post_init__(self) -> None:
        if (self.positions is None) == (self.distance is None):
            raise ValueError(
                "alignment needs camera positions or a distance between two cameras (one of them)"
            )
        if self.distance is not None:
            if len(self.distance) != 3:
                raise ValueError("distance must be (name_a, name_b, length)")
            length = self.distance[2]
            if isinstance(length, bool) or not isinstance(length, (int, float)) or not length > 0:
                raise ValueError(
                    f"the distance between two cameras must be a positive number, got {length!r}"
                )
        if self.max_error is not None:
            if self.positions is None:
                raise ValueError("max_error applies to positions only")
            if not (math.isfinite(self.max_error) and self.max_error > 0):
                raise ValueError(f"max_error must be > 0, got {self.max_error!r}")

    @property
    def kind(self) -> str:
        return "positions" if self.positions is not None else "distance"


@dataclass(frozen=True)
class RefineOptions:
    """Everything :func:`vggtkit.refine.refine` can be told.

    Attributes:
        matching: correspondence options.
        init: initial cameras.
        bundle: bundle adjustment.
        intrinsics: known intrinsics, used as given and held fixed (None: estimated).
        alignment: put the result in a known frame (None: the reference camera's frame, the predicted
            depth's scale).
        seed: seeds every random choice (RANSAC), so a run is repeatable.
    """

    matching: MatchOptions = field(default_factory=MatchOptions)
    init: InitOptions = field(default_factory=InitOptions)
    bundle: BundleOptions = field(default_factory=BundleOptions)
    intrinsics: KnownIntrinsics | None = None
    alignment: AlignOptions | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name, kind in (("matching", MatchOptions), ("init", InitOptions), ("bundle", BundleOptions)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"{name} must be a {kind.__name__}")
        for name, kind in (("intrinsics", KnownIntrinsics), ("alignment", AlignOptions)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"{name} must be a {kind.__name__} or None, got {type(value).__name__}")
        _check_int_at_least(self, 0, "seed")

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (known intrinsics by their source, alignment by its kind)."""
        out = {name: asdict(getattr(self, name)) for name in ("matching", "init", "bundle")}
        out["intrinsics"] = None if self.intrinsics is None else self.intrinsics.source
        out["alignment"] = None if self.alignment is None else self.alignment.kind
        out["seed"] = self.seed
        return out
