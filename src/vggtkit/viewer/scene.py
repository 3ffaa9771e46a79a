"""The viewer's scene as plain data, built without a browser: the points to send (selected as the exports select
them, then cut to the point budget) and the camera frusta to draw.

Coordinates are the reconstruction's world frame (the reference camera's OpenCV axes: x right, y down,
z forward); the server sets the browser's up direction to the reference camera's -y.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vggtkit.export.points import PointSet, point_mask
from vggtkit.reconstruction import Reconstruction
from vggtkit.viewer.settings import PREDICTED, ViewSettings
from vggtkit.viewer.source import SceneSource

__all__ = [
    "Frustum",
    "SceneBuilder",
    "SceneContents",
    "SceneLayout",
    "budget_mask",
    "camera_frusta",
    "frame_images",
    "pixel_priority",
    "scene_layout",
]

logger = logging.getLogger(__name__)

_COMPARE_COLOR = (150, 150, 150)
_FRUSTUM_SCALE = 0.05  # frustum size as a fraction of the scene extent
_MAX_SPREAD = 10.0  # points grow at most this much to cover the gaps left by the budget
_LAYOUT_SAMPLE = 200_000  # points used to measure the scene's centre and extent

SkyMasks = Callable[[Reconstruction], np.ndarray]
"""Reconstruction -> (S, H, W) bool, True where a pixel is not sky."""


@dataclass(frozen=True)
class Frustum:
    """One camera frustum to draw.

    Attributes:
        name: scene node name, ``/cameras/<set>/<frame>`` (``/compare/<set>/<frame>`` for the grey comparison).
        frame: frame index.
        fov: vertical field of view in radians; aspect: width / height.
        wxyz: (4,) rotation quaternion of ``world_from_cam`` (scalar first); position: (3,) camera centre.
        color: RGB 0..255.
        with_image: draw the frame's image in the frustum.
    """

    name: str
    frame: int
    fov: float
    aspect: float
    wxyz: tuple[float, float, float, float]
    position: tuple[float, float, float]
    color: tuple[int, int, int]
    with_image: bool


@dataclass(frozen=True)
class SceneLayout:
    """Where the scene is and how big, in scene units.

    Attributes:
        centre: (3,) median of the scene's points.
        extent: norm of the 5th-95th percentile box of its points.
        pixel_size: the width a pixel covers at the median depth (median depth / median focal length): the
            point size at which a full-resolution cloud has no gaps.
    """

    centre: tuple[float, float, float]
    extent: float
    pixel_size: float

    @property
    def frustum_scale(self) -> float:
        return _FRUSTUM_SCALE * self.extent

    def point_size(self, scale: float, selected: int, shown: int) -> float:
        """Point size for ``shown`` of ``selected`` points: the pixel size times ``scale``, grown by
        sqrt(selected / shown) (at most 10x) so that a down-sampled cloud covers the same surfaces."""
        spread = np.sqrt(selected / shown) if shown else 1.0
        return self.pixel_size * scale * float(min(spread, _MAX_SPREAD))


@dataclass(frozen=True)
class SceneContents:
    """What the browser shows for one :class:`ViewSettings`.

    Attributes:
        settings: the settings it was built for.
        points: the points sent, at most ``settings.max_points``.
        selected: how many points pass the filters (before the budget).
        point_size: point size in scene units.
        frusta: the frusta drawn (none when cameras are hidden).
    """

    settings: ViewSettings
    points: PointSet
    selected: int
    point_size: float
    frusta: tuple[Frustum, ...]


def pixel_priority(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """(S, H, W) int32 keys, a random permutation of 0..S*H*W-1, that decide which points a budget keeps."""
    count = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(count).astype(np.int32).reshape(shape)


def budget_mask(mask: np.ndarray, budget: int | None, priority: np.ndarray) -> np.ndarray:
    """The ``budget`` pixels of ``mask`` with the smallest ``priority`` (``mask`` itself when they fit).

    A random subset, uniform over the selected pixels. Because it follows fixed per-pixel keys, a point still
    selected after a filter tightens stays shown: moving a slider does not reshuffle the cloud.

    Args:
        mask: (S, H, W) bool selected pixels.
        budget: the most pixels to keep; None keeps all.
        priority: (S, H, W) distinct per-pixel keys (:func:`pixel_priority`).
    """
    if budget is None or np.count_nonzero(mask) <= budget:
        return mask
    threshold = np.partition(priority[mask], budget - 1)[budget - 1]
    return mask & (priority <= threshold)


def scene_layout(rec: Reconstruction, priority: np.ndarray) -> SceneLayout:
    """The :class:`SceneLayout` of the finite depth-branch points (a fixed random sample of them), or of the
    camera centres when there are too few points."""
    xyz, _ = rec.points("depth")
    chosen = priority < _LAYOUT_SAMPLE
    sample = xyz[chosen]
    depth = rec.depth[..., 0][chosen]
    finite = np.isfinite(sample).all(axis=-1) & np.isfinite(depth) & (depth > 0)
    sample, depth = sample[finite], depth[finite]
    if len(sample) < 2:
        sample = rec.world_from_cam()[:, :3, 3]
    lo, hi = np.percentile(sample, [5, 95], axis=0)
    extent = float(np.linalg.norm(hi - lo))
    if not (np.isfinite(extent) and extent > 0):
        extent = 1.0
    focal = float(np.median(rec.intrinsic[:, [0, 1], [0, 1]]))
    pixel_size = float(np.median(depth)) / focal if len(depth) and focal > 0 else extent / 1000.0
    return SceneLayout(
        centre=tuple(float(c) for c in np.median(sample, axis=0)), extent=extent, pixel_size=pixel_size
    )


def _rainbow(index: int, count: int) -> tuple[int, int, int]:
    """The GLB export's camera colours (matplotlib ``gist_rainbow`` by frame index)."""
    import matplotlib

    rgba = matplotlib.colormaps["gist_rainbow"](index / max(count, 1))
    return tuple(int(round(c * 255)) for c in rgba[:3])


def _wxyz(rotation: np.ndarray) -> tuple[float, float, float, float]:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    return float(w), float(x), float(y), float(z)


def camera_frusta(
    rec: Reconstruction, frames: list[int], prefix: str, compare: bool = False
) -> list[Frustum]:
    """Frusta of ``frames`` named ``<prefix>/<frame:04d>``: rainbow-coloured with images, or grey without
    (``compare``)."""
    h, w = rec.model_hw
    world_from_cam = rec.world_from_cam()
    out = []
    for i in frames:
        fy = float(rec.intrinsic[i, 1, 1])
        out.append(
            Frustum(
                name=f"{prefix}/{i:04d}",
                frame=i,
                fov=float(2.0 * np.arctan2(h / 2.0, fy)),
                aspect=w / h,
                wxyz=_wxyz(world_from_cam[i, :3, :3]),
                position=tuple(float(c) for c in world_from_cam[i, :3, 3]),
                color=_COMPARE_COLOR if compare else _rainbow(i, rec.num_frames),
                with_image=not compare,
            )
        )
    return out


def frame_images(rec: Reconstruction, longest_side: int) -> list[np.ndarray]:
    """Each frame's image (h, w, 3) uint8, shrunk so that its longest side is at most ``longest_side``."""
    import cv2

    colors = rec.colors()
    h, w = rec.model_hw
    factor = min(1.0, longest_side / max(h, w))
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if factor == 1.0:
        return list(colors)
    return [cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) for rgb in colors]


class SceneBuilder:
    """Builds :class:`SceneContents` for any settings. The filter mask of the last settings is kept, so that
    changes of the budget, point size or cameras do not filter the points again.

    Args:
        source: the scene's camera sets.
        sky_masks: computes sky masks (None: the sky mask is unavailable).
    """

    def __init__(self, source: SceneSource, sky_masks: SkyMasks | None = None) -> None:
        self.source = source
        self._sky_masks = sky_masks
        base = source.get(PREDICTED)
        self.priority = pixel_priority(base.depth_conf.shape)
        self.layout = scene_layout(base, self.priority)
        self._keep: np.ndarray | None = None
        self._mask: tuple[tuple, np.ndarray] | None = None
        self._lock = threading.Lock()

    @property
    def has_sky_masks(self) -> bool:
        return self._sky_masks is not None

    def keep_mask(self, settings: ViewSettings) -> np.ndarray | None:
        """The (S, H, W) pixels allowed besides the exports' filters: not sky, when the sky mask is on."""
        if not settings.mask_sky:
            return None
        if self._sky_masks is None:
            raise ValueError("the sky mask needs a sky-segmentation model, and none was given")
        if self._keep is None:  # the camera sets share their frames, hence their sky masks
            self._keep = np.asarray(self._sky_masks(self.source.get(PREDICTED)), dtype=bool)
        return self._keep

    def mask(self, settings: ViewSettings) -> np.ndarray:
        """(S, H, W) bool: the pixels whose points pass the filters of ``settings``, exactly as the exports
        select them (:func:`vggtkit.export.points.point_mask`)."""
        key = settings.selection_key()
        with self._lock:
            if self._mask is None or self._mask[0] != key:
                rec = self.source.get(settings.cameras)
                xyz, conf = rec.points(settings.branch)
                options = settings.export_options()
                self._mask = (key, point_mask(rec, conf, options, self.keep_mask(settings), xyz))
            return self._mask[1]

    def selection(self, settings: ViewSettings) -> PointSet:
        """Every point that passes the filters (no budget): what "Save PLY" writes."""
        return self._points(settings, self.mask(settings))

    def _points(self, settings: ViewSettings, mask: np.ndarray) -> PointSet:
        rec = self.source.get(settings.cameras)
        xyz, conf = rec.points(settings.branch)
        frame, v, u = np.nonzero(mask)
        return PointSet(
            xyz=xyz[frame, v, u].astype(np.float32),
            rgb=rec.colors()[frame, v, u],
            conf=conf[frame, v, u].astype(np.float32),
            frame=frame.astype(np.int32),
            pixel=np.stack([u, v], axis=-1).astype(np.int32),
        )

    def frusta(self, settings: ViewSettings) -> tuple[Frustum, ...]:
        """The frusta drawn for ``settings``: the chosen set's cameras, plus the other set's in grey when
        comparing; only the filtered frame's when a frame is chosen."""
        if not settings.show_cameras:
            return ()
        rec = self.source.get(settings.cameras)
        frames = list(range(rec.num_frames)) if settings.frame is None else [settings.frame]
        out = camera_frusta(rec, frames, f"/cameras/{settings.cameras}")
        if settings.compare_cameras:
            for other in self.source.names:
                if other != settings.cameras:
                    out += camera_frusta(self.source.get(other), frames, f"/compare/{other}", compare=True)
        return tuple(out)

    def build(self, settings: ViewSettings) -> SceneContents:
        """The scene for ``settings``: the points of the filter mask, cut to the budget before they are gathered."""
        mask = self.mask(settings)
        points = self._points(settings, budget_mask(mask, settings.max_points, self.priority))
        selected = int(np.count_nonzero(mask))
        return SceneContents(
            settings=settings,
            points=points,
            selected=selected,
            point_size=self.layout.point_size(settings.point_size, selected, len(points)),
            frusta=self.frusta(settings),
        )
