"""Cameras at original resolution (COLMAP models) and the projections the refinement needs.

Conventions: ``Camera.params`` follow COLMAP (the centre of the top-left pixel at (0.5, 0.5)); ``K`` matrices
and pixel positions elsewhere in :mod:`vggtkit.refine` follow OpenCV (that centre at (0, 0)), as
:class:`vggtkit.pipeline.Reconstruction` does. Poses are ``cam_from_world`` (3, 4), OpenCV axes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["Camera", "fundamental_from_poses", "project", "relative_pose", "unproject"]

# Parameter layout per model: where the focal lengths and the principal point sit.
_LAYOUT = {
    "SIMPLE_PINHOLE": ("f", "cx", "cy"),
    "PINHOLE": ("fx", "fy", "cx", "cy"),
    "SIMPLE_RADIAL": ("f", "cx", "cy", "k"),
}


@dataclass(frozen=True)
class Camera:
    """A camera model with its parameters at an image size (COLMAP's convention and parameter order).

    Attributes:
        model: a COLMAP camera model name (SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, or any other COLMAP model
            for known intrinsics, which are never changed).
        width, height: image size in pixels.
        params: the model's parameters, e.g. (f, cx, cy) for SIMPLE_PINHOLE.
    """

    model: str
    width: int
    height: int
    params: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(float(p) for p in self.params))
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if not np.isfinite(self.params).all():
            raise ValueError(f"camera parameters must be finite, got {self.params}")
        self.to_pycolmap()  # checks the model name and the parameter count

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int, model: str = "PINHOLE") -> Camera:
        """A camera of an OpenCV-convention pinhole matrix ``K`` (3, 3); SIMPLE_* models average fx and fy,
        SIMPLE_RADIAL starts without distortion."""
        fx, fy = float(K[0, 0]), float(K[1, 1])
        cx, cy = float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5
        if model == "PINHOLE":
            params: tuple[float, ...] = (fx, fy, cx, cy)
        elif model == "SIMPLE_PINHOLE":
            params = ((fx + fy) / 2, cx, cy)
        elif model == "SIMPLE_RADIAL":
            params = ((fx + fy) / 2, cx, cy, 0.0)
        else:
            raise ValueError(f"cannot build a {model} camera from a pinhole matrix")
        return cls(model, int(width), int(height), params)

    @classmethod
    def from_pycolmap(cls, camera: Any) -> Camera:
        return cls(camera.model.name, int(camera.width), int(camera.height), tuple(camera.params))

    def to_pycolmap(self, camera_id: int = 1) -> Any:
        import pycolmap

        try:
            camera = pycolmap.Camera(
                model=self.model,
                width=self.width,
                height=self.height,
                params=list(self.params),
                camera_id=camera_id,
            )
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"invalid camera {self.model} with parameters {self.params}: {exc}") from exc
        if not camera.verify_params():
            raise ValueError(
                f"camera model {self.model} takes {camera.params_info}, got {len(self.params)} values"
            )
        return camera

    def K(self) -> np.ndarray:
        """(3, 3) OpenCV-convention pinhole part (distortion ignored)."""
        camera = self.to_pycolmap()
        K = np.asarray(camera.calibration_matrix(), dtype=np.float64).copy()
        K[0, 2] -= 0.5
        K[1, 2] -= 0.5
        return K

    @property
    def focal_length(self) -> float:
        """Mean focal length in pixels."""
        return float(self.to_pycolmap().mean_focal_length())

    @property
    def is_pinhole(self) -> bool:
        """True when the model has no distortion, or its distortion is zero."""
        if self.model in ("SIMPLE_PINHOLE", "PINHOLE"):
            return True
        camera = self.to_pycolmap()
        return all(self.params[i] == 0.0 for i in camera.extra_params_idxs())

    def with_focal_length(self, focal: float) -> Camera:
        """The same camera with every focal length set to ``focal``."""
        params = list(self.params)
        for i in self.to_pycolmap().focal_length_idxs():
            params[i] = float(focal)
        return replace(self, params=tuple(params))

    def scaled(self, width: int, height: int) -> Camera:
        """The camera for the same lens at another image size of the same aspect ratio."""
        camera = self.to_pycolmap()
        camera.rescale(int(width), int(height))
        return Camera.from_pycolmap(camera)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame points -> (N, 2) OpenCV pixels; NaN behind the camera."""
        points_cam = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
        out = np.full((len(points_cam), 2), np.nan)
        front = points_cam[:, 2] > 1e-12
        if front.any():
            out[front] = self.to_pycolmap().img_from_cam(points_cam[front], check_cheirality=False) - 0.5
        return out

    def normalized(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) OpenCV pixels -> (N, 2) undistorted normalised coordinates (x / z, y / z)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return np.asarray(self.to_pycolmap().cam_from_img(xy + 0.5))

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "width": self.width, "height": self.height, "params": list(self.params)}


def project(camera: Camera, cam_from_world: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points (N, 3) into a camera: (N, 2) OpenCV pixels (NaN behind it) and (N,) depths."""
    points_cam = points @ cam_from_world[:, :3].T + cam_from_world[:, 3]
    return camera.project(points_cam), points_cam[:, 2]


def unproject(camera: Camera, cam_from_world: np.ndarray, xy: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(N, 2) OpenCV pixels at depths (N,) along the optical axis -> (N, 3) world points."""
    rays = np.concatenate((camera.normalized(xy), np.ones((len(xy), 1))), axis=1)
    points_cam = rays * np.asarray(depth, dtype=np.float64)[:, None]
    rot, trans = cam_from_world[:, :3], cam_from_world[:, 3]
    return (points_cam - trans) @ rot


def relative_pose(cam_from_world_a: np.ndarray, cam_from_world_b: np.ndarray) -> np.ndarray:
    """(3, 4) ``b_from_a``."""
    rot = cam_from_world_b[:, :3] @ cam_from_world_a[:, :3].T
    return np.concatenate((rot, (cam_from_world_b[:, 3] - rot @ cam_from_world_a[:, 3])[:, None]), axis=1)


def fundamental_from_poses(
    K_a: np.ndarray, pose_a: np.ndarray, K_b: np.ndarray, pose_b: np.ndarray
) -> np.ndarray:
    """(3, 3) fundamental matrix with ``x_b^T F x_a = 0`` for OpenCV pixels (homogeneous) of two pinhole
    cameras with poses ``cam_from_world``."""
    b_from_a = relative_pose(pose_a, pose_b)
    t = b_from_a[:, 3]
    t_cross = np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])
    return np.linalg.inv(K_b).T @ t_cross @ b_from_a[:, :3] @ np.linalg.inv(K_a)
