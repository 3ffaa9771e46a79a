"""The result of a reconstruction: per-frame cameras, depth and points as numpy arrays, saved as one npz.

A neutral module: the pipeline produces a :class:`Reconstruction`, the exporters and the web demo read it, and
neither depends on the other.

The npz holds the official demo's keys (``pose_enc, depth, depth_conf, world_points, world_points_conf,
images, extrinsic, intrinsic, world_points_from_depth``) plus what exports need to work at the original image
resolution (``intrinsic_original``, ``original_from_model``, ``original_hw``, ``names``, ``image_paths``, ...).
Everything is stored without pickling; an official ``predictions.npz`` loads too.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from vggtkit.geometry import unproject_depth_map_to_point_map
from vggtkit.io.images import load_rgb_image
from vggtkit.utils.atomic import atomic_path

__all__ = ["NPZ_FORMAT_VERSION", "OFFICIAL_KEYS", "PointBranch", "Reconstruction"]

logger = logging.getLogger(__name__)

_ZIP_MAGIC = b"PK\x03\x04"  # an npz is a zip archive

OFFICIAL_KEYS = (
    "pose_enc",
    "depth",
    "depth_conf",
    "world_points",
    "world_points_conf",
    "images",
    "extrinsic",
    "intrinsic",
    "world_points_from_depth",
)
NPZ_FORMAT_VERSION = 1
PointBranch = Literal["depth", "pointmap"]


def _scale_matrix(sx: np.ndarray, sy: np.ndarray, ox: np.ndarray, oy: np.ndarray) -> np.ndarray:
    """(S, 3, 3) affine maps of pixel coordinates: u' = sx u + ox, v' = sy v + oy."""
    out = np.zeros((len(sx), 3, 3))
    out[:, 0, 0], out[:, 1, 1], out[:, 0, 2], out[:, 1, 2], out[:, 2, 2] = sx, sy, ox, oy, 1.0
    return out


@dataclass
class Reconstruction:
    """Per-frame predictions of one scene (S frames at the model resolution H x W), numpy arrays.

    Conventions: ``extrinsic`` is ``cam_from_world`` (S, 3, 4) in OpenCV axes (x right, y down, z forward),
    the world frame being the reference camera's; intrinsics are pinhole matrices in pixels with pixel
    centres at integer coordinates (OpenCV; add 0.5 to the principal point for COLMAP's convention).

    Attributes:
        pose_enc: (S, 9) camera encodings ``[t, quat_xyzw, fov_h, fov_w]``.
        extrinsic: (S, 3, 4) ``cam_from_world``.
        intrinsic: (S, 3, 3) intrinsics at the model resolution (H, W).
        depth: (S, H, W, 1) depth along the optical axis; depth_conf: (S, H, W) its confidence (>= 1).
        world_points: (S, H, W, 3) the point head's map (None if the model has no point head);
            world_points_conf: (S, H, W).
        world_points_from_depth: (S, H, W, 3) depth unprojected with the predicted cameras.
        images: (S, 3, H, W) float32 preprocessed images in [0, 1].
        intrinsic_original: (S, 3, 3) intrinsics at each image's original resolution.
        original_from_model: (S, 3, 3) maps model pixel coordinates to original-image pixel coordinates
            (homogeneous, OpenCV pixel-centre convention); accounts for resize, crop and padding.
        original_hw: (S, 2) original image (height, width) in pixels (after EXIF orientation).
        names: S unique file names (COLMAP image names, names of the copies in ``images/``).
        image_paths: S source file paths ("" where a frame has no file, e.g. decoded video frames).
        reference_index: the frame that defined the world frame (passed to the model first).
        mode: the preprocessing mode ("crop" or "pad" for VGGT, "balanced" or "max_size" for VGGT-Omega).
        source_frames: in-memory original pixels (H0, W0, 3) uint8 of frames without a file (video); not
            saved in the npz (write them with :meth:`save_source_frames`).
        timings: seconds spent per pipeline stage (not saved).
    """

    pose_enc: np.ndarray
    extrinsic: np.ndarray
    intrinsic: np.ndarray
    depth: np.ndarray
    depth_conf: np.ndarray
    world_points: np.ndarray | None
    world_points_conf: np.ndarray | None
    world_points_from_depth: np.ndarray
    images: np.ndarray
    intrinsic_original: np.ndarray
    original_from_model: np.ndarray
    original_hw: np.ndarray
    names: list[str]
    image_paths: list[str]
    reference_index: int = 0
    mode: str = "crop"
    source_frames: list[np.ndarray | None] | None = field(default=None, repr=False, compare=False)
    timings: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        s, h, w = self.depth_conf.shape
        expect = {
            "pose_enc": (s, 9),
            "extrinsic": (s, 3, 4),
            "intrinsic": (s, 3, 3),
            "depth": (s, h, w, 1),
            "world_points_from_depth": (s, h, w, 3),
            "images": (s, 3, h, w),
            "intrinsic_original": (s, 3, 3),
            "original_from_model": (s, 3, 3),
            "original_hw": (s, 2),
        }
        if self.world_points is not None:
            expect["world_points"] = (s, h, w, 3)
            expect["world_points_conf"] = (s, h, w)
        for name, shape in expect.items():
            value = getattr(self, name)
            if value is None or tuple(value.shape) != shape:
                got = None if value is None else tuple(value.shape)
                raise ValueError(f"Reconstruction.{name} must have shape {shape}, got {got}")
        if len(self.names) != s or len(self.image_paths) != s:
            raise ValueError(
                f"names and image_paths must have {s} entries, got {len(self.names)}, {len(self.image_paths)}"
            )
        if len(set(self.names)) != s:
            raise ValueError("Reconstruction.names must be unique")
        if not 0 <= self.reference_index < s:
            raise ValueError(f"reference_index {self.reference_index} is out of range for {s} frames")
        if self.source_frames is not None and len(self.source_frames) != s:
            raise ValueError(f"source_frames must have {s} entries")

    # ------------------------------------------------------------------ properties
    @property
    def num_frames(self) -> int:
        return int(self.depth_conf.shape[0])

    @property
    def model_hw(self) -> tuple[int, int]:
        """(H, W) of the model's input and output maps."""
        return int(self.depth_conf.shape[1]), int(self.depth_conf.shape[2])

    def cam_from_world(self) -> np.ndarray:
        """(S, 4, 4) float64 extrinsics."""
        out = np.broadcast_to(np.eye(4), (self.num_frames, 4, 4)).copy()
        out[:, :3, :] = self.extrinsic
        return out

    def world_from_cam(self) -> np.ndarray:
        """(S, 4, 4) float64 camera-to-world poses (OpenCV axes)."""
        return np.linalg.inv(self.cam_from_world())

    def colors(self) -> np.ndarray:
        """(S, H, W, 3) uint8 colours of the preprocessed images (rounded, never outside 0..255)."""
        rgb = np.nan_to_num(self.images.transpose(0, 2, 3, 1), nan=0.0)
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)

    def content_mask(self) -> np.ndarray:
        """(S, H, W) bool: model pixels that show the image (False on white padding added by pad mode or
        by mixing aspect ratios)."""
        h, w = self.model_hw
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        a = self.original_from_model
        uo = a[:, 0, 0, None, None] * u + a[:, 0, 2, None, None]
        vo = a[:, 1, 1, None, None] * v + a[:, 1, 2, None, None]
        ho = self.original_hw[:, 0, None, None]
        wo = self.original_hw[:, 1, None, None]
        return (uo > -0.5) & (uo < wo - 0.5) & (vo > -0.5) & (vo < ho - 0.5)

    def points(self, branch: PointBranch = "depth") -> tuple[np.ndarray, np.ndarray]:
        """World points (S, H, W, 3) and their confidence (S, H, W) of one branch.

        Args:
            branch: "depth" (depth unprojected with the predicted cameras, ``depth_conf``; the official demo's
                default) or "pointmap" (the point head's ``world_points``, ``world_points_conf``).
        """
        if branch == "depth":
            return self.world_points_from_depth, self.depth_conf
        if branch == "pointmap":
            if self.world_points is None or self.world_points_conf is None:
                raise ValueError(
                    "this reconstruction has no point map (the model has no point head); use the depth branch"
                )
            return self.world_points, self.world_points_conf
        raise ValueError(f"branch must be 'depth' or 'pointmap', got {branch!r}")

    def to_original_pixels(self, frame: int, uv: np.ndarray) -> np.ndarray:
        """Map (N, 2) model pixel coordinates of ``frame`` to original-image pixel coordinates (OpenCV)."""
        a = self.original_from_model[frame]
        return uv * np.array([a[0, 0], a[1, 1]]) + np.array([a[0, 2], a[1, 2]])

    # ------------------------------------------------------------------ source images
    def source_image(self, frame: int) -> np.ndarray | None:
        """Original-resolution RGB pixels (H0, W0, 3) uint8 of ``frame``, or None when unavailable."""
        if self.source_frames is not None and self.source_frames[frame] is not None:
            return self.source_frames[frame]
        path = self.image_paths[frame]
        if path and Path(path).is_file():
            img = np.asarray(load_rgb_image(path, exif_transpose=True))
            if img.shape[:2] == tuple(self.original_hw[frame]):
                return img
            logger.warning("%s changed size since the reconstruction; not using it", path)
        return None

    def save_source_frames(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write in-memory frames (decoded video) as PNG files named ``names[i]`` into ``folder`` and record
        their paths in ``image_paths``, so exports and later re-exports can use them."""
        written: list[Path] = []
        if self.source_frames is None:
            return written
        folder = Path(folder)
        for i, rgb in enumerate(self.source_frames):
            if rgb is None:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / self.names[i]
            with atomic_path(target) as tmp:
                Image.fromarray(rgb).save(tmp, format="PNG")
            self.image_paths[i] = str(target.resolve())
            written.append(target)
        return written

    # ------------------------------------------------------------------ npz
    def save_npz(self, path: str | os.PathLike[str]) -> Path:
        """Write all arrays to one ``.npz`` (temporary name, then rename). Returns the path."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "pose_enc": self.pose_enc,
            "depth": self.depth,
            "depth_conf": self.depth_conf,
            "images": self.images,
            "extrinsic": self.extrinsic,
            "intrinsic": self.intrinsic,
            "world_points_from_depth": self.world_points_from_depth,
            "intrinsic_original": self.intrinsic_original,
            "original_from_model": self.original_from_model,
            "original_hw": self.original_hw.astype(np.int64),
            "names": np.array(self.names, dtype=np.str_),
            "image_paths": np.array(self.image_paths, dtype=np.str_),
            "reference_index": np.array(self.reference_index, dtype=np.int64),
            "mode": np.array(self.mode, dtype=np.str_),
            "vggtkit_npz_version": np.array(NPZ_FORMAT_VERSION, dtype=np.int64),
        }
        if self.world_points is not None:
            arrays["world_points"] = self.world_points
            arrays["world_points_conf"] = self.world_points_conf
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def from_cameras(
        cls,
        images: np.ndarray,
        cam_from_world: np.ndarray,
        intrinsic: np.ndarray,
        depth: np.ndarray,
        names: list[str] | None = None,
    ) -> Reconstruction:
        """A reconstruction of known cameras and depth, the images at their own resolution (original = model).

        Args:
            images: (S, 3, H, W) float32 in [0, 1]; they are also the original pixels.
            cam_from_world: (S, 3, 4) OpenCV extrinsics; intrinsic: (S, 3, 3) in pixels.
            depth: (S, H, W) depth along the optical axis (confidence 1 everywhere).
            names: S image names (default ``frame_000.png``, ...).
        """
        import torch

        from vggtkit.geometry import extri_intri_to_pose_encoding

        s, _, h, w = images.shape
        depth = depth[..., None].astype(np.float32)
        pose_enc = extri_intri_to_pose_encoding(
            torch.from_numpy(cam_from_world), torch.from_numpy(intrinsic), (h, w)
        )
        return cls(
            pose_enc=pose_enc.numpy(),
            extrinsic=cam_from_world,
            intrinsic=intrinsic,
            depth=depth,
            depth_conf=np.ones((s, h, w), np.float32),
            world_points=None,
            world_points_conf=None,
            world_points_from_depth=unproject_depth_map_to_point_map(depth, cam_from_world, intrinsic).astype(
                np.float32
            ),
            images=images.astype(np.float32),
            intrinsic_original=intrinsic.copy(),
            original_from_model=np.broadcast_to(np.eye(3), (s, 3, 3)).copy(),
            original_hw=np.tile(np.array([h, w]), (s, 1)),
            names=names or [f"frame_{i:03d}.png" for i in range(s)],
            image_paths=[""] * s,
            source_frames=[
                np.clip(np.rint(im.transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8) for im in images
            ],
        )

    @classmethod
    def load_npz(cls, path: str | os.PathLike[str]) -> Reconstruction:
        """Load a ``predictions.npz`` written by :meth:`save_npz` or by the official demo.

        An official file lacks the original sizes: its frames are then taken to be at the model resolution.

        Raises:
            ValueError: if the file is missing, not an npz, or lacks the camera / depth arrays.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"predictions file not found: '{path}'")
        with open(path, "rb") as fh:
            if fh.read(4) != _ZIP_MAGIC:
                raise ValueError(f"'{path}' is not an npz file; give the predictions.npz of a reconstruction")
        try:
            npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"'{path}' is damaged ({exc}); write it again") from exc
        with npz:
            keys = set(npz.files)
            required = {"pose_enc", "depth", "depth_conf", "images", "extrinsic", "intrinsic"}
            missing = sorted(required - keys)
            if missing:
                raise ValueError(f"'{path}' is not a VGGT predictions file: missing {', '.join(missing)}")
            data = _read_arrays(npz, path)
        return cls._from_arrays(data, path)

    @classmethod
    def _from_arrays(cls, data: dict[str, np.ndarray], path: Path) -> Reconstruction:
        depth = data["depth"].astype(np.float32)
        if depth.ndim == 3:
            depth = depth[..., None]
        s, h, w = depth.shape[:3]
        intrinsic = data["intrinsic"].astype(np.float64)
        world_points_from_depth = data.get("world_points_from_depth")
        if world_points_from_depth is None:
            world_points_from_depth = unproject_depth_map_to_point_map(depth, data["extrinsic"], intrinsic)
        if "original_hw" in data:
            original_hw = data["original_hw"].astype(np.int64)
            original_from_model = data["original_from_model"].astype(np.float64)
            intrinsic_original = data["intrinsic_original"].astype(np.float64)
        else:
            original_hw = np.tile(np.array([h, w], np.int64), (s, 1))
            original_from_model = np.broadcast_to(np.eye(3), (s, 3, 3)).copy()
            intrinsic_original = intrinsic.copy()
        names = (
            [str(n) for n in data["names"]] if "names" in data else [f"frame_{i:06d}.png" for i in range(s)]
        )
        paths = [str(p) for p in data["image_paths"]] if "image_paths" in data else [""] * s
        info = {k: data[k].tolist() for k in ("reference_index", "mode") if k in data}
        logger.debug("loaded %s (%d frames %dx%d) %s", path, s, h, w, json.dumps(info))
        return cls(
            pose_enc=data["pose_enc"].astype(np.float32),
            extrinsic=data["extrinsic"].astype(np.float64),
            intrinsic=intrinsic,
            depth=depth,
            depth_conf=data["depth_conf"].astype(np.float32),
            world_points=data["world_points"].astype(np.float32) if "world_points" in data else None,
            world_points_conf=(
                data["world_points_conf"].astype(np.float32) if "world_points_conf" in data else None
            ),
            world_points_from_depth=np.asarray(world_points_from_depth, dtype=np.float32),
            images=data["images"].astype(np.float32),
            intrinsic_original=intrinsic_original,
            original_from_model=original_from_model,
            original_hw=original_hw,
            names=names,
            image_paths=paths,
            reference_index=int(info.get("reference_index", 0)),
            mode=str(info.get("mode", "crop")),
        )


def _read_arrays(npz: np.lib.npyio.NpzFile, path: Path) -> dict[str, np.ndarray]:
    """Every array of an open npz but ``pose_enc_list``; a truncated or corrupt member is a ValueError."""
    try:
        return {k: npz[k] for k in npz.files if k != "pose_enc_list"}
    except ValueError as exc:  # an object array other than pose_enc_list
        raise ValueError(f"'{path}' holds pickled objects; refusing to load them ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"'{path}' is damaged ({exc}); write it again") from exc
