"""Small reconstructions whose filter results are known exactly.

Cameras stand side by side looking at a wall (z = 3) above a floor (y = 0.8, OpenCV y down). Confidence is the
pixel's rank (1, 2, ... in frame, row, column order), so every percentile keeps a known count. Frame 0's top row
is black and the last frame's bottom row white; the point map is the depth branch moved 0.5 along z, so the two
branches can be told apart.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from vggtkit.geometry import extri_intri_to_pose_encoding, unproject_depth_map_to_point_map
from vggtkit.pipeline import Reconstruction

POINTMAP_SHIFT = np.array([0.0, 0.0, 0.5], dtype=np.float32)


def _cameras(n_frames: int, h: int, w: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """cam_from_world (S, 3, 4) of cameras at x = 0.15 i + shift, turned a little about y; K (S, 3, 3)."""
    extrinsic = []
    for i in range(n_frames):
        a = -0.05 + 0.04 * i
        R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])  # world_from_cam
        C = np.array([0.15 * i + shift, 0.02 * i, 0.0])
        extrinsic.append(np.hstack([R.T, (-R.T @ C)[:, None]]))
    K = np.array([[0.9 * w, 0, w / 2], [0, 0.9 * w, h / 2], [0, 0, 1.0]])
    return np.stack(extrinsic), np.tile(K, (n_frames, 1, 1))


def _depth(extrinsic: np.ndarray, K: np.ndarray, h: int, w: int) -> np.ndarray:
    """(S, H, W) ray-cast depth of the wall z = 3 and the floor y = 0.8."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays_cam = np.stack([(u - K[0, 0, 2]) / K[0, 0, 0], (v - K[0, 1, 2]) / K[0, 1, 1], np.ones_like(u)], -1)
    out = []
    for e in extrinsic:
        R, C = e[:, :3].T, -e[:, :3].T @ e[:, 3]
        rays = rays_cam @ R.T
        t_wall = (3.0 - C[2]) / rays[..., 2]
        with np.errstate(divide="ignore"):
            t_floor = np.where(rays[..., 1] > 1e-9, (0.8 - C[1]) / rays[..., 1], np.inf)
        out.append(np.minimum(t_wall, t_floor))  # depth along z equals t: rays have z = 1 in the camera
    return np.stack(out)


def make_reconstruction(n_frames: int = 3, h: int = 6, w: int = 8, shift: float = 0.0) -> Reconstruction:
    """The scene described in the module docstring; ``shift`` moves every camera along x (same images)."""
    extrinsic, K = _cameras(n_frames, h, w, shift)
    depth = _depth(_cameras(n_frames, h, w, 0.0)[0], K, h, w).astype(np.float32)
    points = unproject_depth_map_to_point_map(depth, extrinsic, K).astype(np.float32)
    v, u = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = np.stack(
        [
            np.stack([0.3 + 0.4 * (0.5 + 0.5 * np.sin(5 * u + 3 * v + c + i)) for c in range(3)])
            for i in range(n_frames)
        ]
    ).astype(np.float32)
    rgb[0, :, 0, :] = 0.0  # black top row in frame 0
    rgb[-1, :, -1, :] = 1.0  # white bottom row in the last frame
    conf = np.arange(1, n_frames * h * w + 1, dtype=np.float32).reshape(n_frames, h, w)
    pose_enc = extri_intri_to_pose_encoding(
        torch.from_numpy(extrinsic)[None], torch.from_numpy(K)[None], (h, w)
    )
    return Reconstruction(
        pose_enc=pose_enc[0].numpy(),
        extrinsic=extrinsic,
        intrinsic=K,
        depth=depth[..., None],
        depth_conf=conf,
        world_points=points + POINTMAP_SHIFT,
        world_points_conf=conf.copy(),
        world_points_from_depth=points,
        images=rgb,
        intrinsic_original=K.copy(),
        original_from_model=np.tile(np.eye(3), (n_frames, 1, 1)),
        original_hw=np.tile(np.array([h, w]), (n_frames, 1)),
        names=[f"view_{i}.png" for i in range(n_frames)],
        image_paths=[""] * n_frames,
    )


def without_pointmap(rec: Reconstruction) -> Reconstruction:
    return dataclasses.replace(rec, world_points=None, world_points_conf=None)
