"""Scene folders: your own captures (images, optional depth, cameras) as training or evaluation samples.

Layout of one scene folder::

    my_scene/
      images/          frames, any of .png .jpg .jpeg (sorted by name; the first is frame 0)
      depths/          optional: <image stem>.npy (float depth in scene units, 0 = unknown)
                       or <image stem>.png (16-bit, millimetres)
      cameras.json     cameras, either this file ...
      sparse/          ... or a COLMAP sparse model (sparse/ or sparse/0/, .txt or .bin)

``cameras.json``::

    {"frames": [{"image": "000.png", "cam_from_world": [[...3 or 4 rows of 4...]], "K": [[fx,0,cx],[0,fy,cy],[0,0,1]]}, ...]}

with ``cam_from_world`` in OpenCV axes (x right, y down, z forward) and ``K`` in pixels of the stored image, the
centre of the top-left pixel at (0, 0). Images are centre-cropped around the principal point to the target
aspect ratio and resized; intrinsics and depth follow. The sample dict matches the synthetic scenes'.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vggtkit.data.augment import crop_around_principal_point, resize_with_intrinsics
from vggtkit.data.batches import add_point_maps
from vggtkit.data.colmap_reader import read_colmap_model
from vggtkit.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CAMERAS_FILE = "cameras.json"


@dataclass(frozen=True)
class _Frame:
    image: Path
    cam_from_world: np.ndarray  # 3, 4
    K: np.ndarray  # 3, 3


def _as_pose(value: Any, where: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape not in ((3, 4), (4, 4)) or not np.isfinite(array).all():
        raise ValueError(
            f"{where}: cam_from_world must be a finite 3x4 or 4x4 matrix, got shape {array.shape}"
        )
    return array[:3]


def _as_intrinsics(value: Any, where: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (3, 3) or not np.isfinite(array).all() or array[0, 0] <= 0 or array[1, 1] <= 0:
        raise ValueError(f"{where}: K must be a 3x3 matrix with positive focal lengths, got {value!r}")
    return array


def _read_cameras_json(folder: Path) -> list[_Frame]:
    path = folder / CAMERAS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{path} must hold {{'frames': [{{'image', 'cam_from_world', 'K'}}, ...]}}")
    out = []
    for i, entry in enumerate(frames):
        where = f"{path} frame {i}"
        if not isinstance(entry, dict) or not {"image", "cam_from_world", "K"} <= set(entry):
            raise ValueError(f"{where} needs the keys image, cam_from_world and K")
        image = folder / "images" / entry["image"]
        out.append(_Frame(image, _as_pose(entry["cam_from_world"], where), _as_intrinsics(entry["K"], where)))
    return out


def _read_colmap(folder: Path) -> list[_Frame]:
    for candidate in (folder / "sparse" / "0", folder / "sparse"):
        if candidate.is_dir() and any((candidate / f"cameras{e}").is_file() for e in (".txt", ".bin")):
            views = read_colmap_model(candidate)
            return [_Frame(folder / "images" / v.name, v.cam_from_world[:3], v.K) for v in views]
    raise FileNotFoundError(f"{folder} has neither {CAMERAS_FILE} nor a COLMAP model in sparse/ or sparse/0/")


def _read_depth(folder: Path, image: Path, shape: tuple[int, int]) -> np.ndarray | None:
    stem = image.stem
    npy, png = folder / "depths" / f"{stem}.npy", folder / "depths" / f"{stem}.png"
    if npy.is_file():
        depth = np.load(npy, allow_pickle=False).astype(np.float32)
    elif png.is_file():
        with Image.open(png) as handle:
            depth = np.asarray(handle, dtype=np.float32) / 1000.0
    else:
        return None
    depth = np.squeeze(depth)
    if depth.shape != shape:
        raise ValueError(f"depth map of {image.name} is {depth.shape}, but the image is {shape}")
    depth[~np.isfinite(depth)] = 0
    return np.maximum(depth, 0)


def target_size(height: int, width: int, width_px: int, patch_size: int = 14) -> tuple[int, int]:
    """(H, W) with W = ``width_px`` and H the aspect-preserving height rounded down to the patch size."""
    h = max(patch_size, int(round(width_px * height / width)) // patch_size * patch_size)
    return h, width_px


def load_scene_folder(
    folder: str | Path, image_size: tuple[int, int] | int | None = None, max_frames: int | None = None
) -> dict[str, Any]:
    """Read one scene folder into the sample dict of :func:`vggtkit.data.synthetic.render_scene`.

    Args:
        folder: the scene folder (see the module docstring).
        image_size: output (H, W), or an int width with the height from the aspect ratio (multiple of 14); None
            keeps the stored size.
        max_frames: keep only the first frames.

    Returns:
        dict with ``images`` (S, 3, H, W) in [0, 1], ``depths`` (S, H, W) (zeros when absent), ``point_masks``
        (S, H, W), ``extrinsics`` (S, 3, 4), ``intrinsics`` (S, 3, 3), ``cam_points``, ``world_points`` (S, H, W, 3),
        ``has_depth`` (bool) and ``seq_name``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"scene folder {folder} does not exist")
    if not (folder / "images").is_dir():
        raise FileNotFoundError(f"scene folder {folder} has no images/ subfolder")
    frames = _read_cameras_json(folder) if (folder / CAMERAS_FILE).is_file() else _read_colmap(folder)
    frames = sorted(frames, key=lambda f: f.image.name)[: max_frames or None]
    images, depths, has_depth = [], [], True
    shape = None
    for frame in frames:
        if not frame.image.is_file():
            raise FileNotFoundError(f"{frame.image} is listed in the cameras but missing")
        with Image.open(frame.image) as handle:
            rgb = np.asarray(handle.convert("RGB"), dtype=np.float32) / 255.0
        if shape is None:
            shape = rgb.shape[:2]
        elif rgb.shape[:2] != shape:
            raise ValueError(
                f"{frame.image.name} is {rgb.shape[1]}x{rgb.shape[0]}; all images must share one size"
            )
        images.append(torch.from_numpy(rgb).permute(2, 0, 1))
        depth = _read_depth(folder, frame.image, shape)
        has_depth &= depth is not None
        depths.append(torch.from_numpy(depth if depth is not None else np.zeros(shape, np.float32)))
    sample: dict[str, Any] = {
        "images": torch.stack(images),
        "depths": torch.stack(depths),
        "extrinsics": torch.from_numpy(np.stack([f.cam_from_world for f in frames])).float(),
        "intrinsics": torch.from_numpy(np.stack([f.K for f in frames])).float(),
    }
    if image_size is not None:
        height, width = shape
        size = target_size(height, width, image_size) if isinstance(image_size, int) else tuple(image_size)
        # Crop to the target aspect ratio around the principal point, then resize.
        scale = min(height / size[0], width / size[1])
        crop = (int(round(size[0] * scale)), int(round(size[1] * scale)))
        imgs, deps, ks = crop_around_principal_point(
            sample["images"], sample["depths"], sample["intrinsics"], crop
        )
        imgs, deps, ks = resize_with_intrinsics(imgs, deps, ks, size)
        sample.update(images=imgs, depths=deps, intrinsics=ks)
    sample["point_masks"] = sample["depths"] > 1e-8
    sample["has_depth"] = has_depth
    sample["seq_name"] = folder.name
    return add_point_maps(sample)


class SceneFolderCollection:
    """Every scene folder under ``root`` (or ``root`` itself when it is one) as a training scene source."""

    def __init__(self, root: str | Path, image_size: tuple[int, int] | int | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"scene folder root {root} does not exist")
        if (root / "images").is_dir():
            self.folders = [root]
        else:
            self.folders = sorted(p for p in root.iterdir() if (p / "images").is_dir())
        if not self.folders:
            raise FileNotFoundError(f"no scene folders (folders with images/) under {root}")
        self.image_size = image_size
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.folders)

    def scene(self, index: int) -> dict[str, Any]:
        if index not in self._cache:
            sample = load_scene_folder(self.folders[index], self.image_size)
            if not sample["has_depth"]:
                raise ValueError(f"{self.folders[index]} has no depths/: training needs ground-truth depth")
            self._cache[index] = sample
        return self._cache[index]


def save_scene_folder(sample: dict[str, Any], folder: str | Path, depth_format: str = "png") -> Path:
    """Write a sample (images, depths, extrinsics, intrinsics) as a scene folder readable by
    :func:`load_scene_folder`. Files are written under temporary names and renamed.

    Args:
        sample: dict with ``images`` (S, 3, H, W) in [0, 1], ``depths`` (S, H, W), ``extrinsics`` (S, 3, 4) and
            ``intrinsics`` (S, 3, 3).
        folder: the scene folder to create (may exist).
        depth_format: "png" (16-bit millimetres, compact; depth must stay below 65.5 units) or "npy" (float32).
    """
    if depth_format not in ("png", "npy"):
        raise ValueError(f"depth_format must be 'png' or 'npy', got {depth_format!r}")
    folder = Path(folder)
    depths = np.asarray(sample["depths"], dtype=np.float32)
    if depth_format == "png" and depths.max() * 1000 >= 65535:
        raise ValueError("depth exceeds 65.5 units: use depth_format='npy'")
    images = (sample["images"].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    frames = []
    for i, image in enumerate(images):
        name = f"{i:03d}.png"
        with atomic_path(folder / "images" / name) as tmp:
            Image.fromarray(image).save(tmp, format="PNG")
        _save_depth(depths[i], folder / "depths" / f"{i:03d}.{depth_format}")
        frames.append(
            {
                "image": name,
                "cam_from_world": np.asarray(sample["extrinsics"][i], dtype=np.float64).round(8).tolist(),
                "K": np.asarray(sample["intrinsics"][i], dtype=np.float64).round(8).tolist(),
            }
        )
    with atomic_path(folder / CAMERAS_FILE) as tmp:
        tmp.write_text(json.dumps({"frames": frames}, indent=1) + "\n")
    return folder


def _save_depth(depth: np.ndarray, path: Path) -> None:
    """One depth map: 16-bit millimetre PNG or float32 .npy, chosen by the suffix."""
    with atomic_path(path) as tmp:
        if path.suffix == ".png":
            Image.fromarray(np.round(depth * 1000).astype(np.uint16)).save(tmp, format="PNG")
        else:
            with open(tmp, "wb") as handle:
                np.save(handle, depth)
