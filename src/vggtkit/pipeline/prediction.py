"""A model's outputs for a run of frames as numpy arrays, cameras decoded: what one pass (or one chunk) predicts.

Works with any model family through the model-agnostic output dict: ``pose_enc``, ``depth``, ``depth_conf`` and,
when the model has a point head, ``world_points`` and ``world_points_conf`` (each with a leading batch of 1).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vggtkit.geometry import pose_encoding_to_extri_intri

__all__ = ["ChunkPrediction", "prediction_from_output", "repair_focals"]

logger = logging.getLogger(__name__)


@dataclass
class ChunkPrediction:
    """Predictions for a run of frames in that run's own world frame (its first camera, its own scale).

    Attributes:
        frames: (n,) indices of the frames in the whole sequence.
        pose_enc: (n, 9) camera encodings ``[t, quat_xyzw, fov_h, fov_w]``.
        extrinsic: (n, 3, 4) float64 ``cam_from_world`` (OpenCV axes) in the run's frame.
        intrinsic: (n, 3, 3) float64 intrinsics in model pixels.
        depth: (n, H, W, 1) float32 depth along the optical axis; depth_conf: (n, H, W) its confidence.
        world_points: (n, H, W, 3) float32 point-head map in the run's frame, or None (no point head);
            world_points_conf: (n, H, W) or None.
    """

    frames: np.ndarray
    pose_enc: np.ndarray
    extrinsic: np.ndarray
    intrinsic: np.ndarray
    depth: np.ndarray
    depth_conf: np.ndarray
    world_points: np.ndarray | None = None
    world_points_conf: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, dtype=np.int64)
        n = len(self.frames)
        for name in ("pose_enc", "extrinsic", "intrinsic", "depth", "depth_conf"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"ChunkPrediction.{name} must have {n} frames, got {len(getattr(self, name))}"
                )

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def subset(self, frames: Sequence[int] | np.ndarray) -> ChunkPrediction:
        """The predictions of some of these frames (given by their sequence indices), in that order.

        Raises:
            ValueError: a frame that this prediction does not hold.
        """
        position = {int(f): i for i, f in enumerate(self.frames)}
        missing = [int(f) for f in frames if int(f) not in position]
        if missing:
            raise ValueError(f"frames {missing[:5]} are not in this prediction")
        rows = np.array([position[int(f)] for f in frames], dtype=np.int64)
        arrays = {
            f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[rows])
            for f in dataclasses.fields(self)
        }
        return ChunkPrediction(**arrays)


def _numpy(value: torch.Tensor) -> np.ndarray:
    """(1, n, ...) tensor -> (n, ...) float32 numpy array."""
    return value[0].detach().float().cpu().numpy()


def repair_focals(intrinsic: np.ndarray, names: Sequence[str], hw: tuple[int, int]) -> None:
    """Replace non-finite or non-positive focal lengths in place (a camera head predicting a field of view of
    0, as untrained weights do): use the other axis' focal (square pixels), else a 60 degree field of view."""
    for i, K in enumerate(intrinsic):
        fx, fy = K[0, 0], K[1, 1]
        ok_x, ok_y = bool(np.isfinite(fx) and fx > 0), bool(np.isfinite(fy) and fy > 0)
        if ok_x and ok_y:
            continue
        if ok_x or ok_y:
            K[0, 0] = K[1, 1] = fx if ok_x else fy
        else:
            K[0, 0] = K[1, 1] = (max(hw) / 2) / np.tan(np.radians(30.0))
        logger.warning(
            "frame %s: the camera head predicted a degenerate field of view (fx=%.4g, fy=%.4g); using f=%.4g "
            "(untrained weights?)",
            names[i],
            fx,
            fy,
            K[0, 0],
        )


def prediction_from_output(
    out: dict, frames: Sequence[int] | np.ndarray, names: Sequence[str], hw: tuple[int, int]
) -> ChunkPrediction:
    """Decode a model's output dict (batch of 1) into a :class:`ChunkPrediction`.

    Args:
        out: the model's outputs for n frames (``pose_enc`` (1, n, 9), ``depth`` (1, n, H, W, 1), ...).
        frames: the n frames' indices in the sequence.
        names: the n frames' names (for warnings about degenerate cameras).
        hw: (H, W) of the model's input.
    """
    pose_enc = _numpy(out["pose_enc"])
    extrinsic, intrinsic = pose_encoding_to_extri_intri(torch.from_numpy(pose_enc).double(), hw)
    intrinsic_np = intrinsic.numpy()
    repair_focals(intrinsic_np, names, hw)
    has_points = "world_points" in out
    return ChunkPrediction(
        frames=np.asarray(frames),
        pose_enc=pose_enc,
        extrinsic=extrinsic.numpy(),
        intrinsic=intrinsic_np,
        depth=_numpy(out["depth"]),
        depth_conf=_numpy(out["depth_conf"]),
        world_points=_numpy(out["world_points"]) if has_points else None,
        world_points_conf=_numpy(out["world_points_conf"]) if has_points else None,
    )
