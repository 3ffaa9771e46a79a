"""A synthetic scene with exact geometry (a back wall and a floor seen by 4 cameras) as a Reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggtkit import Reconstruction
from vggtkit.geometry import extri_intri_to_pose_encoding
from vggtkit.io.images import original_from_model, preprocess_layout

MODEL_HW = (42, 56)
ORIGINAL_WH = (224, 168)  # 4x the model resolution: resized to 56x42 without crop
FOCAL = 50.0


def _rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def synthetic_reconstruction(
    n_frames: int = 4, depth_noise: float = 0.0, seed: int = 0, with_sources: bool = True
) -> Reconstruction:
    """Cameras side by side looking at a wall (z = 3) above a floor (y = 0.8, OpenCV y down).

    Depth is ray-cast exactly (then multiplied by 1 + depth_noise * N(0, 1)); colours are a smooth texture of
    the world position (never black or white); confidence is uniform in [1, 3]. With ``with_sources``, the
    original images (224x168, 4x the model resolution) are held in memory as for a decoded video.
    """
    rng = np.random.default_rng(seed)
    h, w = MODEL_HW
    K = np.array([[FOCAL, 0, w / 2], [0, FOCAL, h / 2], [0, 0, 1.0]])
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    extrinsic, depth, points = [], [], []
    for i in range(n_frames):
        R = _rot_y(-0.06 + 0.04 * i)  # world_from_cam rotation
        C = np.array([0.15 * i - 0.2, 0.03 * i, 0.05 * i])
        rays = rays_cam @ R.T
        t_wall = (3.0 - C[2]) / rays[..., 2]
        with np.errstate(divide="ignore"):
            t_floor = np.where(rays[..., 1] > 1e-9, (0.8 - C[1]) / rays[..., 1], np.inf)
        t = np.minimum(np.where(t_wall > 0, t_wall, np.inf), t_floor)
        t = t * (1.0 + depth_noise * rng.standard_normal(t.shape))
        depth.append(t)
        points.append(C + t[..., None] * rays)
        extrinsic.append(np.hstack([R.T, (-R.T @ C)[:, None]]))
    points_arr = np.stack(points)
    rgb = np.stack(
        [
            0.5
            + 0.35
            * np.sin(9 * points_arr[..., 0] + k)
            * np.cos(7 * points_arr[..., 1] + 4 * points_arr[..., 2])
            for k in range(3)
        ],
        axis=1,
    ).astype(np.float32)
    conf = (1.0 + 2.0 * rng.random((n_frames, h, w))).astype(np.float32)
    extrinsic_arr = np.stack(extrinsic)
    intrinsic = np.tile(K, (n_frames, 1, 1))
    a = original_from_model(*ORIGINAL_WH, preprocess_layout(*ORIGINAL_WH, "crop", w))
    maps = np.tile(a, (n_frames, 1, 1))
    pose_enc = extri_intri_to_pose_encoding(
        torch.from_numpy(extrinsic_arr)[None], torch.from_numpy(intrinsic)[None], (h, w)
    )[0].numpy()
    return Reconstruction(
        pose_enc=pose_enc,
        extrinsic=extrinsic_arr,
        intrinsic=intrinsic,
        depth=np.stack(depth)[..., None].astype(np.float32),
        depth_conf=conf,
        world_points=points_arr.astype(np.float32),
        world_points_conf=conf.copy(),
        world_points_from_depth=points_arr.astype(np.float32),
        images=rgb,
        intrinsic_original=maps @ intrinsic,
        original_from_model=maps,
        original_hw=np.tile(np.array([ORIGINAL_WH[1], ORIGINAL_WH[0]]), (n_frames, 1)),
        names=[f"view_{i}.png" for i in range(n_frames)],
        image_paths=[""] * n_frames,
        source_frames=list(_upsampled(rgb, 4)) if with_sources else None,
    )


def _upsampled(images: np.ndarray, factor: int) -> np.ndarray:
    """(S, 3, H, W) in [0, 1] -> (S, factor H, factor W, 3) uint8 by pixel repetition."""
    rgb = np.clip(np.rint(images.transpose(0, 2, 3, 1) * 255), 0, 255).astype(np.uint8)
    return rgb.repeat(factor, axis=1).repeat(factor, axis=2)


@pytest.fixture
def scene() -> Reconstruction:
    return synthetic_reconstruction()


@pytest.fixture
def noisy_scene() -> Reconstruction:
    return synthetic_reconstruction(depth_noise=0.003)


@pytest.fixture
def make_scene():
    """The factory ``synthetic_reconstruction(n_frames=4, depth_noise=0.0, seed=0, with_sources=True)``."""
    return synthetic_reconstruction
