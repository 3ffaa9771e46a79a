"""Depth export: per frame a 16-bit PNG of depth, a colourised preview and a 16-bit PNG of confidence.

Files in ``OUT/depth/``: ``<stem>.png`` (uint16, ``depth = value / depth_scale``, 0 = no data: padding or,
at the original resolution, rows the crop removed), ``<stem>_preview.png`` (turbo colour map, near = warm),
``<stem>_conf.png`` (uint16, ``confidence = value / conf_scale``) and ``depth.json`` with the scales, the
image sizes and the intrinsics that go with the maps. One scale for all frames (a power of ten chosen so
that the largest value fits in 16 bits), so maps of different frames compare directly.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from vggtkit.export._json import write_json
from vggtkit.export.options import DEFAULT_OPTIONS, ExportOptions, ExportResult
from vggtkit.reconstruction import Reconstruction
from vggtkit.utils.atomic import atomic_dir

__all__ = ["export_depth", "quantization_scale"]

logger = logging.getLogger(__name__)

_UINT16_MAX = 65535


def quantization_scale(max_value: float) -> float:
    """The largest power of ten ``s`` with ``max_value * s <= 65535`` (1 when there is no positive value)."""
    if not (math.isfinite(max_value) and max_value > 0):
        return 1.0
    return float(10.0 ** math.floor(math.log10(_UINT16_MAX / max_value)))


def _to_original(maps: np.ndarray, a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resample a (H, W) model-resolution map to the original (h, w) grid (nearest; 0 outside)."""
    import cv2

    h, w = hw
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = ((u - a[0, 2]) / a[0, 0]).astype(np.float32)
    map_y = ((v - a[1, 2]) / a[1, 1]).astype(np.float32)
    return cv2.remap(
        maps.astype(np.float32),
        map_x,
        map_y,
        interpolation=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )


def _preview(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """BGR uint8 turbo rendering of inverse depth, normalised by the 2nd-98th percentile of the frame."""
    import cv2

    out = np.zeros((*depth.shape, 3), dtype=np.uint8)
    if not valid.any():
        return out
    inv = np.zeros_like(depth, dtype=np.float64)
    inv[valid] = 1.0 / depth[valid]
    lo, hi = np.percentile(inv[valid], [2, 98])
    norm = np.clip((inv - lo) / max(hi - lo, 1e-12), 0, 1)
    colored = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    out[valid] = colored[valid]
    return out


def _unique_stems(names: list[str]) -> list[str]:
    stems: list[str] = []
    for i, name in enumerate(names):
        stem = Path(name).stem
        stems.append(stem if stem not in stems else f"{stem}_{i}")
    return stems


def _at_resolution(
    rec: Reconstruction, i: int, depth: np.ndarray, conf: np.ndarray, resolution: str
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], np.ndarray]:
    """Frame ``i``'s (H, W) depth and confidence maps at the model or original resolution, with that (h, w) and
    the intrinsics that go with it."""
    if resolution == "original":
        hw = (int(rec.original_hw[i, 0]), int(rec.original_hw[i, 1]))
        a = rec.original_from_model[i]
        return _to_original(depth, a, hw), _to_original(conf, a, hw), hw, rec.intrinsic_original[i]
    return depth, conf, rec.model_hw, rec.intrinsic[i]


def _write_pngs(
    folder: Path, stem: str, depth: np.ndarray, conf: np.ndarray, scales: tuple[float, float]
) -> None:
    """``<stem>.png`` (16-bit depth), ``<stem>_conf.png`` (16-bit confidence), ``<stem>_preview.png``."""
    import cv2

    depth_scale, conf_scale = scales
    cv2.imwrite(
        str(folder / f"{stem}.png"), np.clip(np.rint(depth * depth_scale), 0, _UINT16_MAX).astype(np.uint16)
    )
    cv2.imwrite(
        str(folder / f"{stem}_conf.png"),
        np.clip(np.rint(conf * conf_scale), 0, _UINT16_MAX).astype(np.uint16),
    )
    cv2.imwrite(str(folder / f"{stem}_preview.png"), _preview(depth, depth > 0))


def export_depth(
    rec: Reconstruction,
    out_dir: str | os.PathLike[str],
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """Write ``out_dir`` (e.g. ``OUT/depth``) with depth, preview and confidence PNGs per frame (see module doc).

    ``options.depth_resolution`` chooses the model resolution (default) or each image's original size.
    ``keep`` (e.g. a sky mask) zeroes the pixels it excludes.
    """
    out_dir = Path(out_dir)
    content = rec.content_mask()
    if keep is not None:
        content &= keep
    depth = np.where(content, rec.depth[..., 0], 0.0)
    conf = np.where(content, rec.depth_conf, 0.0)
    finite = np.isfinite(depth) & (depth > 0)
    depth_scale = quantization_scale(float(depth[finite].max()) if finite.any() else 0.0)
    conf_scale = quantization_scale(float(np.nanmax(conf)) if conf.size else 0.0)
    frames = []
    with atomic_dir(out_dir) as tmp:
        for i, stem in enumerate(_unique_stems(rec.names)):
            d, c = np.where(finite[i], depth[i], 0.0), np.nan_to_num(conf[i])
            d, c, hw, K = _at_resolution(rec, i, d, c, options.depth_resolution)
            _write_pngs(tmp, stem, d, c, (depth_scale, conf_scale))
            frames.append(
                {
                    "name": rec.names[i],
                    "depth": f"{stem}.png",
                    "confidence": f"{stem}_conf.png",
                    "preview": f"{stem}_preview.png",
                    "width": hw[1],
                    "height": hw[0],
                    "K": np.asarray(K, dtype=float).tolist(),
                }
            )
        write_json(
            tmp / "depth.json",
            {
                "depth_scale": depth_scale,
                "conf_scale": conf_scale,
                "resolution": options.depth_resolution,
                "note": "depth = png / depth_scale (0: no data); confidence = png / conf_scale; depth is along the "
                "optical axis, in the reconstruction's units (up to scale)",
                "frames": frames,
            },
        )
    logger.info("wrote %s (%d frames, depth_scale %g)", out_dir, rec.num_frames, depth_scale)
    return ExportResult((out_dir,))
