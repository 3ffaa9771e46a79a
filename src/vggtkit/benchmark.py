"""Forward-pass benchmark: time per stage, peak memory and FLOP/s of the fast path against the reference path.

Used by ``vggtkit bench`` and ``benchmarks/forward.py``. Every (configuration, device, frames, size) case runs in
a fresh process (peak RSS per case), builds a random-weight model, and runs the requested paths in alternating
order ``repeats`` times. Times are robust to other processes sharing the CPU: each path's time is the sum over its
steps (patch embedder, each of the 2*depth blocks, each head) of the fastest run of that step (``total_s``); the
fastest whole run is ``wall_s``. Peak memory is the largest over the runs. The reference path's outputs are the
oracle: each fast path reports its largest difference to them.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vggtkit.inference import InferenceOptions, parse_dtype, weights_nbytes
from vggtkit.models.vggt.config import VGGTConfig, preset_config
from vggtkit.utils.memory import PeakMemory

logger = logging.getLogger(__name__)

CONFIGS = ("tiny", "1b")
DENSE_KEYS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
STAGES = ("patch_embed", "aggregator", "camera_head", "depth_head", "point_head")


# ----------------------------------------------------------------------------- model and inputs
def random_model(config: VGGTConfig, seed: int = 0, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A random-weight VGGT built on the meta device and filled cheaply (seconds, not minutes, for VGGT-1B).

    Matrices get uniform values in +-1/sqrt(fan_in) (tiled from one random block, so filling is a memory copy),
    LayerScale 0.01 (aggregator, heads) or 1 (DINOv2), norms weight 1 and bias 0, other vectors small values.
    """
    from vggtkit.models.vggt.model import VGGT

    with torch.device("meta"):
        model = VGGT(config)
    model = model.to_empty(device=device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    block = (torch.rand(1 << 20, generator=gen) * 2 - 1).to(device)
    offset = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            flat = param.view(-1)
            if param.ndim >= 2:
                bound = 1.0 / math.sqrt(param[0].numel())
                for start in range(0, flat.numel(), block.numel()):
                    stop = min(start + block.numel(), flat.numel())
                    flat[start:stop].copy_(block.roll(offset)[: stop - start])
                    offset += 7919
                flat.mul_(bound)
            elif name.endswith("gamma"):
                param.fill_(1.0 if ".patch_embed." in name else 0.01)
            elif "norm" in name and name.endswith("weight"):
                param.fill_(1.0)
            elif "norm" in name and name.endswith("bias"):
                param.zero_()
            else:
                param.copy_(block[: flat.numel()].view_as(param) * 0.02)
    return model.eval()


def parse_size(text: str) -> tuple[int, int]:
    """'518x392' (width x height, as images are usually described) -> (height, width)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"image size must look like WIDTHxHEIGHT, e.g. 518x392, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {text!r}")
    return h, w


# ----------------------------------------------------------------------------- FLOPs
def _block_flops(tokens: int, seq: int, dim: int, mlp_ratio: float) -> int:
    """Matrix products of one transformer block over ``tokens`` tokens in sequences of ``seq``."""
    hidden = int(dim * mlp_ratio)
    linear = 2 * tokens * (4 * dim * dim + 2 * dim * hidden)
    return linear + 4 * tokens * seq * dim


def _dpt_flops(c: VGGTConfig, H: int, W: int, feature_only: bool, down_ratio: int, features: int) -> int:
    """Convolutions of one DPT head on one frame."""
    p = c.patch_size
    gh, gw = H // p, W // p
    cin, oc, F = 2 * c.embed_dim, c.dpt_out_channels, features

    def conv(h: int, w: int, ci: int, co: int, k: int) -> int:
        return 2 * h * w * ci * co * k * k

    h4, w4 = (gh - 1) // 2 + 1, (gw - 1) // 2 + 1
    sizes = [(4 * gh, 4 * gw), (2 * gh, 2 * gw), (gh, gw), (h4, w4)]
    total = sum(conv(gh, gw, cin, o, 1) for o in oc)
    total += (
        2 * gh * gw * oc[0] * oc[0] * 16 + 2 * gh * gw * oc[1] * oc[1] * 4 + conv(h4, w4, oc[3], oc[3], 3)
    )
    total += sum(conv(h, w, o, F, 3) for (h, w), o in zip(sizes, oc, strict=True))
    total += 2 * conv(*sizes[3], F, F, 3) + conv(*sizes[2], F, F, 1)  # refinenet4
    total += 4 * conv(*sizes[2], F, F, 3) + conv(*sizes[1], F, F, 1)  # refinenet3
    total += 4 * conv(*sizes[1], F, F, 3) + conv(*sizes[0], F, F, 1)  # refinenet2
    total += 4 * conv(*sizes[0], F, F, 3) + conv(8 * gh, 8 * gw, F, F, 1)  # refinenet1
    total += conv(8 * gh, 8 * gw, F, F if feature_only else F // 2, 3)
    if not feature_only:
        oh, ow = gh * p // down_ratio, gw * p // down_ratio
        total += conv(oh, ow, F // 2, 32, 3)
    return total


def forward_flops(config: VGGTConfig, B: int, S: int, H: int, W: int) -> dict[str, int]:
    """Multiply-add FLOPs (x2) of the matrix products and convolutions of one forward pass, per stage.

    Counts what ``torch.utils.flop_counter.FlopCounterMode`` counts (tests check the two agree), without the
    track head. The tiny output convolutions of the DPT heads (32 -> 2 or 4 channels) are included.
    """
    c = config
    p = c.patch_size
    g = (H // p) * (W // p)
    n = B * S
    P = c.patch_start_idx + g
    out: dict[str, int] = {}
    embed = 2 * n * g * c.embed_dim * 3 * p * p
    if c.patch_embed == "dinov2":
        T = 1 + c.num_register_tokens + g
        embed += c.patch_embed_depth * _block_flops(n * T, T, c.embed_dim, c.mlp_ratio)
    out["patch_embed"] = embed
    out["aggregator"] = c.depth * (
        _block_flops(n * P, P, c.embed_dim, c.mlp_ratio)
        + _block_flops(n * P, S * P, c.embed_dim, c.mlp_ratio)
    )
    if c.enable_camera:
        d = 2 * c.embed_dim
        per_iter = c.camera_trunk_depth * _block_flops(n, S, d, c.mlp_ratio)
        per_iter += 2 * n * (9 * d + d * 3 * d + d * (d // 2) + (d // 2) * 9)
        out["camera_head"] = 4 * per_iter
    for name, enabled, dim in (("depth_head", c.enable_depth, 2), ("point_head", c.enable_point, 4)):
        if enabled:
            out[name] = n * (_dpt_flops(c, H, W, False, 1, c.dpt_features) + 2 * H * W * 32 * dim)
    return out


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


def stage_times(steps: Sequence[float], config: VGGTConfig) -> dict[str, float]:
    """Per-step durations (see :class:`PathResult`) -> seconds per stage (patch_embed, aggregator, heads)."""
    n_blocks = 2 * config.depth
    heads = [name for name, on in (("camera_head", config.enable_camera), ("depth_head", config.enable_depth),
                                   ("point_head", config.enable_point)) if on]  # fmt: skip
    out = {"patch_embed": steps[0], "aggregator": sum(steps[1 : 1 + n_blocks])}
    for i, name in enumerate(heads):
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


def run_case(case: Case) -> list[dict[str, Any]]:
    """Run one case in this process; returns one result row per path."""
    from vggtkit.inference import plan_inference, prepare_model

    device = torch.device(case.device)
    config = preset_config(case.config)
    torch.manual_seed(case.seed)
    build_start = time.perf_counter()
    model = random_model(config, case.seed, device)
    build_s = time.perf_counter() - build_start
    images = torch.rand(
        case.batch, case.frames, 3, case.height, case.width, generator=torch.Generator().manual_seed(1)
    )
    images = images.to(device)
    specs = [PathSpec.parse(p) for p in case.paths]
    # The reference runs first (its outputs are the oracle); weight conversion is one-way, so those paths run last.
    specs.sort(key=lambda s: (not s.options.reference_path, s.options.weights_dtype is not None))
    peaks = {dt: matmul_peak_flops(dt, device) for dt in {torch.float32, *(s.options.dtype for s in specs)}}
    flops = forward_flops(config, case.batch, case.frames, case.height, case.width)
    weights_bytes = weights_nbytes(model)
    # Warm-up on a small input so one-time library set-up is not timed.
    with torch.inference_mode():
        small = torch.rand(1, 1, 3, 2 * config.patch_size, 2 * config.patch_size, device=device)
        for spec in specs:
            if spec.options.weights_dtype is None:
                model(small, options=spec.options)
    loadavg_start = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    best: dict[str, PathResult] = {}
    step_min: dict[str, list[float]] = {}
    path_weights: dict[str, int] = {}
    peak_delta: dict[str, int] = {}
    reference: dict[str, torch.Tensor] | None = None
    errors: dict[str, dict[str, float]] = {}
    convertible = [s for s in specs if s.options.weights_dtype is None]
    converting = [s for s in specs if s.options.weights_dtype is not None]
    # Alternate the order of the paths between repeats so that none always runs first; paths that convert the
    # weights (one-way) run after all repeats of the others.
    run_order = [
        spec for r in range(case.repeats) for spec in (convertible if r % 2 == 0 else convertible[::-1])
    ]
    run_order += [spec for r in range(case.repeats) for spec in converting]
    for spec in run_order:
        options = _with_overrides(spec.options, case)
        prepare_model(model, options)
        result = run_path(model, images, options, spec.label)
        logger.info(
            "%s %s: %.2f s, peak +%.0f MB", case, spec.label, result.total_s, result.delta_bytes / 1e6
        )
        peak_delta[spec.label] = max(peak_delta.get(spec.label, 0), result.delta_bytes)
        path_weights[spec.label] = weights_nbytes(model)
        if spec.options.reference_path and reference is None:
            reference = result.outputs
        elif reference is not None and spec.label not in errors:
            errors[spec.label] = compare_outputs(result.outputs, reference)
        result.outputs = {}
        if spec.label not in best or result.total_s < best[spec.label].total_s:
            best[spec.label] = result
        previous = step_min.get(spec.label, result.steps_s)
        step_min[spec.label] = [min(a, b) for a, b in zip(previous, result.steps_s, strict=True)]
    rows = []
    # Other processes share the CPU: the robust time of a path is the sum over its steps (patch embedder, each
    # block, each head) of the fastest run of that step; the wall time is the fastest whole run.
    robust = {label: sum(steps) for label, steps in step_min.items()}
    ref_label = next((s.label for s in specs if s.options.reference_path), None)
    for spec in specs:
        res = best[spec.label]
        total_s = robust[spec.label]
        options = _with_overrides(spec.options, case)
        plan = None
        if not options.reference_path:
            plan = plan_inference(config, tuple(images.shape), options, device, weights_bytes)
        total_flops = sum(flops.values())
        row: dict[str, Any] = {
            "config": case.config,
            "device": case.device,
            "batch": case.batch,
            "frames": case.frames,
            "height": case.height,
            "width": case.width,
            "path": spec.label,
            "dtype": str(options.dtype).removeprefix("torch."),
            "heads_dtype": str(options.effective_heads_dtype).removeprefix("torch."),
            "store_dtype": str(options.effective_store_dtype).removeprefix("torch."),
            "frame_chunk": None if plan is None else plan.frame_chunk,
            "head_chunk": None if plan is None else plan.head_chunk,
            "token_chunk": None if plan is None else plan.token_chunk,
            "repeats": case.repeats,
            **{f"{s}_s": stage_times(step_min[spec.label], config).get(s, math.nan) for s in STAGES},
            "total_s": total_s,
            "wall_s": res.total_s,
            "baseline_mb": res.baseline_bytes / 1e6,
            "peak_mb": (res.baseline_bytes + peak_delta[spec.label]) / 1e6,
            "peak_delta_mb": peak_delta[spec.label] / 1e6,
            "weights_mb": path_weights[spec.label] / 1e6,
            "gflop": total_flops / 1e9,
            "achieved_gflops": total_flops / total_s / 1e9,
            "peak_gflops": peaks[options.dtype] / 1e9,
            "pct_of_peak": 100 * total_flops / total_s / peaks[options.dtype],
            "speedup_vs_reference": math.nan if ref_label is None else robust[ref_label] / total_s,
            "wall_speedup_vs_reference": math.nan
            if ref_label is None
            else best[ref_label].total_s / res.total_s,
            "mem_ratio_vs_reference": math.nan
            if ref_label is None or not peak_delta[spec.label]
            else peak_delta[ref_label] / peak_delta[spec.label],
            **errors.get(spec.label, {}),
            "build_s": build_s,
            "loadavg_start": loadavg_start[0],
            "loadavg_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
        }
        rows.append(row)
    return rows


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


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, memory, torch version and threads (and the GPU name on CUDA)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or "",
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 1e6, 1)
    except OSError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


# ----------------------------------------------------------------------------- reporting
def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) < 10 ** (-digits) or abs(value) >= 1e6):
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


TABLE_COLUMNS = (
    ("config", "config", 0),
    ("frames", "S", 0),
    ("size", "WxH", 0),
    ("path", "path", 0),
    ("patch_embed_s", "embed s", 2),
    ("aggregator_s", "aggr. s", 2),
    ("camera_head_s", "camera s", 2),
    ("depth_head_s", "depth s", 2),
    ("point_head_s", "point s", 2),
    ("total_s", "total s", 2),
    ("wall_s", "wall s", 2),
    ("speedup_vs_reference", "speed-up", 2),
    ("peak_delta_mb", "peak +MB", 0),
    ("mem_ratio_vs_reference", "mem ratio", 1),
    ("achieved_gflops", "GFLOP/s", 0),
    ("pct_of_peak", "% peak", 0),
    ("max_rel_diff", "max diff", 2),
)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The result rows as a Markdown table (errors listed below it)."""
    header = "| " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(TABLE_COLUMNS)]
    failed = []
    for row in rows:
        if "error" in row:
            failed.append(row)
            continue
        cells = []
        for key, _, digits in TABLE_COLUMNS:
            if key == "size":
                cells.append(f"{row['width']}x{row['height']}")
            elif key == "peak_delta_mb":
                cells.append(f"{row[key]:.0f}")
            else:
                cells.append(_fmt(row.get(key), digits))
        lines.append("| " + " | ".join(cells) + " |")
    for row in failed:
        lines.append(
            f"\nfailed: {row['config']} S={row['frames']} {row['width']}x{row['height']}: {row['error']}"
        )
    return "\n".join(lines)


def memory_growth(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Peak memory growth per extra frame (least-squares slope of peak_delta_mb over frames) per path."""
    groups: dict[tuple, list[tuple[int, float]]] = {}
    for row in rows:
        if "error" not in row:
            key = (row["config"], row["device"], row["width"], row["height"], row["path"])
            groups.setdefault(key, []).append((row["frames"], row["peak_delta_mb"]))
    out = []
    for (config, device, w, h, path), points in groups.items():
        if len({f for f, _ in points}) < 2:
            continue
        xs, ys = zip(*sorted(points), strict=True)
        slope = statistics.linear_regression(xs, ys).slope
        out.append({"config": config, "device": device, "size": f"{w}x{h}", "path": path,
                    "frames": list(xs), "peak_delta_mb": [round(y) for y in ys], "mb_per_frame": slope})  # fmt: skip
    ref = {(g["config"], g["device"], g["size"]): g["mb_per_frame"] for g in out if g["path"] == "reference"}
    for g in out:
        base = ref.get((g["config"], g["device"], g["size"]))
        g["growth_ratio_vs_reference"] = (
            base / g["mb_per_frame"] if base and g["mb_per_frame"] > 0 else math.nan
        )
    return out


def save_results(
    rows: Sequence[dict[str, Any]], directory: str | Path, stem: str, extra: dict[str, Any]
) -> list[Path]:
    """Write ``stem.json`` (rows, growth, machine) and ``stem.csv`` atomically; returns the paths."""
    import csv
    import io

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {**extra, "rows": list(rows), "memory_growth": memory_growth(rows)}
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    written = []
    for path, text in (
        (directory / f"{stem}.json", json.dumps(payload, indent=1, default=str)),
        (directory / f"{stem}.csv", buffer.getvalue()),
    ):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written
