"""The predicted depth, read at original-image pixels."""

from __future__ import annotations

import numpy as np

from vggtkit.reconstruction import Reconstruction

__all__ = ["sample_depth"]


def _bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples (N,) of a float32 (H, W) image at pixels uv (N, 2); 0 outside."""
    import cv2

    n = len(uv)
    width = 1024  # OpenCV's remap takes maps of at most 32767 columns
    rows = -(-n // width)
    maps = np.zeros((rows * width, 2), np.float32)
    maps[:n] = uv
    out = cv2.remap(image, maps.reshape(rows, width, 2), None, cv2.INTER_LINEAR, borderValue=0)
    return out.reshape(-1)[:n].astype(np.float64)


def sample_depth(rec: Reconstruction, frame: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Predicted depth at original-image pixels (bilinear in the model's depth maps).

    Args:
        rec: the reconstruction.
        frame: (N,) frame index of each pixel.
        xy: (N, 2) original-image pixels (OpenCV convention).

    Returns:
        (N,) float64 depth; NaN outside the image, next to padding, or where the prediction is not positive.
    """
    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    out = np.full(len(xy), np.nan)
    content = rec.content_mask()
    for f in np.unique(frame):
        sel = np.nonzero(frame == f)[0]
        model_from_original = np.linalg.inv(rec.original_from_model[f])
        uv = xy[sel] * np.diag(model_from_original)[:2] + model_from_original[:2, 2]
        depth = rec.depth[f, ..., 0].astype(np.float32)
        valid = content[f] & np.isfinite(depth) & (depth > 0)
        value = _bilinear(np.where(valid, depth, 0).astype(np.float32), uv)
        weight = _bilinear(valid.astype(np.float32), uv)
        ok = weight > 0.999  # all four neighbours valid: never mixes in padding or invalid pixels
        out[sel[ok]] = value[ok] / weight[ok]
    return out
