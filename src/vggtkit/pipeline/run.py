"""``reconstruct()``: images, folders, videos or a tensor in; a :class:`Reconstruction` out.

Steps: resolve inputs -> load and preprocess (crop / pad to a 14-pixel grid) -> load the model -> one forward
pass under ``torch.inference_mode`` (autocast for bfloat16 / float16) -> decode cameras, unproject depth, and
map intrinsics back to every image's original resolution.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vggtkit.geometry import pose_encoding_to_extri_intri, unproject_depth_map_to_point_map
from vggtkit.inference import InferenceOptions
from vggtkit.io.images import PATCH_SIZE, PreprocessMode, pad_offsets, preprocess_image, preprocess_layout
from vggtkit.pipeline.inputs import InputFrame, InputPath, find_inputs, resolve_inputs
from vggtkit.pipeline.reconstruction import Reconstruction
from vggtkit.weights import DEFAULT_CHECKPOINT

__all__ = ["DTYPES", "FrameSampling", "InsufficientMemoryError", "Progress", "reconstruct", "resolve_device"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


class InsufficientMemoryError(ValueError):
    """The forward pass ran out of (GPU or host) memory; the message says what to reduce."""


@dataclass(frozen=True)
class FrameSampling:
    """Which frames to use.

    Attributes:
        fps: video sampling rate in frames per second of video time (default 1, as the official demo).
        max_frames: at most this many frames in total, evenly spaced (None: all).
    """

    fps: float = 1.0
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")


_ALL_FRAMES = FrameSampling()


@dataclass
class _Prepared:
    """Preprocessed frames: images (S, 3, H, W), each frame's original (h, w) and original_from_model."""

    images: torch.Tensor
    original_hw: np.ndarray
    original_from_model: np.ndarray
    names: list[str]
    image_paths: list[str]
    source_frames: list[np.ndarray | None]


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; otherwise ``torch.device(device)``, checked to be available."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but CUDA is not available; use cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device mps was asked for but MPS is not available; use cpu or auto")
    return dev


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype}")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


# ----------------------------------------------------------------------------------------------- preprocessing
def _original_from_model(
    orig_w: int, orig_h: int, resized_w: int, resized_h: int, left: float, top: float
) -> np.ndarray:
    """3x3 map from model pixels to original pixels (pixel centres at integers) for an image resized to
    (resized_w, resized_h) whose top-left corner lands at (left, top) of the model image."""
    sx, sy = orig_w / resized_w, orig_h / resized_h  # original pixels per model pixel
    # Pixel edges scale: (u_o + 0.5) = (u_m - left + 0.5) * sx.
    return np.array([[sx, 0.0, (0.5 - left) * sx - 0.5], [0.0, sy, (0.5 - top) * sy - 0.5], [0.0, 0.0, 1.0]])


def _prepare_frames(
    frames: Sequence[InputFrame], mode: PreprocessMode, resolution: int, progress: Progress | None
) -> _Prepared:
    arrays: list[np.ndarray] = []
    layouts = []
    sizes: list[tuple[int, int]] = []
    for i, frame in enumerate(frames):
        img = frame.load()
        if min(img.width, img.height) < PATCH_SIZE:
            raise ValueError(
                f"image '{frame.name}' is {img.width}x{img.height} pixels, smaller than one {PATCH_SIZE}x"
                f"{PATCH_SIZE} patch; use images of at least {PATCH_SIZE} pixels per side"
            )
        layout = preprocess_layout(img.width, img.height, mode, resolution)
        if layout.resized_w == 0 or layout.resized_h == 0:
            raise ValueError(
                f"image '{frame.name}' ({img.width}x{img.height}) is too elongated: at {resolution} px its short "
                f"side rounds to zero {PATCH_SIZE}-pixel patches; crop it or use a larger --resolution"
            )
        arrays.append(preprocess_image(img, mode, resolution))
        layouts.append(layout)
        sizes.append((img.height, img.width))
        if progress is not None:
            progress("load images", i + 1, len(frames))
    shapes = sorted({a.shape[1:] for a in arrays})
    out_h = max(h for h, _ in shapes)
    out_w = max(w for _, w in shapes)
    if len(shapes) > 1:
        logger.warning(
            "images have different shapes after preprocessing %s; padding all with white to %dx%d "
            "(padding is excluded from exports; --mode pad gives every image the same square)",
            shapes,
            out_w,
            out_h,
        )
    batch = np.empty((len(arrays), 3, out_h, out_w), dtype=np.float32)
    maps = np.empty((len(arrays), 3, 3))
    for i, (chw, layout, (h0, w0)) in enumerate(zip(arrays, layouts, sizes, strict=True)):
        top, left = pad_offsets(chw.shape[1], chw.shape[2], out_h, out_w)
        batch[i] = 1.0
        batch[i, :, top : top + chw.shape[1], left : left + chw.shape[2]] = chw
        maps[i] = _original_from_model(
            w0, h0, layout.resized_w, layout.resized_h, layout.left + left, layout.top + top
        )
    return _Prepared(
        images=torch.from_numpy(batch),
        original_hw=np.array(sizes, dtype=np.int64),
        original_from_model=maps,
        names=[f.name for f in frames],
        image_paths=[str(f.path.resolve()) if f.path is not None else "" for f in frames],
        source_frames=[f.rgb for f in frames],
    )


def _prepare_tensor(
    images: torch.Tensor | np.ndarray, mode: PreprocessMode, resolution: int, progress: Progress | None
) -> _Prepared:
    """A (S, 3, H, W) or (3, H, W) array in [0, 1]: used as is when H and W are multiples of 14 (its size is
    then the original size), otherwise each frame goes through the image preprocessing."""
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
    s, _, h, w = tensor.shape
    names = [f"frame_{i:06d}.png" for i in range(s)]
    if h % PATCH_SIZE == 0 and w % PATCH_SIZE == 0:
        rgb = (tensor.permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
        if progress is not None:
            progress("load images", s, s)
        return _Prepared(
            images=tensor.contiguous(),
            original_hw=np.tile(np.array([h, w], np.int64), (s, 1)),
            original_from_model=np.broadcast_to(np.eye(3), (s, 3, 3)).copy(),
            names=names,
            image_paths=[""] * s,
            source_frames=list(rgb),
        )
    rgb = (tensor.permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
    frames = [InputFrame(name=n, rgb=r) for n, r in zip(names, rgb, strict=True)]
    return _prepare_frames(frames, mode, resolution, progress)


# ----------------------------------------------------------------------------------------------- model
def _load_model(model: Any, device: torch.device) -> torch.nn.Module:
    from vggtkit.models.vggt.model import VGGT

    if isinstance(model, VGGT):
        return model.to(device).eval()
    if isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a vggtkit.VGGT or a checkpoint source, got {type(model).__name__}")
    if not isinstance(model, (str, Path)):
        raise ValueError(
            f"model must be a vggtkit.VGGT or a checkpoint source (path or hub id), got {model!r}"
        )
    return VGGT.from_pretrained(model, map_location=device)


def _run_model(
    model: torch.nn.Module, images: torch.Tensor, device: torch.device, dtype: torch.dtype
) -> dict:
    """One forward pass: images (S, 3, H, W) in [0, 1] -> the model's prediction dict (batch of 1).

    The only place the model is called. The model's fast inference path computes the aggregator in ``dtype``
    (bfloat16 / float16 without autocast) and keeps the heads in float32.
    """
    images = images.to(device)
    with torch.inference_mode():
        return model(images, options=InferenceOptions(dtype=dtype))


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "not enough memory" in text)


def _oom_message(num_frames: int, hw: tuple[int, int], device: torch.device, dtype: torch.dtype) -> str:
    tips = [f"fewer frames (--max-frames {max(num_frames // 2, 1)})"]
    if dtype == torch.float32:
        tips.append("--dtype bfloat16")
    tips.append("a smaller resolution (--resolution 392 or 280)")
    what = "GPU memory" if device.type == "cuda" else "memory"
    return f"out of {what} running {num_frames} frames at {hw[1]}x{hw[0]} on {device}; try " + ", ".join(tips)


# ----------------------------------------------------------------------------------------------- main entry
def reconstruct(
    inputs: InputPath | Iterable[InputPath] | torch.Tensor | np.ndarray,
    model: Any = DEFAULT_CHECKPOINT,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "float32",
    mode: PreprocessMode = "crop",
    resolution: int = 518,
    reference: int = 0,
    sampling: FrameSampling = _ALL_FRAMES,
    progress: Progress | None = None,
) -> Reconstruction:
    """Reconstruct a scene: cameras, depth and points for every frame.

    Args:
        inputs: image paths, a folder of images, glob patterns, video files (sampled at ``sampling.fps``), or a
            float tensor (S, 3, H, W) in [0, 1]. Files are ordered by natural name order.
        model: a ``vggtkit.VGGT`` instance, or anything ``VGGT.from_pretrained`` takes (folder, weights file,
            hub id; default ``facebook/VGGT-1B`` from the Hugging Face cache).
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N", "mps" or a ``torch.device``.
        dtype: "float32" (exact), "bfloat16" or "float16" (autocast for the aggregator; faster, less memory).
        mode: "crop" (width = resolution, taller images centre-cropped) or "pad" (square, white padding).
        resolution: model input width (crop) or side (pad) in pixels, a multiple of 14 (default 518, as trained).
        reference: index (in sorted order) of the frame that defines the world frame; it is passed to the model
            first, and the outputs keep the sorted order.
        sampling: video frame rate and a limit on the number of frames.
        progress: called as ``progress(stage, done, total)``; stages: "decode <video>", "load images",
            "load model", "inference", "postprocess".

    Returns:
        A :class:`Reconstruction` (numpy arrays; ``timings`` in seconds per stage).

    Raises:
        ValueError: bad inputs or options (the message names the problem), a checkpoint that cannot be found or
            does not match (``CheckpointError``), or :class:`InsufficientMemoryError`.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if mode not in ("crop", "pad"):
        raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or resolution < PATCH_SIZE
        or resolution % PATCH_SIZE
    ):
        raise ValueError(
            f"resolution must be a positive multiple of {PATCH_SIZE} (e.g. 518), got {resolution!r}"
        )
    torch_device = resolve_device(device)
    torch_dtype = _resolve_dtype(dtype)
    is_tensor = isinstance(inputs, (torch.Tensor, np.ndarray))
    paths = None if is_tensor else find_inputs(inputs)  # cheap: typos in paths are reported first
    if isinstance(model, (str, Path)):
        from vggtkit.weights import resolve_checkpoint

        resolve_checkpoint(model)  # fail fast (missing / not cached) before decoding images and videos

    if is_tensor:
        prepared = _prepare_tensor(inputs, mode, resolution, progress)
    else:
        frames = resolve_inputs(paths, fps=sampling.fps, max_frames=sampling.max_frames, progress=progress)
        prepared = _prepare_frames(frames, mode, resolution, progress)
    num_frames = prepared.images.shape[0]
    if not 0 <= reference < num_frames:
        raise ValueError(
            f"reference frame {reference} is out of range: {num_frames} frame(s), indices 0..{num_frames - 1}"
        )
    timings["load_images"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    if progress is not None:
        progress("load model", 0, 1)
    net = _load_model(model, torch_device)
    cfg = net.config
    if not (cfg.enable_camera and cfg.enable_depth):
        raise ValueError("the model has no camera or no depth head; reconstruction needs both")
    if cfg.patch_size != PATCH_SIZE:
        raise ValueError(
            f"the model's patch size is {cfg.patch_size}; the image preprocessing uses {PATCH_SIZE}"
        )
    if progress is not None:
        progress("load model", 1, 1)
    timings["load_model"] = time.perf_counter() - t1

    order = [reference, *[i for i in range(num_frames) if i != reference]]
    inverse = np.argsort(order)
    hw = tuple(prepared.images.shape[-2:])
    t2 = time.perf_counter()
    if progress is not None:
        progress("inference", 0, 1)
    try:
        out = _run_model(net, prepared.images[order], torch_device, torch_dtype)
    except (RuntimeError, MemoryError) as exc:
        if not _is_oom(exc):
            raise
        if torch_device.type == "cuda":
            torch.cuda.empty_cache()
        raise InsufficientMemoryError(_oom_message(num_frames, hw, torch_device, torch_dtype)) from exc
    if progress is not None:
        progress("inference", 1, 1)
    timings["inference"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    rec = _postprocess(out, inverse, prepared, reference, mode)
    rec.timings.update(timings)
    rec.timings["postprocess"] = time.perf_counter() - t3
    if progress is not None:
        progress("postprocess", 1, 1)
    return rec


def _numpy(value: torch.Tensor, inverse: np.ndarray) -> np.ndarray:
    """(1, S, ...) tensor -> (S, ...) float32 numpy array back in input order."""
    return value[0].detach().float().cpu().numpy()[inverse]


def _repair_focals(intrinsic: np.ndarray, names: Sequence[str], hw: tuple[int, int]) -> None:
    """Replace non-finite or non-positive focal lengths in place (a camera head predicting a field of view of
    0, as untrained weights do): use the other axis' focal (square pixels), else a 60 degree field of view."""
    for i, K in enumerate(intrinsic):
        fx, fy = K[0, 0], K[1, 1]
        ok_x, ok_y = bool(np.isfinite(fx) and fx > 0), bool(np.isfinite(fy) and fy > 0)
        if ok_x and ok_y:
            continue
        if ok_x or ok_y:
            K[0, 0] = K[1, 1] = fx if ok_x else fy
        else:
            K[0, 0] = K[1, 1] = (max(hw) / 2) / np.tan(np.radians(30.0))
        logger.warning(
            "frame %s: the camera head predicted a degenerate field of view (fx=%.4g, fy=%.4g); using f=%.4g "
            "(untrained weights?)",
            names[i],
            fx,
            fy,
            K[0, 0],
        )


def _postprocess(
    out: dict, inverse: np.ndarray, prepared: _Prepared, reference: int, mode: str
) -> Reconstruction:
    h, w = prepared.images.shape[-2:]
    pose_enc = _numpy(out["pose_enc"], inverse)
    extrinsic, intrinsic = pose_encoding_to_extri_intri(torch.from_numpy(pose_enc).double(), (h, w))
    extrinsic_np = extrinsic.numpy()
    intrinsic_np = intrinsic.numpy()
    _repair_focals(intrinsic_np, prepared.names, (h, w))
    depth = _numpy(out["depth"], inverse)
    world_points_from_depth = unproject_depth_map_to_point_map(depth, extrinsic_np, intrinsic_np)
    has_points = "world_points" in out
    return Reconstruction(
        pose_enc=pose_enc,
        extrinsic=extrinsic_np,
        intrinsic=intrinsic_np,
        depth=depth,
        depth_conf=_numpy(out["depth_conf"], inverse),
        world_points=_numpy(out["world_points"], inverse) if has_points else None,
        world_points_conf=_numpy(out["world_points_conf"], inverse) if has_points else None,
        world_points_from_depth=world_points_from_depth.astype(np.float32),
        images=prepared.images.numpy(),
        intrinsic_original=prepared.original_from_model @ intrinsic_np,
        original_from_model=prepared.original_from_model,
        original_hw=prepared.original_hw,
        names=prepared.names,
        image_paths=prepared.image_paths,
        reference_index=reference,
        mode=mode,
        source_frames=prepared.source_frames,
    )
