"""Forward-pass benchmark cases: time per stage, peak memory and FLOP/s of the fast path against the reference path.

Used by ``vggtkit bench`` and ``benchmarks/forward.py``. Every (configuration, device, frames, size) case runs in
a fresh process (peak RSS per case), builds a random-weight model, and runs the requested paths in alternating
order ``repeats`` times. Times are robust to other processes sharing the CPU: each path's time is the sum over its
steps (patch embedder, each of the 2*depth blocks, each head) of the fastest run of that step (``total_s``); the
fastest whole run is ``wall_s``. Peak memory is the largest over the runs. The reference path's outputs are the
oracle: each fast path reports its largest difference to them.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from vggtkit.bench.measure import (
    STAGES,
    PathResult,
    compare_outputs,
    matmul_peak_flops,
    run_path,
    stage_times,
)
from vggtkit.bench.model import BENCH_CONFIGS, ModelConfig, bench_config, forward_flops, random_model
from vggtkit.inference import ExecutionPlan, InferenceOptions, weights_nbytes
from vggtkit.utils.dtypes import dtype_name, parse_dtype

logger = logging.getLogger(__name__)

CONFIGS = tuple(BENCH_CONFIGS)


# ----------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class PathSpec:
    """A named set of inference options to benchmark."""

    label: str
    options: InferenceOptions

    @classmethod
    def parse(cls, text: str) -> PathSpec:
        """'reference', 'float32', 'bfloat16', 'bfloat16+heads' (heads in bfloat16 too), 'float16', ...

        A suffix '+store' stores the kept layers in the compute dtype; '+weights' converts the weights.
        """
        if text == "reference":
            return cls(text, InferenceOptions.reference())
        base, *flags = text.split("+")
        dtype = parse_dtype(base, "path dtype")
        unknown = set(flags) - {"heads", "weights", "store"}
        if unknown:
            raise ValueError(
                f"unknown path flag(s) {sorted(unknown)} in {text!r}; use +heads, +weights, +store"
            )
        options = InferenceOptions(
            dtype=dtype,
            heads_dtype=dtype if "heads" in flags else None,
            weights_dtype=dtype if "weights" in flags else None,
            store_layers_dtype=dtype if "store" in flags else None,
        )
        return cls(text, options)


@dataclass(frozen=True)
class Case:
    config: str
    device: str
    frames: int
    height: int
    width: int
    paths: tuple[str, ...]
    repeats: int = 1
    batch: int = 1
    seed: int = 0
    frame_chunk_size: int | None = None
    max_memory: str | None = None


def _with_overrides(options: InferenceOptions, case: Case) -> InferenceOptions:
    if options.reference_path or (case.frame_chunk_size is None and case.max_memory is None):
        return options
    changes: dict[str, Any] = {"frame_chunk_size": case.frame_chunk_size}
    if case.max_memory is not None:
        changes["max_memory"] = case.max_memory
    return InferenceOptions(**{**options.__dict__, **changes})


@dataclass
class _PathStats:
    """What the repeats of one path measured: the fastest run, each step's fastest time, the largest peak."""

    best: PathResult | None = None
    step_min: list[float] | None = None
    peak_delta: int = 0
    weights_bytes: int = 0
    errors: dict[str, float] | None = None

    def add(self, result: PathResult, weights_bytes: int) -> None:
        self.peak_delta = max(self.peak_delta, result.delta_bytes)
        self.weights_bytes = weights_bytes
        if self.best is None or result.total_s < self.best.total_s:
            self.best = result
        steps = self.step_min or result.steps_s
        self.step_min = [min(a, b) for a, b in zip(steps, result.steps_s, strict=True)]

    @property
    def robust_s(self) -> float:
        """Other processes share the CPU: the sum over the steps (patch embedder, each block, each head) of the
        fastest run of that step."""
        return sum(self.step_min or [])


def _run_order(specs: list[PathSpec], repeats: int) -> list[PathSpec]:
    """Alternate the order of the paths between repeats so that none always runs first; paths that convert the
    weights (one-way) run after all repeats of the others."""
    convertible = [s for s in specs if s.options.weights_dtype is None]
    converting = [s for s in specs if s.options.weights_dtype is not None]
    order = [spec for r in range(repeats) for spec in (convertible if r % 2 == 0 else convertible[::-1])]
    return order + [spec for _ in range(repeats) for spec in converting]


def _warm_up(model: torch.nn.Module, specs: list[PathSpec], patch_size: int, device: torch.device) -> None:
    """One pass per path on a small input, so that one-time library set-up is not timed."""
    with torch.inference_mode():
        small = torch.rand(1, 1, 3, 2 * patch_size, 2 * patch_size, device=device)
        for spec in specs:
            if spec.options.weights_dtype is None:
                model(small, options=spec.options)


def run_case(case: Case) -> list[dict[str, Any]]:
    """Run one case in this process; returns one result row per path."""
    device = torch.device(case.device)
    config = bench_config(case.config)
    torch.manual_seed(case.seed)
    build_start = time.perf_counter()
    model = random_model(config, case.seed, device)
    build_s = time.perf_counter() - build_start
    images = torch.rand(
        case.batch, case.frames, 3, case.height, case.width, generator=torch.Generator().manual_seed(1)
    ).to(device)
    specs = [PathSpec.parse(p) for p in case.paths]
    # The reference runs first (its outputs are the oracle); weight conversion is one-way, so those paths run last.
    specs.sort(key=lambda s: (not s.options.reference_path, s.options.weights_dtype is not None))
    peaks = {dt: matmul_peak_flops(dt, device) for dt in {torch.float32, *(s.options.dtype for s in specs)}}
    _warm_up(model, specs, config.patch_size, device)
    loadavg_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    stats = {spec.label: _PathStats() for spec in specs}
    reference: dict[str, torch.Tensor] | None = None
    for spec in _run_order(specs, case.repeats):
        options = _with_overrides(spec.options, case)
        model.convert_weights(options)
        result = run_path(model, images, options, spec.label)
        logger.info(
            "%s %s: %.2f s, peak +%.0f MB", case, spec.label, result.total_s, result.delta_bytes / 1e6
        )
        stats[spec.label].add(result, weights_nbytes(model))
        if spec.options.reference_path and reference is None:
            reference = result.outputs
        elif reference is not None and stats[spec.label].errors is None:
            stats[spec.label].errors = compare_outputs(result.outputs, reference)
        result.outputs = {}
    context = {
        "build_s": build_s,
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
    }
    ref_label = next((s.label for s in specs if s.options.reference_path), None)
    flops = sum(forward_flops(config, case.batch, case.frames, case.height, case.width).values())
    with torch.no_grad():
        plans = {s.label: model.plan(images, _with_overrides(s.options, case)) for s in specs}
    return [
        {
            **_row(case, spec, stats, ref_label, plans[spec.label], config),
            **_rates(flops, stats[spec.label].robust_s, peaks[spec.options.dtype]),
            **context,
        }
        for spec in specs
    ]


def _row(
    case: Case,
    spec: PathSpec,
    stats: dict[str, _PathStats],
    ref_label: str | None,
    plan: ExecutionPlan,
    config: ModelConfig,
) -> dict[str, Any]:
    s = stats[spec.label]
    res = s.best
    options = _with_overrides(spec.options, case)
    ref = stats.get(ref_label) if ref_label else None
    return {
        "config": case.config,
        "device": case.device,
        "batch": case.batch,
        "frames": case.frames,
        "height": case.height,
        "width": case.width,
        "path": spec.label,
        "dtype": dtype_name(options.dtype),
        "heads_dtype": dtype_name(options.effective_heads_dtype),
        "store_dtype": dtype_name(options.effective_store_dtype),
        "frame_chunk": plan.frame_chunk,
        "head_chunk": plan.head_chunk,
        "token_chunk": plan.token_chunk,
        "repeats": case.repeats,
        **{f"{stage}_s": stage_times(s.step_min, config).get(stage, math.nan) for stage in STAGES},
        "total_s": s.robust_s,
        "wall_s": res.total_s,
        "baseline_mb": res.baseline_bytes / 1e6,
        "peak_mb": (res.baseline_bytes + s.peak_delta) / 1e6,
        "peak_delta_mb": s.peak_delta / 1e6,
        "weights_mb": s.weights_bytes / 1e6,
        "speedup_vs_reference": math.nan if ref is None else ref.robust_s / s.robust_s,
        "wall_speedup_vs_reference": math.nan if ref is None else ref.best.total_s / res.total_s,
        "mem_ratio_vs_reference": math.nan
        if ref is None or not s.peak_delta
        else ref.peak_delta / s.peak_delta,
        **(s.errors or {}),
    }


def _rates(flops: int, seconds: float, peak_flops: float) -> dict[str, float]:
    return {
        "gflop": flops / 1e9,
        "achieved_gflops": flops / seconds / 1e9,
        "peak_gflops": peak_flops / 1e9,
        "pct_of_peak": 100 * flops / seconds / peak_flops,
    }


def _run_case_logged(case: Case) -> list[dict[str, Any]]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_case(case)


def run_cases(
    cases: Sequence[Case], isolate: bool = True, timeout_s: float | None = None
) -> list[dict[str, Any]]:
    """Run each case (in a fresh process when ``isolate``, so peak RSS is per case); failures become rows."""
    rows: list[dict[str, Any]] = []
    for i, case in enumerate(cases, start=1):
        logger.info("case %d/%d: %s", i, len(cases), case)
        try:
            if isolate:
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                    rows.extend(pool.submit(_run_case_logged, case).result(timeout=timeout_s))
            else:
                rows.extend(run_case(case))
        except Exception as exc:  # one failing case (e.g. out of memory) must not lose the others
            logger.error("case %s failed: %s", case, exc)
            rows.append(
                {**case.__dict__, "paths": "+".join(case.paths), "error": f"{type(exc).__name__}: {exc}"}
            )
    return rows
