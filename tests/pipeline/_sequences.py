"""Synthetic camera trajectories with exact ground truth, and model outputs derived from it.

:class:`Oracle` stands in for the model call (``vggtkit.pipeline.run._run_model``): for the frames it is given it
returns what a perfect VGGT-like model would, in the frame of the first of them and at a scale of its own, plus
controlled errors: camera noise, depth noise, confident outlier pixels, and a drift that grows along each run.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.geometry import extri_intri_to_pose_encoding
from vggtkit.metrics import umeyama


@functools.cache
def trajectory(
    num_frames: int = 48, arc_deg: float = 150.0, seed: int = 3, hw: tuple[int, int] = (42, 56)
) -> dict:
    """A rendered sequence: cameras on an arc of ``arc_deg`` degrees around a room's objects."""
    config = SyntheticSceneConfig(
        num_frames=num_frames,
        image_size=hw,
        supersample=1,
        arc_deg=(arc_deg, arc_deg),
        distance=(3.0, 3.0),
        fov_deg=(60.0, 60.0),
        num_tracks=0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the ray caster's small tensors run far faster on one thread of a busy machine
    try:
        return render_scene(config, seed=seed)
    finally:
        torch.set_num_threads(threads)


def camera_centres(cam_from_world: np.ndarray) -> np.ndarray:
    """(S, 3) camera centres ``-R^T t`` of (S, 3, 4) extrinsics."""
    cam_from_world = np.asarray(cam_from_world, dtype=np.float64)
    return -np.einsum("nji,nj->ni", cam_from_world[:, :3, :3], cam_from_world[:, :3, 3])


def centre_error(cam_from_world: np.ndarray, truth: np.ndarray) -> float:
    """RMS camera-centre error after one global Sim(3) alignment to the truth, relative to the trajectory's
    mean distance from its centroid."""
    pred, gt = camera_centres(cam_from_world), camera_centres(truth)
    scale, rotation, translation = umeyama(pred, gt)
    aligned = scale * pred @ rotation.T + translation
    spread = np.linalg.norm(gt - gt.mean(0), axis=1).mean()
    return float(np.sqrt(((aligned - gt) ** 2).sum(-1).mean()) / spread)


def _key(image: torch.Tensor) -> str:
    return hashlib.sha1(image.float().contiguous().numpy().tobytes()).hexdigest()


class Oracle:
    """Model outputs from ground truth for whichever frames of ``sample`` a call is given.

    Args:
        sample: a rendered sequence (:func:`trajectory`).
        rotation_noise_deg: per-frame camera rotation noise.
        translation_noise: per-frame camera position noise, relative to the scene depth.
        depth_noise: per-pixel relative depth noise.
        outliers: share of pixels given a wrong depth, as confident as the others.
        drift_deg: a bend that grows along each run: frame k of a call sees the world turned by ``k * drift_deg``
            about the first camera's vertical axis, as a model's errors grow through a long sequence.
        seed: noise seed (each call draws its own noise).
    """

    def __init__(
        self,
        sample: dict,
        rotation_noise_deg: float = 0.0,
        translation_noise: float = 0.0,
        depth_noise: float = 0.0,
        outliers: float = 0.0,
        drift_deg: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.sample = sample
        self.index = {_key(image): i for i, image in enumerate(sample["images"])}
        self.noise = (rotation_noise_deg, translation_noise, depth_noise, outliers, drift_deg)
        self.rng = np.random.default_rng(seed)
        self.calls: list[list[int]] = []

    def frames_of(self, images: torch.Tensor) -> list[int]:
        return [self.index[_key(image)] for image in images]

    def _cameras(self, frames: list[int], scale: float) -> np.ndarray:
        """cam_from_first (n, 3, 4) at ``scale``, with rotation noise, translation noise and drift."""
        rotation_deg, translation, _, _, drift_deg = self.noise
        ext = self.sample["extrinsics"][frames].double().numpy()
        rot0, t0 = ext[0, :3, :3], ext[0, :3, 3]
        rot = ext[:, :3, :3] @ rot0.T
        trans = scale * (ext[:, :3, 3] - rot @ t0)
        depth = float(self.sample["depths"][frames[0]].median()) * scale
        for k in range(1, len(frames)):  # the first camera is the run's world frame
            noise = Rotation.from_rotvec(np.radians(rotation_deg) * self.rng.normal(size=3)).as_matrix()
            # Drift: frame k sees the world turned by k * drift_deg about the first camera's vertical axis, so
            # its camera centre moves on an arc (its depth is unchanged).
            drift = Rotation.from_rotvec([0.0, np.radians(drift_deg) * k, 0.0]).as_matrix()
            rot[k] = noise @ rot[k] @ drift.T
            trans[k] = noise @ trans[k] + translation * depth * self.rng.normal(size=3)
        return np.concatenate([rot, trans[..., None]], axis=-1)

    def _depth(self, frames: list[int], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, depth_noise, outliers, _ = self.noise
        depth = self.sample["depths"][frames].double().numpy() * scale
        depth *= 1.0 + depth_noise * self.rng.normal(size=depth.shape)
        wrong = self.rng.random(depth.shape) < outliers
        depth[wrong] *= self.rng.uniform(0.3, 3.0, size=int(wrong.sum()))
        conf = 2.0 + self.rng.random(depth.shape)
        return torch.from_numpy(depth).float()[..., None], torch.from_numpy(conf).float()

    def __call__(self, model, images: torch.Tensor, device, inference) -> dict:
        """The signature of ``vggtkit.pipeline.run._run_model``."""
        frames = self.frames_of(images)
        self.calls.append(frames)
        scale = float(self.rng.uniform(0.5, 2.0)) / float(self.sample["depths"][frames[0]].median())
        h, w = images.shape[-2:]
        extrinsic = torch.from_numpy(self._cameras(frames, scale))
        intrinsic = self.sample["intrinsics"][frames].double()
        depth, conf = self._depth(frames, scale)
        return {
            "pose_enc": extri_intri_to_pose_encoding(extrinsic, intrinsic, (h, w))[None],
            "depth": depth[None],
            "depth_conf": conf[None],
        }
