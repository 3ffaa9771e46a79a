"""Frames -> one model batch: preprocess every frame by the model family's rule (see
:class:`~vggtkit.io.preprocessing.Preprocessing`) and remember how each model pixel maps back to its original image."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vggtkit.io.images import pad_offsets
from vggtkit.io.preprocessing import FAMILY_MODES, FrameLayout, Preprocessing
from vggtkit.models.registry import family_of_config
from vggtkit.pipeline.inputs import InputFrame

__all__ = [
    "PreparedFrames",
    "batch_shape",
    "concat_frames",
    "prepare_frames",
    "prepare_tensor",
    "preprocessing_for",
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


def preprocessing_for(model: torch.nn.Module, mode: str | None, resolution: int | None) -> Preprocessing:
    """The preprocessing of ``model``'s family: ``mode`` (None: the family's default, "crop" for VGGT and
    "balanced" for VGGT-Omega) at ``resolution`` (None: the size the checkpoint was trained at).

    Raises:
        ValueError: a mode of another family, or a resolution that is not a multiple of the model's patch size.
    """
    family = family_of_config(model.config).name
    return Preprocessing(
        family=family,
        mode=FAMILY_MODES[family][0] if mode is None else mode,
        resolution=model.config.trained_resolution if resolution is None else resolution,
        patch_size=model.config.patch_size,
    )


def _warn_mixed_shapes(
    shapes: set[tuple[int, int]], out_h: int, out_w: int, preprocessing: Preprocessing
) -> None:
    if len(shapes) > 1:
        square = "; mode='pad' gives every image the same square" if preprocessing.family == "vggt" else ""
        logger.warning(
            "images have different shapes after preprocessing %s; padding all with white to %dx%d "
            "(padding is excluded from exports%s)",
            sorted(shapes),
            out_w,
            out_h,
            square,
        )


def _batch(
    arrays: list[np.ndarray], preprocessing: Preprocessing, batch_hw: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Stack (3, h, w) images into one (S, 3, H, W) batch, padding smaller ones with white (centred) to
    ``batch_hw``, or to the largest image when it is None. Returns the batch and each image's (top, left) padding."""
    if batch_hw is None:
        shapes = {a.shape[1:] for a in arrays}
        out_h, out_w = max(h for h, _ in shapes), max(w for _, w in shapes)
        _warn_mixed_shapes(shapes, out_h, out_w, preprocessing)
    else:
        out_h, out_w = batch_hw
    batch = np.ones((len(arrays), 3, out_h, out_w), dtype=np.float32)
    pads = []
    for i, chw in enumerate(arrays):
        top, left = pad_offsets(chw.shape[1], chw.shape[2], out_h, out_w)
        batch[i, :, top : top + chw.shape[1], left : left + chw.shape[2]] = chw
        pads.append((top, left))
    return batch, pads


def batch_shape(sizes: Iterable[tuple[str, int, int]], preprocessing: Preprocessing) -> tuple[int, int]:
    """The (H, W) of a batch holding frames of these sizes, without loading them.

    Args:
        sizes: (name, width, height) of each frame, in original pixels.

    Raises:
        ValueError: a frame too small or too elongated for the model (the message names it).
    """
    shapes = set()
    for name, width, height in sizes:
        layout = preprocessing.layout(name, width, height)
        shapes.add((layout.out_h, layout.out_w))
    if not shapes:
        raise ValueError("no frame to reconstruct")
    out_h, out_w = max(h for h, _ in shapes), max(w for _, w in shapes)
    _warn_mixed_shapes(shapes, out_h, out_w, preprocessing)
    return out_h, out_w


def prepare_frames(
    frames: Sequence[InputFrame],
    preprocessing: Preprocessing,
    progress: Progress | None = None,
    batch_hw: tuple[int, int] | None = None,
) -> PreparedFrames:
    """Load and preprocess frames into one batch.

    Args:
        batch_hw: (H, W) of the batch (from :func:`batch_shape`), so that batches of one sequence loaded in parts
            match; None: the largest preprocessed frame's.

    Raises:
        ValueError: an unreadable image, or one too small or too elongated for the model (the message names it).
    """
    arrays: list[np.ndarray] = []
    layouts: list[FrameLayout] = []
    sizes: list[tuple[int, int]] = []
    for i, frame in enumerate(frames):
        img = frame.load()
        layouts.append(preprocessing.layout(frame.name, img.width, img.height))
        arrays.append(preprocessing.image(img))
        sizes.append((img.height, img.width))
        if progress is not None:
            progress("load images", i + 1, len(frames))
    batch, pads = _batch(arrays, preprocessing, batch_hw)
    maps = [
        preprocessing.original_from_model(w0, h0, layout, pad)
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
    images: torch.Tensor | np.ndarray, preprocessing: Preprocessing, progress: Progress | None = None
) -> PreparedFrames:
    """A (S, 3, H, W) or (3, H, W) array in [0, 1]: used as is when H and W are multiples of the patch size (its
    size is then the original size), otherwise each frame goes through the image preprocessing."""
    tensor = _checked_tensor(images)
    s, _, h, w = tensor.shape
    names = [f"frame_{i:06d}.png" for i in range(s)]
    rgb = (tensor.permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
    if h % preprocessing.patch_size or w % preprocessing.patch_size:
        frames = [InputFrame(name=n, rgb=r) for n, r in zip(names, rgb, strict=True)]
        return prepare_frames(frames, preprocessing, progress)
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
