"""Synthetic scenes with exact ground truth turned into reconstructions for the refinement tests (helpers; the
fixtures are in conftest.py)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from vggtkit.reconstruction import Reconstruction

SIZE = 224
FRAMES = 5
SEED = 101  # a scene outside the held-out set (seeds 0-23) whose views overlap well at 224 px


def ground_truth(sample: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cameras with frame 0 as the world (the reconstruction's convention) and the depth: (S, 3, 4) poses,
    (S, 3, 3) intrinsics, (S, H, W) depth."""
    extrinsics = sample["extrinsics"].double().numpy()
    world_from_first = np.linalg.inv(np.vstack((extrinsics[0], [0, 0, 0, 1])))
    poses = np.stack([e @ world_from_first for e in extrinsics])
    return poses, sample["intrinsics"].double().numpy(), sample["depths"].numpy()


def make_reconstruction(
    sample: dict,
    poses: np.ndarray,
    K: np.ndarray,
    depth: np.ndarray,
    names: list[str] | None = None,
) -> Reconstruction:
    """A reconstruction at the sample's resolution (original = model resolution) with the given cameras and
    depth; the original pixels are the rendered images."""
    images = sample["images"].numpy()
    return Reconstruction.from_cameras(
        images, poses, K, depth, names or [f"view_{i}.png" for i in range(len(images))]
    )


def perturb(poses: np.ndarray, degrees: float, share: float, seed: int) -> np.ndarray:
    """Rotate every camera but the first by ``degrees`` about a random axis and move its centre by ``share``
    of its distance to the first camera, in a random direction."""
    rng = np.random.default_rng(seed)
    out = poses.copy()
    for i in range(1, len(poses)):
        axis = rng.normal(size=3)
        delta = Rotation.from_rotvec(np.radians(degrees) * axis / np.linalg.norm(axis)).as_matrix()
        rot = delta @ poses[i, :, :3]
        centre = -poses[i, :, :3].T @ poses[i, :, 3]
        direction = rng.normal(size=3)
        centre = centre + share * np.linalg.norm(centre) * direction / np.linalg.norm(direction)
        out[i] = np.concatenate((rot, (-rot @ centre)[:, None]), axis=1)
    return out


def noisy_depth(
    depth: np.ndarray, seed: int, pixel_noise: float = 0.02, frame_scale: float = 0.05
) -> np.ndarray:
    """Depth with per-pixel multiplicative noise and a per-frame scale error."""
    rng = np.random.default_rng(seed)
    scale = 1 + rng.uniform(-frame_scale, frame_scale, size=(len(depth), 1, 1))
    return depth * scale * (1 + pixel_noise * rng.standard_normal(depth.shape))


def rotation_errors(poses: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(S - 1,) angle in degrees between each camera's rotation relative to the first and the truth's."""
    out = []
    for i in range(1, len(poses)):
        rel = poses[i, :, :3] @ poses[0, :, :3].T
        rel_truth = truth[i, :, :3] @ truth[0, :, :3].T
        out.append(np.degrees(Rotation.from_matrix(rel @ rel_truth.T).magnitude()))
    return np.array(out)
