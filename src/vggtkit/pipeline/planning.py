"""One pass or chunks: split a sequence into overlapping chunks, and choose a chunk size that fits a memory budget.

The memory of a forward pass comes from the model's own planner (``model.plan(images, InferenceOptions(
max_memory=...))``, which raises a ValueError when the weights plus the pass's tensors cannot fit); the pipeline
adds what it holds itself for each frame in flight: the input image, the outputs as numpy arrays and the point maps
computed from them, counted as :data:`PIPELINE_BYTES_PER_PIXEL` bytes per model pixel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from vggtkit.inference import InferenceOptions
from vggtkit.utils.memory import format_bytes

__all__ = ["RunPlan", "ChunkSpan", "chunk_spans", "default_overlap", "owned_ranges", "plan_run"]

logger = logging.getLogger(__name__)

# Per model pixel of a frame in flight: the float32 image (12), depth and confidence (8), the depth-branch point
# map in float64 while it is computed and in float32 after (36), and a point-head map with its confidence (16),
# minus what the model's planner already counts for its outputs.
PIPELINE_BYTES_PER_PIXEL = 64
MIN_CHUNK = 2


@dataclass(frozen=True)
class ChunkSpan:
    """Frames ``start`` to ``stop`` (excluded) of the sequence, run through the model together."""

    index: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def default_overlap(chunk_size: int) -> int:
    """Frames shared by consecutive chunks when not given: a quarter of a chunk, at least one."""
    return max(1, chunk_size // 4)


def chunk_spans(num_frames: int, chunk_size: int, overlap: int) -> list[ChunkSpan]:
    """Overlapping chunks covering ``num_frames`` frames.

    Consecutive chunks share ``overlap`` frames; the last chunk ends at the last frame and is as long as the
    others (it then shares more frames with the one before).

    Raises:
        ValueError: ``overlap`` is not smaller than ``chunk_size``.
    """
    if not 0 < overlap < chunk_size:
        raise ValueError(f"overlap must lie in 1..chunk_size-1 ({chunk_size - 1}), got {overlap}")
    spans: list[ChunkSpan] = []
    start = 0
    while True:
        stop = min(start + chunk_size, num_frames)
        spans.append(ChunkSpan(len(spans), start, stop))
        if stop >= num_frames:
            return spans
        start = min(start + chunk_size - overlap, num_frames - chunk_size)


def owned_ranges(spans: list[ChunkSpan]) -> list[tuple[int, int]]:
    """Which chunk's prediction each frame keeps: (first, stop) per chunk.

    A frame shared by two chunks is taken from the earlier one in the first half of their overlap and from the
    later one in the second half, so that every frame comes from a chunk that also saw frames on both sides of it.
    """
    bounds = [spans[0].start]
    for before, after in zip(spans, spans[1:], strict=False):
        bounds.append(after.start + (before.stop - after.start) // 2)
    bounds.append(spans[-1].stop)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@dataclass(frozen=True)
class RunPlan:
    """How a sequence is run: in one pass, or in chunks.

    Attributes:
        chunk_size: frames per chunk (None: one pass over every frame).
        overlap: frames shared by consecutive chunks (0 for one pass).
        spans: the chunks for the expected number of frames (one span for one pass).
        model_budget: ``max_memory`` of each forward pass in bytes (None: no budget).
        reason: one line saying why ("" when nothing was decided: one pass, no budget).
    """

    chunk_size: int | None
    overlap: int
    spans: list[ChunkSpan]
    model_budget: int | None
    reason: str = ""

    @property
    def chunked(self) -> bool:
        return self.chunk_size is not None

    @classmethod
    def one_pass(cls, num_frames: int, model_budget: int | None = None, reason: str = "") -> RunPlan:
        return cls(None, 0, [ChunkSpan(0, 0, num_frames)], model_budget, reason)


def _pipeline_bytes(frames: int, hw: tuple[int, int]) -> int:
    return frames * hw[0] * hw[1] * PIPELINE_BYTES_PER_PIXEL


def _estimate(
    model: torch.nn.Module, frames: int, hw: tuple[int, int], dtype: torch.dtype, budget: int, held: int
) -> int | None:
    """Estimated peak bytes of a forward pass over ``frames`` frames plus ``held`` bytes of the pipeline, or None
    when that does not fit in ``budget``."""
    if budget <= held:
        return None
    device = next(model.parameters()).device
    images = torch.zeros((), device=device).expand(1, frames, 3, *hw)  # the shape, without the memory
    try:
        with torch.inference_mode():
            plan = model.plan(images, InferenceOptions(dtype=dtype, max_memory=budget - held))
    except ValueError:
        return None
    return plan.estimated_bytes + held


def _largest_fitting_chunk(
    model: torch.nn.Module, num_frames: int, hw: tuple[int, int], dtype: torch.dtype, budget: int
) -> tuple[int, int] | None:
    """(chunk size, its estimated peak) of the largest chunk that fits with its overlap, or None."""
    lo, hi, found = MIN_CHUNK, num_frames, None
    while lo <= hi:  # memory grows with the chunk size: bisect
        size = (lo + hi) // 2
        peak = _estimate(model, size, hw, dtype, budget, _pipeline_bytes(size + default_overlap(size), hw))
        if peak is None:
            hi = size - 1
        else:
            found, lo = (size, peak), size + 1
    return found


def _budget_text(budget: int) -> str:
    return f"max_memory={format_bytes(budget)}"


def _auto_plan(
    model: torch.nn.Module, num_frames: int, hw: tuple[int, int], dtype: torch.dtype, budget: int
) -> RunPlan:
    """One pass when it fits in ``budget``, else the largest chunks that do."""
    size = f"{num_frames} frames of {hw[1]}x{hw[0]}"
    held = _pipeline_bytes(num_frames, hw)
    one_pass = _estimate(model, num_frames, hw, dtype, budget, held)
    if one_pass is not None:
        reason = f"one pass fits: {size} need about {format_bytes(one_pass)} of {_budget_text(budget)}"
        return RunPlan.one_pass(num_frames, budget - held, reason)
    found = _largest_fitting_chunk(model, num_frames, hw, dtype, budget)
    if found is None:
        raise ValueError(
            f"{_budget_text(budget)} is too small even for chunks of {MIN_CHUNK} frames of {hw[1]}x{hw[0]}; raise "
            "it, use a smaller resolution or dtype='bfloat16'"
        )
    chunk_size, peak = found
    overlap = default_overlap(chunk_size)
    spans = chunk_spans(num_frames, chunk_size, overlap)
    reason = (
        f"one pass over {size} does not fit in {_budget_text(budget)}; running {len(spans)} chunks of "
        f"{chunk_size} frames overlapping by {overlap} (about {format_bytes(peak)} each)"
    )
    return RunPlan(chunk_size, overlap, spans, budget - _pipeline_bytes(chunk_size + overlap, hw), reason)


def _checked_budget(
    model: torch.nn.Module,
    num_frames: int,
    hw: tuple[int, int],
    dtype: torch.dtype,
    frames: int,
    held: int,
    budget: int,
) -> int:
    """The forward pass's share of ``budget`` for ``frames`` frames; a ValueError with a chunk size that fits when
    they do not."""
    if _estimate(model, frames, hw, dtype, budget, held) is None:
        fitting = _largest_fitting_chunk(model, num_frames, hw, dtype, budget)
        advice = f"chunk_size={fitting[0]}" if fitting else "a smaller resolution or dtype='bfloat16'"
        raise ValueError(
            f"chunks of {frames} frames of {hw[1]}x{hw[0]} do not fit in {_budget_text(budget)}; use {advice}"
        )
    return budget - held


def _given_plan(
    model: torch.nn.Module,
    num_frames: int,
    hw: tuple[int, int],
    dtype: torch.dtype,
    chunk_size: int,
    overlap: int | None,
    budget: int | None,
) -> RunPlan:
    if chunk_size >= num_frames:
        held = _pipeline_bytes(num_frames, hw)
        model_budget = (
            None
            if budget is None
            else _checked_budget(model, num_frames, hw, dtype, num_frames, held, budget)
        )
        return RunPlan.one_pass(
            num_frames, model_budget, f"chunk_size={chunk_size} covers all {num_frames} frames: one pass"
        )
    overlap = default_overlap(chunk_size) if overlap is None else overlap
    spans = chunk_spans(num_frames, chunk_size, overlap)
    model_budget = None
    if budget is not None:
        held = _pipeline_bytes(chunk_size + overlap, hw)
        model_budget = _checked_budget(model, num_frames, hw, dtype, chunk_size, held, budget)
    reason = (
        f"running {len(spans)} chunks of {chunk_size} frames overlapping by {overlap} ({num_frames} frames)"
    )
    return RunPlan(chunk_size, overlap, spans, model_budget, reason)


def plan_run(
    model: torch.nn.Module,
    num_frames: int,
    hw: tuple[int, int],
    dtype: torch.dtype,
    chunk_size: int | None,
    overlap: int | None,
    max_memory: int | None,
) -> RunPlan:
    """Decide between one pass and chunks, and log the decision in one line.

    With ``chunk_size``, chunks of that size (checked against ``max_memory`` when given); without it but with
    ``max_memory``, one pass when the model's planner says it fits, otherwise the largest chunk size that fits;
    with neither, one pass.

    Args:
        model: a model with ``plan(images, options)`` (every vggtkit model family).
        num_frames: frames in the sequence; hw: (H, W) of the model's input.
        dtype: compute precision of the forward pass.
        chunk_size, overlap: asked for by the caller, or None.
        max_memory: budget in bytes, or None.

    Raises:
        ValueError: the budget is too small for the asked chunks, or for any chunk.
    """
    if chunk_size is not None:
        plan = _given_plan(model, num_frames, hw, dtype, chunk_size, overlap, max_memory)
    elif max_memory is not None:
        plan = _auto_plan(model, num_frames, hw, dtype, max_memory)
    else:
        return RunPlan.one_pass(num_frames)
    logger.info("%s", plan.reason)
    return plan
