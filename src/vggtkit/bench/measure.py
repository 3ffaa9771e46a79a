"""Timing and peak memory of one forward pass, per stage, and its difference to a reference run."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from vggtkit.bench.model import ModelConfig, head_stages
from vggtkit.inference import InferenceOptions
from vggtkit.utils.memory import PeakMemory

DENSE_KEYS = (
    "pose_enc",
    "depth",
    "depth_conf",
    "world_points",
    "world_points_conf",
    "text_alignment_embedding",
)
STAGES = ("patch_embed", "aggregator", "camera_head", "depth_head", "point_head", "text_head")


# ----------------------------------------------------------------------------- measuring
def matmul_peak_flops(dtype: torch.dtype, device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of a (size x size) @ (size x size) product in ``dtype`` on ``device``."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = math.inf
    for _ in range(repeats + 1):
        _sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class PathResult:
    """One timed forward pass."""

    label: str
    steps_s: list[float]  # patch embedder, each block, each head, then the rest (outputs, clean-up)
    total_s: float
    baseline_bytes: int
    peak_bytes: int
    outputs: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    @property
    def delta_bytes(self) -> int:
        return max(0, self.peak_bytes - self.baseline_bytes)


def run_path(
    model: torch.nn.Module,
    images: torch.Tensor,
    options: InferenceOptions,
    label: str,
    keep_outputs: bool = True,
) -> PathResult:
    """Time one forward pass per stage (from the model's progress ticks) and measure its peak memory."""
    device = images.device
    meter = PeakMemory(device)
    marks: list[float] = []

    def progress(done: int, total: int) -> None:
        _sync(device)
        marks.append(time.perf_counter())

    baseline = meter.start()
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model(images, options=options, progress=progress)
    _sync(device)
    end = time.perf_counter()
    peak = meter.stop()
    bounds = [start, *marks, end]
    steps = [b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    outputs = {k: out[k].detach().float().cpu() for k in DENSE_KEYS if k in out} if keep_outputs else {}
    del out
    return PathResult(label, steps, end - start, baseline, peak, outputs)


def stage_times(steps: Sequence[float], config: ModelConfig) -> dict[str, float]:
    """Per-step durations (see :class:`PathResult`) -> seconds per stage (patch_embed, aggregator, heads)."""
    n_blocks = 2 * config.depth
    out = {"patch_embed": steps[0], "aggregator": sum(steps[1 : 1 + n_blocks])}
    for i, name in enumerate(head_stages(config)):
        out[name] = steps[1 + n_blocks + i]
    return out


def compare_outputs(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, float]:
    """Largest differences to the reference outputs.

    Returns:
        ``max_abs_diff`` (over all dense outputs, finite entries), ``max_rel_diff`` (|a-b| / (1+|b|), the golden
        criterion), ``depth_median_rel_err`` and ``pose_max_abs_err``; NaN where an output is missing.
    """
    max_abs, max_rel = 0.0, 0.0
    for key in DENSE_KEYS:
        if key in ours and key in ref:
            a, b = ours[key].double(), ref[key].double()
            finite = torch.isfinite(a) & torch.isfinite(b)
            if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
                max_abs = max_rel = math.inf
                continue
            diff = (a - b).abs()[finite]
            if diff.numel():
                max_abs = max(max_abs, diff.max().item())
                max_rel = max(max_rel, (diff / (1 + b.abs()[finite])).max().item())
    result = {"max_abs_diff": max_abs, "max_rel_diff": max_rel}
    if "depth" in ours and "depth" in ref:
        rel = ((ours["depth"] - ref["depth"]).abs() / ref["depth"].abs().clamp_min(1e-12)).flatten()
        result["depth_median_rel_err"] = rel.median().item()
    else:
        result["depth_median_rel_err"] = math.nan
    if "pose_enc" in ours and "pose_enc" in ref:
        result["pose_max_abs_err"] = (ours["pose_enc"] - ref["pose_enc"]).abs().max().item()
    else:
        result["pose_max_abs_err"] = math.nan
    return result
