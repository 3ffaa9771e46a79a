"""Frames -> one model batch: preprocess every frame (crop / pad to a 14-pixel grid) and remember how each
model pixel maps back to its original image."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vggtkit.io.images import (
    PATCH_SIZE,
    PreprocessLayout,
    PreprocessMode,
    original_from_model,
    pad_offsets,
    preprocess_image,
    preprocess_layout,
)
from vggtkit.pipeline.inputs import InputFrame

__all__ = [
    "PreparedFrames",
    "batch_shape",
    "concat_frames",
    "prepare_frames",
    "prepare_tensor",
    "slice_frames",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class PreparedFrames:
    """Frames ready for the model.

    Attributes:
        images: (S, 3, H, W) float32 in [0, 1], white where an image does not fill the frame.
        original_hw: (S, 2) each frame's original (height, width).
        original_from_model: (S, 3, 3) model pixel -> original pixel maps (see ``original_from_model``).
        names: S unique file names; image_paths: S source paths ("" for frames without a file).
        source_frames: original pixels (H0, W0, 3) uint8 of frames without a file, else None.
    """

    images: torch.Tensor
    original_hw: np.ndarray
    original_from_model: np.ndarray
    names: list[str]
    image_paths: list[str]
    source_frames: list[np.ndarray | None]


def _smallest_resolution(width: int, height: int, mode: PreprocessMode) -> int:
    """The smallest resolution at which the short side of a ``width`` x ``height`` image keeps one patch
    (it rounds to one patch from half a patch on)."""
    ratio = min(width, height) / max(width, height)
    resolution = math.ceil(0.5 / ratio) * PATCH_SIZE
    while 0 in preprocess_layout(width, height, mode, resolution)[:2]:
        resolution += PATCH_SIZE
    return resolution


def _layout(name: str, width: int, height: int, mode: PreprocessMode, resolution: int) -> PreprocessLayout:
    """The frame's preprocessing layout; a ValueError for images too small or too elongated for the model."""
    if min(width, height) < PATCH_SIZE:
        raise ValueError(
            f"image '{name}' is {width}x{height} pixels, smaller than one {PATCH_SIZE}x"
            f"{PATCH_SIZE} patch; use images of at least {PATCH_SIZE} pixels per side"
        )
    layout = preprocess_layout(width, height, mode, resolution)
    if layout.resized_w == 0 or layout.resized_h == 0:
        raise ValueError(
            f"image '{name}' ({width}x{height}) is too elongated: at {resolution} px its short side "
            f"rounds to zero {PATCH_SIZE}-pixel patches; crop it or use a larger resolution "
            f"(resolution={_smallest_resolution(width, height, mode)})"
        )
    return layout


def _warn_mixed_shapes(shapes: set[tuple[int, int]], out_h: int, out_w: int) -> None:
    if len(shapes) > 1:
        logger.warning(
            "images have different shapes after preprocessing %s; padding all with white to %dx%d "
            "(padding is excluded from exports; mode='pad' gives every image the same square)",
            sorted(shapes),
            out_w,
            out_h,
        )


def _batch(
    arrays: list[np.ndarray], batch_hw: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Stack (3, h, w) images into one (S, 3, H, W) batch, padding smaller ones with white (centred) to
    ``batch_hw``, or to the largest image when it is None. Returns the batch and each image's (top, left) padding."""
    if batch_hw is None:
        shapes = {a.shape[1:] for a in arrays}
        out_h, out_w = max(h for h, _ in shapes), max(w for _, w in shapes)
        _warn_mixed_shapes(shapes, out_h, out_w)
    else:
        out_h, out_w = batch_hw
    batch = np.ones((len(arrays), 3, out_h, out_w), dtype=np.float32)
    pads = []
    for i, chw in enumerate(arrays):
        top, left = pad_offsets(chw.shape[1], chw.shape[2], out_h, out_w)
        batch[i, :, top : top + chw.shape[1], left : left + chw.shape[2]] = chw
        pads.append((top, left))
    return batch, pads


def batch_shape(
    sizes: Iterable[tuple[str, int, int]], mode: PreprocessMode, resolution: int
) -> tuple[int, int]:
    """The (H, W) of a batch holding frames of these sizes, without loading them.

    Args:
        sizes: (name, width, height) of each frame, in original pixels.

    Raises:
        ValueError: a frame too small or too elongated for the model (the message names it).
    """
    shapes = set()
    for name, width, height in sizes:
        layout = _layout(name, width, height, mode, resolution)
        shapes.add((layout.out_h, layout.out_w))
    if not shapes:
        raise ValueError("no frame to reconstruct")
    out_h, out_w = max(h for h, _ in shapes), max(w for _, w in shapes)
    _warn_mixed_shapes(shapes, out_h, out_w)
    return out_h, out_w


def prepare_frames(
    frames: Sequence[InputFrame],
    mode: PreprocessMode,
    resolution: int,
    progress: Progress | None = None,
    batch_hw: tuple[int, int] | None = None,
) -> PreparedFrames:
    """Load and preprocess frames at ``resolution`` into one batch.

    Args:
        batch_hw: (H, W) of the batch (from :func:`batch_shape`), so that batches of one sequence loaded in parts
            match; None: the largest preprocessed frame's.

    Raises:
        ValueError: an unreadable image, or one too small or too elongated for the model (the message names it).
    """
    arrays: list[np.ndarray] = []
    layouts: list[PreprocessLayout] = []
    sizes: list[tuple[int, int]] = []
    for i, frame in enumerate(frames):
        img = frame.load()
        layouts.append(_layout(frame.name, img.width, img.height, mode, resolution))
        arrays.append(preprocess_image(img, mode, resolution))
        sizes.append((img.height, img.width))
        if progress is not None:
            progress("load images", i + 1, len(frames))
    batch, pads = _batch(arrays, batch_hw)
    maps = [
        original_from_model(w0, h0, layout, pad)
        for layout, (h0, w0), pad in zip(layouts, sizes, pads, strict=True)
    ]
    return PreparedFrames(
        images=torch.from_numpy(batch),
        original_hw=np.array(sizes, dtype=np.int64),
        original_from_model=np.stack(maps),
        names=[f.name for f in frames],
        image_paths=[str(f.path.resolve()) if f.path is not None else "" for f in frames],
        source_frames=[f.rgb for f in frames],
    )


def _checked_tensor(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A (S, 3, H, W) float32 CPU tensor in [0, 1]; a ValueError for anything else."""
    tensor = torch.as_tensor(images)
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"an image tensor must be (S, 3, H, W) or (3, H, W), got {tuple(tensor.shape)}")
    if not tensor.is_floating_point() or tensor.numel() == 0:
        raise ValueError(f"an image tensor must be non-empty floating point in [0, 1], got {tensor.dtype}")
    tensor = tensor.detach().float().cpu()
    lo, hi = tensor.min().item(), tensor.max().item()
    if lo < 0 or hi > 1:
        raise ValueError(f"image tensor values must lie in [0, 1], got min {lo:.4g} and max {hi:.4g}")
    return tensor


def prepare_tensor(
    images: torch.Tensor | np.ndarray, mode: PreprocessMode, resolution: int, progress: Progress | None = None
) -> PreparedFrames:
    """A (S, 3, H, W) or (3, H, W) array in [0, 1]: used as is when H and W are multiples of 14 (its size is
    then the original size), otherwise each frame goes through the image preprocessing at ``resolution``."""
    tensor = _checked_tensor(images)
    s, _, h, w = tensor.shape
    names = [f"frame_{i:06d}.png" for i in range(s)]
    rgb = (tensor.permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
    if h % PATCH_SIZE or w % PATCH_SIZE:
        frames = [InputFrame(name=n, rgb=r) for n, r in zip(names, rgb, strict=True)]
        return prepare_frames(frames, mode, resolution, progress)
    if progress is not None:
        progress("load images", s, s)
    return PreparedFrames(
        images=tensor.contiguous(),
        original_hw=np.tile(np.array([h, w], np.int64), (s, 1)),
        original_from_model=np.broadcast_to(np.eye(3), (s, 3, 3)).copy(),
        names=names,
        image_paths=[""] * s,
        source_frames=list(rgb),
    )


def slice_frames(frames: PreparedFrames, start: int, stop: int) -> PreparedFrames:
    """Frames ``start`` to ``stop`` (excluded) of a batch."""
    return PreparedFrames(
        images=frames.images[start:stop],
        original_hw=frames.original_hw[start:stop],
        original_from_model=frames.original_from_model[start:stop],
        names=frames.names[start:stop],
        image_paths=frames.image_paths[start:stop],
        source_frames=frames.source_frames[start:stop],
    )


def concat_frames(first: PreparedFrames, second: PreparedFrames) -> PreparedFrames:
    """One batch of the frames of ``first`` followed by those of ``second`` (of the same (H, W))."""
    return PreparedFrames(
        images=torch.cat([first.images, second.images]),
        original_hw=np.concatenate([first.original_hw, second.original_hw]),
        original_from_model=np.concatenate([first.original_from_model, second.original_from_model]),
        names=first.names + second.names,
        image_paths=first.image_paths + second.image_paths,
        source_frames=first.source_frames + second.source_frames,
    )
