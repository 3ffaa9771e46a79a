"""The GPU check: everything about running vggtkit on a CUDA device, measured in one command.

``python benchmarks/gpu_check.py --out DIR`` (or ``make gpu-check``) on a CUDA machine:

1. runs the model tests (golden parity, every execution plan) on the GPU;
2. measures the golden fixture's worst errors there: the reference and lean plans in float32 (TF32 off), the
   lean plan with PyTorch's default TF32 convolutions, and bfloat16 / float16 drift;
3. compares the float32 lean plan with the reference plan on VGGT-1B (random weights);
4. times the convolutions of the dense heads channels-last against the default layout;
5. runs VGGT-1B in bfloat16 at 1, 10, 50, 100 and 200 frames of 518x392 (time, peak allocated memory), beside
   an official-style plan (every aggregator layer kept in float32, no chunking) as the in-process reference;
6. finds the largest frame count that fits in one pass: the memory limit from the measured growth per frame,
   and one run at the largest count that the time budget allows.

It prints one table and writes ``gpu_check.json``, ``gpu_check.csv`` and ``gpu_check.md``. Steps stop early
when ``--time-budget`` seconds have passed. ``--device cpu --quick`` runs the same steps on a tiny model (for
tests of the command itself).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vggtkit.bench.measure import run_path, stage_times
from vggtkit.bench.model import random_model
from vggtkit.bench.report import machine_info
from vggtkit.inference import ExecutionPlan, InferenceOptions
from vggtkit.models.vggt import VGGT, VGGTConfig
from vggtkit.models.vggt.config import preset_config
from vggtkit.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
GOLDEN_DIR = REPO / "tests" / "fixtures" / "golden" / "tiny"
GOLDEN_TESTS = ("tests/models/test_golden_parity.py", "tests/models/test_execution_plans.py")
DENSE = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
FRAME_COUNTS = (1, 10, 50, 100, 200)
PROBE_COUNTS = (300, 400, 500, 750, 1000, 1250, 1500, 2000, 3000, 4000)
# The official VGGT-1B on an H100 (published): 200 frames in 8.75 s and 40.6 GB.
OFFICIAL_H100_200 = {"seconds": 8.75, "memory_gb": 40.6}


@dataclass
class Check:
    """The state of one run of the check: where results go, the deadline, and the rows so far."""

    device: torch.device
    out: Path
    deadline: float
    quick: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def add(self, step: str, **values: Any) -> None:
        row = {"step": step, **values}
        self.rows.append(row)
        logger.info("%s", json.dumps(row, default=str))


# ----------------------------------------------------------------------------- steps
def run_model_tests(check: Check) -> None:
    """The golden-parity and execution-plan tests with the model on the device under test."""
    env = {**os.environ, "VGGTKIT_TEST_DEVICE": str(check.device), "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GOLDEN_TESTS]
    result = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=max(60, check.left())
    )
    (check.out / "gpu_check_tests.log").write_text(result.stdout + result.stderr)
    summary = (result.stdout.strip().splitlines() or ["no output"])[-1]
    check.add("model tests on the device", passed=result.returncode == 0, summary=summary,
              seconds=round(time.monotonic() - started, 1))  # fmt: skip


def _golden() -> tuple[VGGT, dict[str, np.ndarray]]:
    from safetensors.torch import load_file

    config = json.loads((GOLDEN_DIR / "config.json").read_text())["model"]
    model = VGGT(VGGTConfig(**config))
    model.load_state_dict(load_file(GOLDEN_DIR / "weights.safetensors"), strict=True)
    with np.load(GOLDEN_DIR / "io.npz") as npz:
        return model.eval(), {k: npz[k] for k in npz.files}


def _worst(ours: torch.Tensor, ref: np.ndarray) -> float:
    """The golden measure max |ours - ref| / (1 + |ref|)."""
    diff = np.abs(ours.detach().float().cpu().numpy().astype(np.float64) - ref)
    return float((diff / (1 + np.abs(ref))).max())


def precision_settings(device: torch.device) -> list[tuple[str, Any, bool]]:
    """(label, options, TF32 enabled globally) of each setting the golden fixture is checked under."""
    settings: list[tuple[str, Any, bool]] = [
        ("reference plan float32", ExecutionPlan.reference(), False),
        ("lean plan float32", InferenceOptions(), False),
        ("lean plan float32, TF32 enabled globally (the plan turns it off)", InferenceOptions(), True),
        ("lean plan bfloat16", InferenceOptions(dtype="bfloat16"), False),
    ]
    if device.type == "cuda":
        settings.append(("lean plan float16", InferenceOptions(dtype="float16"), False))
    return settings


def golden_errors(check: Check) -> None:
    """Worst golden error per output on the device, per precision setting."""
    model, g = _golden()
    model = model.to(check.device)
    images = torch.from_numpy(g["images"]).to(check.device)
    queries = torch.from_numpy(g["query_points"]).to(check.device)
    for label, options, tf32 in precision_settings(check.device):
        with _tf32(tf32), torch.no_grad():
            out = model(images, queries, options=options)
        errors = {key: _worst(out[key], g[key]) for key in DENSE}
        errors["track_px"] = float((out["track"].cpu() - torch.from_numpy(g["track"])).abs().max())
        check.add(
            "golden errors", setting=label, **errors, within_tolerance=max(errors[k] for k in DENSE) <= 1e-4
        )


class _tf32:
    """TF32 for matrix products and convolutions on or off inside the block (restored after)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> None:
        self.saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = self.on
        torch.backends.cudnn.allow_tf32 = self.on

    def __exit__(self, *exc: object) -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.saved


def _images(frames: int, hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    return torch.rand(1, frames, 3, *hw, generator=torch.Generator().manual_seed(frames)).to(device)


def _timed(
    model: torch.nn.Module, images: torch.Tensor, options: Any, label: str, repeats: int
) -> dict[str, Any]:
    """Best of ``repeats`` runs after one warm-up: seconds (in total and per stage) and peak memory."""
    with torch.inference_mode():
        model(images[:, :1], options=options)  # kernels chosen and compiled, allocator warm
    best = None
    for _ in range(repeats):
        result = run_path(model, images, options, label, keep_outputs=False)
        if best is None or result.total_s < best.total_s:
            best = result
    stages = stage_times(best.steps_s, model.config)
    heads = sum(v for k, v in stages.items() if k.endswith("_head"))
    return {"seconds": round(best.total_s, 3), "embed_s": round(stages.get("patch_embed", 0.0), 3),
            "aggregator_s": round(stages.get("aggregator", 0.0), 3), "heads_s": round(heads, 3),
            "peak_gb": round(best.peak_bytes / 1e9, 2), "peak_over_start_gb": round(best.delta_bytes / 1e9, 2)}  # fmt: skip


def attention_kernels(check: Check, frames: int, tokens_per_frame: int) -> None:
    """SDPA over all tokens of ``frames`` frames (global attention, bfloat16, 16 heads of 64) with each kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    n = frames * tokens_per_frame
    q, k, v = (torch.randn(1, 16, n, 64, device=check.device, dtype=torch.bfloat16) for _ in range(3))
    backends = {"default": None, "flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION}  # fmt: skip
    for name, backend in backends.items():
        context = sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext()
        try:
            with context, torch.inference_mode():
                torch.nn.functional.scaled_dot_product_attention(q, k, v)
                _sync(check.device)
                start = time.perf_counter()
                for _ in range(3):
                    torch.nn.functional.scaled_dot_product_attention(q, k, v)
                _sync(check.device)
            seconds = (time.perf_counter() - start) / 3
            check.add("attention kernels", kernel=name, tokens=n, ms=round(1e3 * seconds, 2),
                      tflops=round(4 * n * n * 64 * 16 / seconds / 1e12, 1))  # fmt: skip
        except RuntimeError as exc:
            check.add("attention kernels", kernel=name, tokens=n, error=str(exc).splitlines()[0][:120])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def float32_lean_vs_reference(check: Check, model: torch.nn.Module, hw: tuple[int, int]) -> None:
    """The largest difference between the float32 lean plan and the reference plan on the big model."""
    images = _images(2 if check.quick else 4, hw, check.device)
    with _tf32(False), torch.no_grad():
        ref = model(images, options=ExecutionPlan.reference())
        lean = model(images, options=InferenceOptions())
    diffs = {
        key: float(((lean[key] - ref[key]).abs() / (1 + ref[key].abs())).max()) for key in DENSE if key in ref
    }
    check.add("float32 lean vs reference plan", frames=images.shape[1], **diffs)


def heads_layout(check: Check, model: torch.nn.Module, hw: tuple[int, int]) -> None:
    """bfloat16 with the dense heads' convolutions channels-last or in the default layout."""
    images = _images(2 if check.quick else 10, hw, check.device)
    for channels_last in (False, True):
        options = InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16", channels_last=channels_last)
        timing = _timed(model, images, options, f"channels_last={channels_last}", repeats=2)
        check.add("heads layout", frames=images.shape[1], channels_last=channels_last, **timing)


def frame_sweep(check: Check, model: torch.nn.Module, counts: Sequence[int], hw: tuple[int, int]) -> None:
    """bfloat16 lean plan at each frame count; at the largest, heads in bfloat16 too, and the official-style plan
    (every layer kept in float32, nothing chunked) beside it."""
    official_style = ExecutionPlan(dtype=torch.bfloat16, keep_all_layers=True)
    for frames in counts:
        if check.left() < 30:
            check.notes.append(f"frame sweep stopped before {frames} frames: time budget spent")
            break
        images = _images(frames, hw, check.device)
        check.add("bfloat16 lean plan", frames=frames, **_timed(model, images, "bfloat16", "lean", repeats=2))
    images = _images(counts[-1], hw, check.device)
    variants = {
        "bfloat16, heads bfloat16": InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16"),
        "official-style (all layers kept, float32 layers)": official_style,
    }
    for label, options in variants.items():
        if check.left() > 45:
            check.add(
                "variants", plan=label, frames=counts[-1], **_timed(model, images, options, label, repeats=1)
            )


def largest_one_pass(
    check: Check, model: torch.nn.Module, hw: tuple[int, int], probes: Sequence[int]
) -> None:
    """The memory limit from the sweep's growth per frame, and one run at the largest affordable count."""
    sweep = [r for r in check.rows if r["step"] == "bfloat16 lean plan"]
    if len(sweep) < 2:
        check.notes.append("largest frame count: not enough sweep points")
        return
    frames = np.array([r["frames"] for r in sweep], dtype=float)
    memory = np.array([r["peak_gb"] for r in sweep])
    seconds = np.array([r["seconds"] for r in sweep])
    slope, intercept = np.polyfit(frames, memory, 1)
    capacity = _device_memory_gb(check.device)
    memory_limit = int((0.95 * capacity - intercept) / slope) if slope > 0 else None
    # Time grows as a*N^2 (global attention) + b*N + c, each term non-negative.
    design = np.stack([frames**2, frames, np.ones_like(frames)], axis=1)
    coef = np.clip(np.linalg.lstsq(design, seconds, rcond=None)[0], 0, None)
    predict = lambda n: float(coef @ [n * n, n, 1])  # noqa: E731
    affordable = [n for n in probes if 2.5 * predict(n) < check.left() - 20]
    if memory_limit is not None:
        affordable = [n for n in affordable if n <= memory_limit]
    check.add("memory per frame (fit)", gb_per_frame=round(float(slope), 4), fixed_gb=round(float(intercept), 2),
              device_gb=round(capacity, 1), memory_limit_frames=memory_limit)  # fmt: skip
    if not affordable:
        check.notes.append("largest frame count: no probe fits the remaining time budget")
        return
    n = affordable[-1]
    images = _images(n, hw, check.device)
    result = run_path(model, images, "bfloat16", "largest", keep_outputs=False)
    check.add("largest run in one pass", frames=n, seconds=round(result.total_s, 2),
              peak_gb=round(result.peak_bytes / 1e9, 2), predicted_s=round(predict(n), 1))  # fmt: skip


def _device_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / 1e9
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) / 1e6


# ----------------------------------------------------------------------------- report
def markdown(check: Check, info: dict[str, Any]) -> str:
    """One table per step kind, the machine on top."""
    lines = [f"machine: {info.get('gpu') or info.get('cpu')}, torch {info['torch']}", ""]
    steps: dict[str, list[dict[str, Any]]] = {}
    for row in check.rows:
        steps.setdefault(row["step"], []).append(row)
    for step, rows in steps.items():
        keys = [k for k in rows[0] if k != "step"]
        for row in rows[1:]:
            keys += [k for k in row if k not in keys and k != "step"]
        lines += [f"### {step}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_cell(row.get(k)) for k in keys) + " |" for row in rows]
        lines.append("")
    lines += [f"note: {n}" for n in check.notes]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return (
            f"{value:.3g}"
            if abs(value) < 1e-2 or abs(value) >= 1e4
            else f"{value:.3f}".rstrip("0").rstrip(".")
        )
    return "-" if value is None else str(value)


def save(check: Check, info: dict[str, Any]) -> list[Path]:
    check.out.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for row in check.rows:
        keys += [k for k in row if k not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(check.rows)
    files = {
        "gpu_check.json": json.dumps({"machine": info, "rows": check.rows, "notes": check.notes,
                                      "official_vggt_1b_h100_200_frames": OFFICIAL_H100_200}, indent=1, default=str),
        "gpu_check.csv": buffer.getvalue(),
        "gpu_check.md": markdown(check, info),
    }  # fmt: skip
    written = []
    for name, text in files.items():
        with atomic_path(check.out / name) as tmp:
            tmp.write_text(text)
        written.append(check.out / name)
    return written


# ----------------------------------------------------------------------------- command
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/gpu", help="folder for the results")
    parser.add_argument("--device", default="cuda", help="device to check (default: cuda)")
    parser.add_argument("--time-budget", type=float, default=420.0, help="seconds before optional steps stop")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the model tests")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny model and few frames (checks the command)"
    )
    return parser.parse_args(argv)


def device_available(device: torch.device, program: str) -> bool:
    """False, with a message on stderr, when ``device`` is CUDA and this machine has none."""
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"{program}: CUDA is not available on this machine; run it on a GPU machine, or pass --device cpu "
              "--quick to check the command itself", file=sys.stderr)  # fmt: skip
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(args.device)
    if not device_available(device, "gpu_check"):
        return 2
    check = Check(device, Path(args.out), time.monotonic() + args.time_budget, args.quick)
    check.out.mkdir(parents=True, exist_ok=True)
    info = machine_info(str(device))
    config = preset_config("tiny" if args.quick else "1b")
    hw = (28, 42) if args.quick else (392, 518)
    model = random_model(config, seed=0, device=device)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("model tests", lambda: run_model_tests(check)),
        ("golden errors", lambda: golden_errors(check)),
        ("float32 lean vs reference", lambda: float32_lean_vs_reference(check, model, hw)),
        ("heads layout", lambda: heads_layout(check, model, hw)),
        ("attention kernels", lambda: attention_kernels(check, 2 if args.quick else 200, 1041)),
        ("frame sweep", lambda: frame_sweep(check, model, (1, 2, 3) if args.quick else FRAME_COUNTS, hw)),
        (
            "largest one pass",
            lambda: largest_one_pass(check, model, hw, (4, 6) if args.quick else PROBE_COUNTS),
        ),
    ]
    for name, step in steps[1:] if args.skip_tests else steps:
        try:
            step()
        except Exception as exc:  # one failing step (out of memory, say) must not lose the others
            check.notes.append(f"{name}: {type(exc).__name__}: {exc}")
            logger.exception("step %s failed", name)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    paths = save(check, info)
    print(markdown(check, info))
    print("\nresults: " + ", ".join(str(p) for p in paths))
    return 0
