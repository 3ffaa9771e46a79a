"""Similarity transforms (Sim(3)): scale, rotation and translation between the frames of two chunks.

A :class:`Sim3` named ``a_from_b`` maps points of frame b to frame a: ``x_a = scale * rotation @ x_b +
translation``. Chunks of a long sequence are each reconstructed in their own frame (their first camera, their own
scale); these transforms chain them into one world frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Sim3"]


@dataclass(frozen=True, eq=False)
class Sim3:
    """A similarity transform ``x_a = scale * rotation @ x_b + translation`` (float64).

    Attributes:
        scale: positive scale factor.
        rotation: (3, 3) rotation matrix.
        translation: (3,) translation.
    """

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "rotation", np.asarray(self.rotation, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "translation", np.asarray(self.translation, dtype=np.float64).reshape(3))
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"a similarity transform needs a positive finite scale, got {self.scale}")

    def __matmul__(self, other: Sim3) -> Sim3:
        """Composition: ``(a_from_b @ b_from_c)(x) = a_from_b(b_from_c(x))``."""
        return Sim3(
            self.scale * other.scale,
            self.rotation @ other.rotation,
            self.scale * self.rotation @ other.translation + self.translation,
        )

    def inverse(self) -> Sim3:
        """``b_from_a`` of ``a_from_b``."""
        rot_t = self.rotation.T
        return Sim3(1.0 / self.scale, rot_t, -(rot_t @ self.translation) / self.scale)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map points (..., 3) of frame b to frame a (float64)."""
        return self.scale * np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation

    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous matrix ``[[s R, t], [0, 1]]``."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out

    def transform_cameras(self, cam_from_b: np.ndarray) -> np.ndarray:
        """Express cameras of frame b in frame a, their depths scaled by ``scale``.

        A camera ``[R_c | t_c]`` (``cam_from_b``) becomes ``[R_c R^T | s t_c - R_c R^T t]``: a point's camera
        coordinates are multiplied by ``s``, as depth maps of frame b are when rescaled to frame a.

        Args:
            cam_from_b: (..., 3, 4) OpenCV ``cam_from_world`` matrices in frame b.

        Returns:
            (..., 3, 4) float64 ``cam_from_world`` matrices in frame a.
        """
        cam_from_b = np.asarray(cam_from_b, dtype=np.float64)
        rot = cam_from_b[..., :3, :3] @ self.rotation.T
        trans = self.scale * cam_from_b[..., :3, 3] - rot @ self.translation
        return np.concatenate([rot, trans[..., None]], axis=-1)

    def log(self) -> np.ndarray:
        """(7,) coordinates ``[rotation vector, translation, log scale]`` (the pose graph's parameters)."""
        from scipy.spatial.transform import Rotation

        rotvec = Rotation.from_matrix(self.rotation).as_rotvec()
        return np.concatenate([rotvec, self.translation, [np.log(self.scale)]])

    @classmethod
    def exp(cls, vector: np.ndarray) -> Sim3:
        """The transform with coordinates ``[rotation vector (3), translation (3), log scale]``."""
        from scipy.spatial.transform import Rotation

        vector = np.asarray(vector, dtype=np.float64)
        return cls(np.exp(vector[6]), Rotation.from_rotvec(vector[:3]).as_matrix(), vector[3:6])

    def rotation_angle(self) -> float:
        """Angle of the rotation in radians."""
        cos = (np.trace(self.rotation) - 1.0) / 2.0
        return float(np.arccos(np.clip(cos, -1.0, 1.0)))
