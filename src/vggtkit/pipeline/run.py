"""``reconstruct()``: images, folders, videos or a tensor in; a :class:`Reconstruction` out.

Steps: resolve inputs -> load the model (any family) -> plan the frames (nothing decoded yet) -> one pass or chunks
(asked for, or chosen from a memory budget) -> load and preprocess the frames by the family's rule (VGGT: crop / pad
to a 14-pixel grid; VGGT-Omega: balanced / max_size on its 16-pixel grid), at the resolution the checkpoint was
trained at unless one is given -> forward passes under ``torch.inference_mode`` (the aggregator in
the chosen dtype, the heads in float32) -> decode cameras, unproject depth, and map intrinsics back to every
image's original resolution. Chunked runs are described in :mod:`vggtkit.pipeline.chunked`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from vggtkit.geometry import unproject_depth_map_to_point_map
from vggtkit.inference import InferenceOptions
from vggtkit.io.preprocessing import Preprocessing
from vggtkit.onnx.runtime import OnnxVGGT
from vggtkit.pipeline.chunked import ChunkedOptions, ChunkRefiner, reconstruct_chunked
from vggtkit.pipeline.frames import PreparedFrames, prepare_tensor, preprocessing_for
from vggtkit.pipeline.inputs import InputPath, find_inputs, plan_frames
from vggtkit.pipeline.model import load_model
from vggtkit.pipeline.options import ReconstructOptions
from vggtkit.pipeline.planning import RunPlan, plan_run
from vggtkit.pipeline.prediction import prediction_from_output
from vggtkit.pipeline.streaming import FrameFeed, PathFeed, TensorFeed
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
    refine_chunk: ChunkRefiner | None = None,
    **overrides: Any,
) -> Reconstruction:
    """Reconstruct a scene: cameras, depth and points for every frame.

    ``reconstruct("photos/", model="tiny-synthetic", dtype="bfloat16")`` and
    ``reconstruct("photos/", options=ReconstructOptions(dtype="bfloat16"))`` do the same.

    Long sequences run in overlapping chunks joined into one reconstruction (``chunk_size``, or chosen from
    ``max_memory``): frames are read as their chunk starts and per-frame maps kept on disk, so memory does not
    grow with the number of frames (see :mod:`vggtkit.pipeline.chunked`).

    Args:
        inputs: image paths, a folder of images, glob patterns, video files (sampled at ``sampling.fps``), or a
            float tensor (S, 3, H, W) in [0, 1]. Files are ordered by natural name order.
        model: a model of any family (``vggtkit.VGGT``, ``vggtkit.VGGTOmega``), or anything
            :func:`vggtkit.from_pretrained` takes (bundled name, folder, weights file, hub id; default
            ``facebook/VGGT-1B`` from the Hugging Face cache); with ``runtime='onnx'`` an ``.onnx`` file written
            by ``vggtkit.onnx.export_onnx`` (or a ``vggtkit.onnx.OnnxVGGT``).
        options: device, dtype, preprocessing mode and resolution (default: the family's mode, at the resolution
            the checkpoint was trained at; an ONNX model's: the width it was exported for), reference frame, frame
            sampling, chunking and memory budget; see :class:`ReconstructOptions`.
        progress: called as ``progress(stage, done, total)``; stages: "load model", "decode <video>",
            "load images", "inference", "postprocess"; in chunked runs "inference" counts frames (a rate and a
            time left follow from it), then "loop closure" and "postprocess" count their steps.
        refine_chunk: chunked runs call it on each chunk's prediction before the chunk is aligned (e.g. bundle
            adjustment of its cameras and depths); see :data:`vggtkit.pipeline.chunked.ChunkRefiner`.
        **overrides: any :class:`ReconstructOptions` field by name, applied on top of ``options``.

    Returns:
        A :class:`Reconstruction` (numpy arrays, memory-mapped from disk in chunked runs; ``timings`` in seconds
        per stage).

    Raises:
        ValueError: bad inputs or options (the message names the problem), a checkpoint that cannot be found or
            does not match (``CheckpointError``), a memory budget too small, or :class:`InsufficientMemoryError`.
        TypeError: a keyword that is not a :class:`ReconstructOptions` field.
    """
    opts = _with_overrides(options, overrides)
    device = resolve_device(opts.device)
    is_tensor = isinstance(inputs, (torch.Tensor, np.ndarray))
    paths = None if is_tensor else find_inputs(inputs)  # cheap: typos in paths are reported first
    timings: dict[str, float] = {}
    with _stage("load model", timings, progress):
        net = load_model(model, device, opts.runtime)
    preprocessing = preprocessing_for(net, opts.mode, opts.resolution or _exported_width(net))
    opts = dataclasses.replace(
        opts, mode=preprocessing.mode
    )  # the family's default mode, when none was given
    with _stage("load images", timings):
        feed = _feed(inputs if is_tensor else paths, opts, preprocessing, progress)
    _check_reference(opts.reference, feed.num_frames)
    plan = _plan(net, feed, opts)
    inference = InferenceOptions(dtype=opts.torch_dtype, max_memory=plan.model_budget)
    if plan.chunked:
        rec = reconstruct_chunked(
            lambda images: _infer(net, images, device, inference, chunked=True),
            feed,
            plan,
            ChunkedOptions(opts.loop_closure, opts.reference, opts.mode, opts.work_dir),
            refine=refine_chunk,
            progress=progress,
        )
    else:
        rec = _one_pass(net, feed, opts, device, inference, timings, progress)
    for stage, seconds in timings.items():  # chunked runs also time loading images inside the chunks
        rec.timings[stage] = rec.timings.get(stage, 0.0) + seconds
    return rec


def _feed(
    inputs: Any, opts: ReconstructOptions, preprocessing: Preprocessing, progress: Progress | None
) -> FrameFeed:
    """The frames to reconstruct: prepared at once for a tensor, planned (nothing decoded) for files."""
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        return TensorFeed(prepare_tensor(inputs, preprocessing, progress))
    refs = plan_frames(inputs, opts.sampling.fps, opts.sampling.max_frames)
    return PathFeed(refs, preprocessing)


def _check_reference(reference: int, num_frames: int) -> None:
    if reference >= num_frames:
        raise ValueError(
            f"reference frame {reference} is out of range: {num_frames} frame(s), indices 0..{num_frames - 1}"
        )


def _plan(net: torch.nn.Module, feed: FrameFeed, opts: ReconstructOptions) -> RunPlan:
    """One pass, unless chunks are asked for or the memory budget calls for them (the frame size is read only
    then)."""
    if opts.chunk_size is None and opts.max_memory is None:
        return RunPlan.one_pass(feed.num_frames)
    return plan_run(
        net, feed.num_frames, feed.hw, opts.torch_dtype, opts.chunk_size, opts.overlap, opts.max_memory
    )


def _one_pass(
    net: torch.nn.Module | OnnxVGGT,
    feed: FrameFeed,
    opts: ReconstructOptions,
    device: torch.device,
    inference: InferenceOptions,
    timings: dict[str, float],
    progress: Progress | None,
) -> Reconstruction:
    """Every frame in one forward pass, the reference frame first (the model's world frame)."""
    with _stage("load images", timings):
        prepared = feed.take_all(progress)
    num_frames = prepared.images.shape[0]
    order = [opts.reference, *[i for i in range(num_frames) if i != opts.reference]]
    with _stage("inference", timings, progress):
        out = _infer(net, prepared.images[order], device, inference)
    with _stage("postprocess", timings, progress):
        return _postprocess(out, np.argsort(order), prepared, opts.reference, opts.mode)


def _with_overrides(options: ReconstructOptions | None, overrides: dict[str, Any]) -> ReconstructOptions:
    unknown = sorted(set(overrides) - set(_OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"reconstruct() got unknown option(s) {', '.join(unknown)}; the options are {', '.join(_OPTION_NAMES)}"
        )
    return dataclasses.replace(options or ReconstructOptions(), **overrides)


@contextlib.contextmanager
def _stage(name: str, timings: dict[str, float], progress: Progress | None = None) -> Iterator[None]:
    """Add a stage's time to ``timings[name with underscores]``; report its start and end to ``progress``."""
    start = time.perf_counter()
    if progress is not None:
        progress(name, 0, 1)
    yield
    if progress is not None:
        progress(name, 1, 1)
    key = name.replace(" ", "_")
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - start


# ----------------------------------------------------------------------------------------------- model
def _exported_width(net: torch.nn.Module | OnnxVGGT) -> int | None:
    """The width an ONNX graph was exported for (its default resolution); None for a PyTorch model."""
    return net.image_hw[1] if isinstance(net, OnnxVGGT) else None


def _run_model(
    model: torch.nn.Module, images: torch.Tensor, device: torch.device, inference: InferenceOptions
) -> dict:
    """One forward pass: images (S, 3, H, W) in [0, 1] -> the model's prediction dict (batch of 1).

    The only place the model is called. The aggregator computes in ``inference.dtype`` without autocast (its
    residual stream stays float32, its weights are not converted); the heads run in float32; chunk sizes inside
    the pass follow ``inference.max_memory``.
    """
    images = images.to(device)
    with torch.inference_mode():
        return model(images, options=inference)


def _infer(
    model: torch.nn.Module,
    images: torch.Tensor,
    device: torch.device,
    inference: InferenceOptions,
    chunked: bool = False,
) -> dict:
    """:func:`_run_model`, with running out of memory turned into an :class:`InsufficientMemoryError`."""
    try:
        return _run_model(model, images, device, inference)
    except (RuntimeError, MemoryError) as exc:
        if not _is_oom(exc):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        hw = (int(images.shape[-2]), int(images.shape[-1]))
        raise InsufficientMemoryError(
            _oom_message(len(images), hw, device, inference.dtype, chunked, model.config.patch_size)
        ) from exc


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "not enough memory" in text)


def _oom_message(
    num_frames: int, hw: tuple[int, int], device: torch.device, dtype: torch.dtype, chunked: bool, patch: int
) -> str:
    """What ran out, and the options that reduce memory, as ``option=value`` suggestions."""
    if chunked:
        tips = [f"smaller chunks (chunk_size={max(num_frames // 2, 2)})"]
    else:
        tips = [f"fewer frames (max_frames={max(num_frames // 2, 1)})"]
        if num_frames >= 4:
            tips.insert(0, f"chunks (chunk_size={num_frames // 2}, or max_memory to choose them)")
    if dtype == torch.float32:
        tips.append("dtype='bfloat16'")
    width = hw[1]
    smaller = sorted({round(width * f / patch) * patch for f in (0.75, 0.5)}, reverse=True)
    smaller = [r for r in smaller if patch <= r < width]
    if smaller:
        tips.append("a smaller resolution (" + " or ".join(f"resolution={r}" for r in smaller) + ")")
    what = "GPU memory" if device.type == "cuda" else "memory"
    advice = ", ".join(tips[:-1]) + " or " + tips[-1] if len(tips) > 1 else tips[0]
    return f"out of {what} running {num_frames} frames at {hw[1]}x{hw[0]} on {device}; try {advice}"


# ----------------------------------------------------------------------------------------------- outputs
def _postprocess(
    out: dict, inverse: np.ndarray, prepared: PreparedFrames, reference: int, mode: str
) -> Reconstruction:
    h, w = prepared.images.shape[-2:]
    names = [prepared.names[i] for i in np.argsort(inverse)]  # in the order the model saw the frames
    pred = prediction_from_output(out, np.argsort(inverse), names, (h, w)).subset(range(len(inverse)))
    world_points_from_depth = unproject_depth_map_to_point_map(pred.depth, pred.extrinsic, pred.intrinsic)
    return Reconstruction(
        pose_enc=pred.pose_enc,
        extrinsic=pred.extrinsic,
        intrinsic=pred.intrinsic,
        depth=pred.depth,
        depth_conf=pred.depth_conf,
        world_points=pred.world_points,
        world_points_conf=pred.world_points_conf,
        world_points_from_depth=world_points_from_depth.astype(np.float32),
        images=prepared.images.numpy(),
        intrinsic_original=prepared.original_from_model @ pred.intrinsic,
        original_from_model=prepared.original_from_model,
        original_hw=prepared.original_hw,
        names=prepared.names,
        image_paths=prepared.image_paths,
        reference_index=reference,
        mode=mode,
        source_frames=prepared.source_frames,
    )
