"""Sky masks from a user-supplied sky-segmentation ONNX model (e.g. the official demo's ``skyseg.onnx``).

The model is run as the official demo does: RGB resized to the model's input size (320x320 for skyseg),
ImageNet normalisation, NCHW float32; the output is min-max normalised to 0..255 and a pixel is sky where it
is >= 32. Unlike the demo, masks are computed on the original image and mapped through the same resize /
crop / padding as the model input, so they stay aligned for cropped portrait images. Needs ``onnxruntime``
(``pip install 'vggtkit[sky]'``); no model is downloaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vggtkit.reconstruction import Reconstruction

__all__ = ["SkySegmenter", "check_sky_model", "onnx_sky_segmenter", "sky_keep_masks"]

logger = logging.getLogger(__name__)

SkySegmenter = Callable[[np.ndarray], np.ndarray]
"""RGB uint8 (H, W, 3) -> bool (H, W), True where the pixel is sky."""

_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_SKY_LEVEL = 32  # on the 0..255 normalised output: >= this is sky (the official demo keeps < 32)
_DEFAULT_SIZE = 320


def check_sky_model(model_path: str | os.PathLike[str]) -> Path:
    """Check, without loading it, that a sky model can be used: the file exists and onnxruntime is installed.

    Raises:
        ValueError: naming the missing piece and how to get it.
    """
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ValueError(
            f"sky model not found: '{path}'; pass the path of a sky-segmentation ONNX file (the official demo "
            "uses skyseg.onnx from the Hugging Face repo JianyuanWang/skyseg)"
        )
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            "sky masking needs onnxruntime, which is not installed: pip install 'vggtkit[sky]' "
            "(or pip install onnxruntime)"
        ) from exc
    return path


def onnx_sky_segmenter(model_path: str | os.PathLike[str]) -> SkySegmenter:
    """Load a sky-segmentation ONNX model with onnxruntime (CPU) and return a :data:`SkySegmenter`.

    Raises:
        ValueError: if onnxruntime is not installed, the file is missing, or it is not a readable ONNX model.
    """
    path = check_sky_model(model_path)
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for invalid files
        raise ValueError(f"cannot load '{path}' as an ONNX model: {exc}") from exc
    model_input = session.get_inputs()[0]
    shape = model_input.shape
    in_h = shape[2] if len(shape) == 4 and isinstance(shape[2], int) else _DEFAULT_SIZE
    in_w = shape[3] if len(shape) == 4 and isinstance(shape[3], int) else _DEFAULT_SIZE

    def segment(rgb: np.ndarray) -> np.ndarray:
        import cv2

        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (in_w, in_h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        x = ((x - _MEAN) / _STD).transpose(2, 0, 1)[None].astype(np.float32)
        out = np.asarray(session.run(None, {model_input.name: x})[0], dtype=np.float32).squeeze()
        if out.ndim != 2:
            raise ValueError(f"the sky model returned shape {out.shape}; expected one (H, W) map per image")
        lo, hi = float(out.min()), float(out.max())
        norm = (out - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(out)
        norm = cv2.resize(norm, (w, h), interpolation=cv2.INTER_LINEAR)
        return norm >= _SKY_LEVEL

    return segment


def sky_keep_masks(rec: Reconstruction, segment: SkySegmenter | str | os.PathLike[str]) -> np.ndarray:
    """(S, H, W) bool at the model resolution: True where a pixel is not sky.

    Args:
        rec: the reconstruction; each frame's original image is segmented when available (else the model
            image).
        segment: a :data:`SkySegmenter` or the path of an ONNX sky model.
    """
    if not callable(segment):
        segment = onnx_sky_segmenter(segment)
    h, w = rec.model_hw
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    keep = np.ones((rec.num_frames, h, w), dtype=bool)
    colors = None
    for i in range(rec.num_frames):
        rgb = rec.source_image(i)
        if rgb is None:
            colors = rec.colors() if colors is None else colors
            keep[i] = ~np.asarray(segment(colors[i]), dtype=bool)
            continue
        sky = np.asarray(segment(rgb), dtype=bool)
        a = rec.original_from_model[i]
        uo = np.rint(a[0, 0] * u + a[0, 2]).astype(np.int64)
        vo = np.rint(a[1, 1] * v + a[1, 2]).astype(np.int64)
        inside = (uo >= 0) & (uo < sky.shape[1]) & (vo >= 0) & (vo < sky.shape[0])
        keep[i][inside] = ~sky[vo[inside], uo[inside]]
    logger.info("sky masks: %.1f%% of pixels are sky", 100.0 * (1.0 - keep.mean()))
    return keep
