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

__all__ = ["Tracks", "build_tracks"]

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


def build_tracks(
    points: np.ndarray,
    depth: np.ndarray,
    mask: np.ndarray,
    cam_from_world: np.ndarray,
    K: np.ndarray,
    colors: np.ndarray,
    points_per_frame: int = 2048,
    depth_tolerance: float = 0.03,
    min_length: int = 2,
    seed: int = 0,
) -> Tracks:
    """Build tracks from per-frame point maps and depth maps.

    Args:
        points: (S, H, W, 3) world points of each pixel (depth unprojected with the frame's camera).
        depth: (S, H, W) depth along each camera's optical axis.
        mask: (S, H, W) bool, pixels that may be observations (confident, image content).
        cam_from_world: (S, 3, 4) or (S, 4, 4) extrinsics.
        K: (S, 3, 3) intrinsics at the model resolution.
        colors: (S, H, W, 3) uint8 colours.
        points_per_frame: at most this many pixels per frame start tracks.
        depth_tolerance: relative depth agreement needed for an observation, |z - d| / d.
        min_length: keep tracks with at least this many observations.
        seed: seed of the sub-sampling.

    Returns:
        The tracks (possibly empty).
    """
    n_frames, height, width = depth.shape
    rng = np.random.default_rng(seed)
    used = np.zeros_like(mask)
    xyz_all: list[np.ndarray] = []
    rgb_all: list[np.ndarray] = []
    point_all: list[np.ndarray] = []
    frame_all: list[np.ndarray] = []
    uv_all: list[np.ndarray] = []
    n_points = 0
    for i in range(n_frames):
        v, u = _grid_sample(mask[i] & ~used[i], points_per_frame, rng)
        if len(v) == 0:
            continue
        x_world = points[i, v, u].astype(np.float64)
        n = len(v)
        obs_count = np.ones(n, dtype=np.int64)
        sums = x_world.copy()
        obs: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # frame, query idx, vj, uj
        for j in range(n_frames):
            if j == i:
                continue
            uv, z = project_points(x_world, cam_from_world[j].astype(np.float64), K[j].astype(np.float64))
            with np.errstate(invalid="ignore"):
                uj = np.rint(uv[:, 0])
                vj = np.rint(uv[:, 1])
                ok = (z > 0) & (uj >= 0) & (uj < width) & (vj >= 0) & (vj < height)
            idx = np.nonzero(ok)[0]
            if len(idx) == 0:
                continue
            uj_i, vj_i = uj[idx].astype(np.int64), vj[idx].astype(np.int64)
            d = depth[j, vj_i, uj_i]
            agree = mask[j, vj_i, uj_i] & ~used[j, vj_i, uj_i] & (np.abs(z[idx] - d) < depth_tolerance * d)
            idx, uj_i, vj_i = idx[agree], uj_i[agree], vj_i[agree]
            _, first = np.unique(vj_i * width + uj_i, return_index=True)  # one track per pixel
            idx, uj_i, vj_i = idx[first], uj_i[first], vj_i[first]
            obs.append((j, idx, vj_i, uj_i))
            obs_count[idx] += 1
        keep = obs_count >= min_length
        if not keep.any():
            continue
        new_id = np.full(n, -1, dtype=np.int64)
        new_id[keep] = n_points + np.arange(int(keep.sum()))
        used[i, v[keep], u[keep]] = True
        point_all.append(new_id[keep])
        frame_all.append(np.full(int(keep.sum()), i))
        uv_all.append(np.stack([u[keep], v[keep]], axis=-1).astype(np.float64))
        for j, idx, vj_i, uj_i in obs:
            sel = keep[idx]
            idx, vj_i, uj_i = idx[sel], vj_i[sel], uj_i[sel]
            used[j, vj_i, uj_i] = True
            np.add.at(sums, idx, points[j, vj_i, uj_i].astype(np.float64))
            point_all.append(new_id[idx])
            frame_all.append(np.full(len(idx), j))
            uv_all.append(np.stack([uj_i, vj_i], axis=-1).astype(np.float64))
        xyz_all.append(sums[keep] / obs_count[keep, None])
        rgb_all.append(colors[i, v[keep], u[keep]])
        n_points += int(keep.sum())
    if n_points == 0:
        return Tracks(
            np.zeros((0, 3)),
            np.zeros((0, 3), np.uint8),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, 2)),
        )
    tracks = Tracks(
        xyz=np.concatenate(xyz_all),
        rgb=np.concatenate(rgb_all).astype(np.uint8),
        point=np.concatenate(point_all),
        frame=np.concatenate(frame_all).astype(np.int64),
        uv=np.concatenate(uv_all),
    )
    logger.info(
        "tracks: %d points, %d observations (mean length %.2f)",
        len(tracks),
        len(tracks.point),
        len(tracks.point) / max(len(tracks), 1),
    )
    return tracks
