"""Multi-view tracks from predicted depth: points observed in several frames where the geometry agrees.

For each frame in turn, confident pixels (on a regular grid, at most ``points_per_frame``) are unprojected
with their depth and projected into every other frame. A projection is an observation when it lands on a
confident image pixel of that frame (not padding) and the point's depth there agrees with that frame's depth
map within a relative tolerance. Each pixel joins at most one track. A track's 3-D point is the mean of
its observations' unprojected points, so its reprojection error measures how well the views agree.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from vggtkit.geometry import project_points

__all__ = ["DepthViews", "TrackOptions", "Tracks", "build_tracks"]

logger = logging.getLogger(__name__)


@dataclass
class Tracks:
    """Tracks in model pixels.

    Attributes:
        xyz: (P, 3) float64 world points.
        rgb: (P, 3) uint8 colours (of the pixel that started the track).
        point: (M,) int64 index into ``xyz`` of each observation.
        frame: (M,) int64 frame of each observation.
        uv: (M, 2) float64 model pixel coordinates (x, y) of each observation (pixel centres at integers).
    """

    xyz: np.ndarray
    rgb: np.ndarray
    point: np.ndarray
    frame: np.ndarray
    uv: np.ndarray

    def __len__(self) -> int:
        return len(self.xyz)

    def lengths(self) -> np.ndarray:
        """(P,) number of observations per point."""
        return np.bincount(self.point, minlength=len(self.xyz))


def _grid_sample(mask: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``limit`` (v, u) pixels of ``mask``, spread on a regular grid."""
    count = int(mask.sum())
    if count > limit:
        stride = max(int(math.floor(math.sqrt(count / limit))), 1)
        grid = np.zeros_like(mask)
        grid[stride // 2 :: stride, stride // 2 :: stride] = True
        if (mask & grid).sum() >= limit // 2:
            mask = mask & grid
    v, u = np.nonzero(mask)
    if len(v) > limit:
        keep = np.sort(rng.choice(len(v), size=limit, replace=False))
        v, u = v[keep], u[keep]
    return v, u


@dataclass(frozen=True)
class TrackOptions:
    """How tracks are built.

    Attributes:
        points_per_frame: at most this many pixels per frame start tracks.
        depth_tolerance: relative depth agreement needed for an observation, |z - d| / d.
        min_length: keep tracks with at least this many observations.
        seed: seed of the sub-sampling.
    """

    points_per_frame: int = 2048
    depth_tolerance: float = 0.03
    min_length: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.points_per_frame < 1:
            raise ValueError(f"points_per_frame must be >= 1, got {self.points_per_frame}")
        if not 0 < self.depth_tolerance < 1:
            raise ValueError(f"depth_tolerance must be in (0, 1), got {self.depth_tolerance}")
        if self.min_length < 1:
            raise ValueError(f"min_length must be >= 1, got {self.min_length}")


@dataclass(frozen=True)
class DepthViews:
    """The per-frame maps tracks are built from (S frames at H x W model pixels).

    Attributes:
        points: (S, H, W, 3) world points of each pixel (depth unprojected with the frame's camera).
        depth: (S, H, W) depth along each camera's optical axis.
        mask: (S, H, W) bool, pixels that may be observations (confident, image content).
        cam_from_world: (S, 3, 4) or (S, 4, 4) extrinsics.
        K: (S, 3, 3) intrinsics at the model resolution.
        colors: (S, H, W, 3) uint8 colours.
    """

    points: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    cam_from_world: np.ndarray
    K: np.ndarray
    colors: np.ndarray

    def __post_init__(self) -> None:
        s, h, w = self.depth.shape
        expect = {"points": (s, h, w, 3), "mask": (s, h, w), "K": (s, 3, 3), "colors": (s, h, w, 3)}
        for name, shape in expect.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {getattr(self, name).shape}")
        if self.cam_from_world.shape not in ((s, 3, 4), (s, 4, 4)):
            raise ValueError(f"cam_from_world must have shape ({s}, 3, 4) or ({s}, 4, 4)")


@dataclass(frozen=True)
class _Observations:
    """Where the query points of one frame are seen in another frame ``frame``: ``query`` indexes the
    query points, (``v``, ``u``) the pixels they land on."""

    frame: int
    query: np.ndarray
    v: np.ndarray
    u: np.ndarray

    def subset(self, keep: np.ndarray) -> _Observations:
        """Only the observations whose query point is kept (``keep``: (N,) bool over query points)."""
        sel = keep[self.query]
        return _Observations(self.frame, self.query[sel], self.v[sel], self.u[sel])


def _observe(
    views: DepthViews, j: int, x_world: np.ndarray, used: np.ndarray, tolerance: float
) -> _Observations:
    """The query points (N, 3) that land on a free, allowed pixel of frame ``j`` whose depth agrees with
    theirs; at most one query point per pixel."""
    _, height, width = views.depth.shape
    uv, z = project_points(x_world, views.cam_from_world[j].astype(np.float64), views.K[j].astype(np.float64))
    with np.errstate(invalid="ignore"):
        uj = np.rint(uv[:, 0])
        vj = np.rint(uv[:, 1])
        inside = (z > 0) & (uj >= 0) & (uj < width) & (vj >= 0) & (vj < height)
    idx = np.nonzero(inside)[0]
    uj_i, vj_i = uj[idx].astype(np.int64), vj[idx].astype(np.int64)
    d = views.depth[j, vj_i, uj_i]
    agree = views.mask[j, vj_i, uj_i] & ~used[j, vj_i, uj_i] & (np.abs(z[idx] - d) < tolerance * d)
    idx, uj_i, vj_i = idx[agree], uj_i[agree], vj_i[agree]
    _, first = np.unique(vj_i * width + uj_i, return_index=True)  # one track per pixel
    return _Observations(j, idx[first], vj_i[first], uj_i[first])


class _TrackList:
    """Tracks collected frame by frame; each observation marks its pixel as used."""

    def __init__(self, views: DepthViews) -> None:
        self.views = views
        self.used = np.zeros_like(views.mask)
        self.xyz: list[np.ndarray] = []
        self.rgb: list[np.ndarray] = []
        self.point: list[np.ndarray] = []
        self.frame: list[np.ndarray] = []
        self.uv: list[np.ndarray] = []
        self.count = 0

    def _observed(self, ids: np.ndarray, frame: int, v: np.ndarray, u: np.ndarray) -> None:
        self.used[frame, v, u] = True
        self.point.append(ids)
        self.frame.append(np.full(len(ids), frame))
        self.uv.append(np.stack([u, v], axis=-1).astype(np.float64))

    def add(self, i: int, v: np.ndarray, u: np.ndarray, seen: list[_Observations], keep: np.ndarray) -> None:
        """New tracks started at pixels (``v``, ``u``) of frame ``i`` where ``keep``, seen as in ``seen``;
        each 3-D point is the mean of its observations' points."""
        n_new = int(keep.sum())
        ids = np.full(len(v), -1, dtype=np.int64)
        ids[keep] = self.count + np.arange(n_new)
        sums = self.views.points[i, v, u].astype(np.float64)
        counts = np.ones(len(v), dtype=np.int64)
        self._observed(ids[keep], i, v[keep], u[keep])
        for obs in (o.subset(keep) for o in seen):
            self._observed(ids[obs.query], obs.frame, obs.v, obs.u)
            np.add.at(sums, obs.query, self.views.points[obs.frame, obs.v, obs.u].astype(np.float64))
            np.add.at(counts, obs.query, 1)
        self.xyz.append(sums[keep] / counts[keep, None])
        self.rgb.append(self.views.colors[i, v[keep], u[keep]])
        self.count += n_new

    def tracks(self) -> Tracks:
        if self.count == 0:
            return Tracks(
                np.zeros((0, 3)),
                np.zeros((0, 3), np.uint8),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros((0, 2)),
            )
        return Tracks(
            xyz=np.concatenate(self.xyz),
            rgb=np.concatenate(self.rgb).astype(np.uint8),
            point=np.concatenate(self.point),
            frame=np.concatenate(self.frame).astype(np.int64),
            uv=np.concatenate(self.uv),
        )


def build_tracks(views: DepthViews, options: TrackOptions | None = None) -> Tracks:
    """Build tracks from per-frame point maps and depth maps (see the module docstring).

    Args:
        views: the frames' points, depth, allowed pixels, cameras and colours.
        options: track density, depth tolerance, minimum length and sampling seed.

    Returns:
        The tracks (possibly empty).
    """
    options = options or TrackOptions()
    rng = np.random.default_rng(options.seed)
    found = _TrackList(views)
    n_frames = views.depth.shape[0]
    for i in range(n_frames):
        v, u = _grid_sample(views.mask[i] & ~found.used[i], options.points_per_frame, rng)
        if len(v) == 0:
            continue
        x_world = views.points[i, v, u].astype(np.float64)
        seen = [
            _observe(views, j, x_world, found.used, options.depth_tolerance)
            for j in range(n_frames)
            if j != i
        ]
        lengths = sum((np.bincount(o.query, minlength=len(v)) for o in seen), np.ones(len(v), np.int64))
        keep = lengths >= options.min_length
        if keep.any():
            found.add(i, v, u, seen, keep)
    tracks = found.tracks()
    logger.info(
        "tracks: %d points, %d observations (mean length %.2f)",
        len(tracks),
        len(tracks.point),
        len(tracks.point) / max(len(tracks), 1),
    )
    return tracks
