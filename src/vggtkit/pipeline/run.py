"""``reconstruct()``: images, folders, videos or a tensor in; a :class:`Reconstruction` out.

Steps: resolve inputs -> load the model -> load and preprocess the frames (crop / pad to a 14-pixel grid, at
the model's own ``img_size`` unless a resolution is given) -> one forward pass under ``torch.inference_mode``
(the aggregator in the chosen dtype, the heads in float32) -> decode cameras, unproject depth, and map
intrinsics back to every image's original resolution.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vggtkit.geometry import pose_encoding_to_extri_intri, unproject_depth_map_to_point_map
from vggtkit.inference import InferenceOptions
from vggtkit.io.images import PATCH_SIZE
from vggtkit.models.vggt.model import VGGT
from vggtkit.onnx.runtime import OnnxVGGT
from vggtkit.pipeline.frames import PreparedFrames, prepare_frames, prepare_tensor
from vggtkit.pipeline.inputs import InputPath, find_inputs, resolve_inputs
from vggtkit.pipeline.options import ReconstructOptions
from vggtkit.reconstruction import Reconstruction
from vggtkit.utils.devices import resolve_device
from vggtkit.weights import DEFAULT_CHECKPOINT

__all__ = ["InsufficientMemoryError", "Progress", "reconstruct"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
Inputs = InputPath | Iterable[InputPath] | torch.Tensor | np.ndarray
_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(ReconstructOptions))


class InsufficientMemoryError(ValueError):
    """The forward pass ran out of (GPU or host) memory; the message says what to reduce."""


def reconstruct(
    inputs: Inputs,
    model: Any = DEFAULT_CHECKPOINT,
    options: ReconstructOptions | None = None,
    *,
    progress: Progress | None = None,
    **overrides: Any,
) -> Reconstruction:
    """Reconstruct a scene: cameras, depth and points for every frame.

    ``reconstruct("photos/", model="tiny-synthetic", dtype="bfloat16")`` and
    ``reconstruct("photos/", options=ReconstructOptions(dtype="bfloat16"))`` do the same.

    Args:
        inputs: image paths, a folder of images, glob patterns, video files (sampled at ``sampling.fps``), or a
            float tensor (S, 3, H, W) in [0, 1]. Files are ordered by natural name order.
        model: a ``vggtkit.VGGT`` instance, or anything ``VGGT.from_pretrained`` takes (bundled name, folder,
            weights file, hub id; default ``facebook/VGGT-1B`` from the Hugging Face cache); with
            ``runtime='onnx'`` an ``.onnx`` file written by ``vggtkit.onnx.export_onnx`` (or a
            ``vggtkit.onnx.OnnxVGGT``).
        options: device, dtype, preprocessing mode, resolution (default: the model's ``img_size``), reference
            frame and frame sampling; see :class:`ReconstructOptions`.
        progress: called as ``progress(stage, done, total)``; stages: "load model", "decode <video>",
            "load images", "inference", "postprocess".
        **overrides: any :class:`ReconstructOptions` field by name, applied on top of ``options``.

    Returns:
        A :class:`Reconstruction` (numpy arrays; ``timings`` in seconds per stage).

    Raises:
        ValueError: bad inputs or options (the message names the problem), a checkpoint that cannot be found or
            does not match (``CheckpointError``), or :class:`InsufficientMemoryError`.
        TypeError: a keyword that is not a :class:`ReconstructOptions` field.
    """
    opts = _with_overrides(options, overrides)
    device = resolve_device(opts.device)
    is_tensor = isinstance(inputs, (torch.Tensor, np.ndarray))
    paths = None if is_tensor else find_inputs(inputs)  # cheap: typos in paths are reported first
    timings: dict[str, float] = {}
    with _stage("load model", timings, progress):
        net = _load_model(model, device, opts.runtime)
    resolution = opts.resolution or _native_resolution(net)
    with _stage("load images", timings):
        if is_tensor:
            prepared = prepare_tensor(inputs, opts.mode, resolution, progress)
        else:
            frames = resolve_inputs(paths, opts.sampling.fps, opts.sampling.max_frames, progress)
            prepared = prepare_frames(frames, opts.mode, resolution, progress)
    num_frames = prepared.images.shape[0]
    if opts.reference >= num_frames:
        raise ValueError(
            f"reference frame {opts.reference} is out of range: {num_frames} frame(s), "
            f"indices 0..{num_frames - 1}"
        )
    order = [opts.reference, *[i for i in range(num_frames) if i != opts.reference]]
    with _stage("inference", timings, progress):
        out = _infer(net, prepared.images[order], device, opts.torch_dtype)
    with _stage("postprocess", timings, progress):
        rec = _postprocess(out, np.argsort(order), prepared, opts.reference, opts.mode)
    rec.timings.update(timings)
    return rec


def _with_overrides(options: ReconstructOptions | None, overrides: dict[str, Any]) -> ReconstructOptions:
    unknown = sorted(set(overrides) - set(_OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"reconstruct() got unknown option(s) {', '.join(unknown)}; the options are {', '.join(_OPTION_NAMES)}"
        )
    return dataclasses.replace(options or ReconstructOptions(), **overrides)


@contextlib.contextmanager
def _stage(name: str, timings: dict[str, float], progress: Progress | None = None) -> Iterator[None]:
    """Time a stage into ``timings[name with underscores]``; report its start and end to ``progress``."""
    start = time.perf_counter()
    if progress is not None:
        progress(name, 0, 1)
    yield
    if progress is not None:
        progress(name, 1, 1)
    timings[name.replace(" ", "_")] = time.perf_counter() - start


# ----------------------------------------------------------------------------------------------- model
def _load_model(model: Any, device: torch.device, runtime: str = "torch") -> VGGT | OnnxVGGT:
    """The model on ``device`` in eval mode (or in an onnxruntime session), checked to have what reconstruction
    needs."""
    if runtime == "onnx" or isinstance(model, OnnxVGGT):
        net = _load_onnx_model(model, device)
    elif isinstance(model, VGGT):
        net = model.to(device).eval()
    elif isinstance(model, (str, Path)):
        if str(model).lower().endswith(".onnx"):
            raise ValueError(f"{model} is an ONNX model; run it with runtime='onnx'")
        net = VGGT.from_pretrained(model, map_location=device)
    else:
        raise ValueError(
            "model must be a vggtkit.VGGT or a checkpoint source (bundled name, folder, weights file or hub "
            f"id), got {type(model).__name__}"
        )
    cfg = net.config
    if not (cfg.enable_camera and cfg.enable_depth):
        raise ValueError("the model has no camera or no depth head; reconstruction needs both")
    if cfg.patch_size != PATCH_SIZE:
        raise ValueError(
            f"the model's patch size is {cfg.patch_size}; the image preprocessing uses {PATCH_SIZE}"
        )
    return net


def _load_onnx_model(model: Any, device: torch.device) -> OnnxVGGT:
    if isinstance(model, OnnxVGGT):
        return model
    if not isinstance(model, (str, Path)):
        raise ValueError(
            f"runtime='onnx' runs an .onnx file written by vggtkit.onnx.export_onnx, got {type(model).__name__}"
        )
    return OnnxVGGT(model, device)


def _native_resolution(net: VGGT | OnnxVGGT) -> int:
    """The default input width: the size the model was trained at, or the width an ONNX graph was exported for."""
    return net.image_hw[1] if isinstance(net, OnnxVGGT) else net.config.img_size


def _run_model(
    model: torch.nn.Module, images: torch.Tensor, device: torch.device, dtype: torch.dtype
) -> dict:
    """One forward pass: images (S, 3, H, W) in [0, 1] -> the model's prediction dict (batch of 1).

    The only place the model is called. The aggregator computes in ``dtype`` without autocast (its residual
    stream stays float32, its weights are not converted); the heads run in float32.
    """
    images = images.to(device)
    with torch.inference_mode():
        return model(images, options=InferenceOptions(dtype=dtype))


def _infer(model: torch.nn.Module, images: torch.Tensor, device: torch.device, dtype: torch.dtype) -> dict:
    """:func:`_run_model`, with running out of memory turned into an :class:`InsufficientMemoryError`."""
    try:
        return _run_model(model, images, device, dtype)
    except (RuntimeError, MemoryError) as exc:
        if not _is_oom(exc):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        hw = (int(images.shape[-2]), int(images.shape[-1]))
        raise InsufficientMemoryError(_oom_message(len(images), hw, device, dtype)) from exc


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "not enough memory" in text)


def _oom_message(num_frames: int, hw: tuple[int, int], device: torch.device, dtype: torch.dtype) -> str:
    """What ran out, and the options that reduce memory, as ``option=value`` suggestions."""
    tips = [f"fewer frames (max_frames={max(num_frames // 2, 1)})"]
    if dtype == torch.float32:
        tips.append("dtype='bfloat16'")
    width = hw[1]
    smaller = sorted({round(width * f / PATCH_SIZE) * PATCH_SIZE for f in (0.75, 0.5)}, reverse=True)
    smaller = [r for r in smaller if PATCH_SIZE <= r < width]
    if smaller:
        tips.append("a smaller resolution (" + " or ".join(f"resolution={r}" for r in smaller) + ")")
    what = "GPU memory" if device.type == "cuda" else "memory"
    advice = ", ".join(tips[:-1]) + " or " + tips[-1] if len(tips) > 1 else tips[0]
    return f"out of {what} running {num_frames} frames at {hw[1]}x{hw[0]} on {device}; try {advice}"


# ----------------------------------------------------------------------------------------------- outputs
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
    out: dict, inverse: np.ndarray, prepared: PreparedFrames, reference: int, mode: str
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
