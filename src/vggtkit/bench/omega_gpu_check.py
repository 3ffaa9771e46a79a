"""The VGGT-Omega GPU check: its golden fixture on the device, and VGGT-Omega-1B next to VGGT-1B, in one command.

``python benchmarks/omega_gpu_check.py --out DIR`` on a CUDA machine:

1. the golden fixture's worst errors per output on the device: the reference and lean plans in float32 (TF32 off
   by the plan), bfloat16 and float16 drift (the official code runs its aggregator under bfloat16 autocast);
2. the float32 lean plan against the reference plan on VGGT-Omega-1B (random weights);
3. VGGT-Omega-1B and VGGT-1B in bfloat16 at 1, 10, 50, 100 and 200 frames with the same number of patches per
   frame (592x448 balanced against 518x392 crop, 1036 patches): time per stage and peak memory, and the memory
   per frame of each, fitted.

It prints one table and writes ``gpu_check.{json,csv,md}`` into its own folder (default
benchmarks/results/gpu-omega). Steps stop early when ``--time-budget``
seconds have passed. ``--device cpu --quick`` runs the same steps on tiny models (tests of the command).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vggtkit.bench.gpu_check import (
    Check,
    _images,
    _tf32,
    _timed,
    _worst,
    device_available,
    markdown,
    precision_settings,
    save,
)
from vggtkit.bench.model import bench_config, random_model
from vggtkit.bench.report import machine_info
from vggtkit.inference import ExecutionPlan, InferenceOptions
from vggtkit.models.omega import VGGTOmega, VGGTOmegaConfig

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
GOLDEN_DIR = REPO / "tests" / "fixtures" / "golden" / "omega-tiny"
OUTPUTS = ("camera_and_register_tokens", "pose_enc", "depth", "depth_conf", "text_alignment_embedding")
FRAME_COUNTS = (1, 10, 50, 100, 200)
# The same number of patches per frame (1036) in each family's default preprocessing of a 4:3 photo.
SIZES = {"omega-1b": (448, 592), "1b": (392, 518), "omega-tiny": (32, 48), "tiny": (28, 42)}


def _golden() -> tuple[VGGTOmega, dict[str, np.ndarray]]:
    from safetensors.torch import load_file

    config = VGGTOmegaConfig.from_dict(json.loads((GOLDEN_DIR / "config.json").read_text())["model"])
    model = VGGTOmega(config)
    model.load_state_dict(load_file(GOLDEN_DIR / "weights.safetensors"), strict=True)
    with np.load(GOLDEN_DIR / "io.npz") as npz:
        return model.eval(), {k: npz[k] for k in npz.files}


def golden_errors(check: Check) -> None:
    """Worst golden error per output on the device, per precision setting."""
    model, g = _golden()
    model = model.to(check.device)
    images = torch.from_numpy(g["images"]).to(check.device)
    for label, options, tf32 in precision_settings(check.device):
        with _tf32(tf32), torch.no_grad():
            out = model(images, options=options)
        errors = {key: _worst(out[key], g[key]) for key in OUTPUTS}
        check.add(
            "omega golden errors", setting=label, **errors, within_tolerance=max(errors.values()) <= 1e-4
        )


def float32_lean_vs_reference(check: Check, model: torch.nn.Module, hw: tuple[int, int]) -> None:
    """The largest difference between the float32 lean plan and the reference plan on the big model."""
    images = _images(2 if check.quick else 4, hw, check.device)
    with torch.no_grad():
        ref = model(images, options=ExecutionPlan.reference())
        lean = model(images, options=InferenceOptions())
    diffs = {key: float(((lean[key] - ref[key]).abs() / (1 + ref[key].abs())).max()) for key in OUTPUTS[1:4]}
    check.add("omega float32 lean vs reference plan", frames=images.shape[1], **diffs)


def family_sweep(check: Check, name: str, counts: Sequence[int], hw: tuple[int, int]) -> None:
    """One family's random-weight model in bfloat16 at each frame count, then its memory per frame (fit)."""
    model = random_model(bench_config(name), seed=0, device=check.device)
    if name.startswith("omega"):
        float32_lean_vs_reference(check, model, hw)
    rows = []
    for frames in counts:
        if check.left() < 30:
            check.notes.append(f"{name} sweep stopped before {frames} frames: time budget spent")
            break
        timing = _timed(model, _images(frames, hw, check.device), "bfloat16", name, repeats=2)
        rows.append((frames, timing["peak_gb"]))
        check.add("bfloat16 lean plan", config=name, size=f"{hw[1]}x{hw[0]}", frames=frames, **timing)
    if len(rows) >= 2:
        slope, intercept = np.polyfit(*np.array(rows, dtype=float).T, 1)
        check.add("memory per frame (fit)", config=name, gb_per_frame=round(float(slope), 4),
                  fixed_gb=round(float(intercept), 2))  # fmt: skip
    del model
    if check.device.type == "cuda":
        torch.cuda.empty_cache()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/gpu-omega", help="folder for the results")
    parser.add_argument("--device", default="cuda", help="device to check (default: cuda)")
    parser.add_argument("--time-budget", type=float, default=300.0, help="seconds before optional steps stop")
    parser.add_argument(
        "--quick", action="store_true", help="tiny models and few frames (checks the command)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(args.device)
    if not device_available(device, "omega_gpu_check"):
        return 2
    check = Check(device, Path(args.out), time.monotonic() + args.time_budget, args.quick)
    steps = [("omega golden errors", lambda: golden_errors(check))]
    counts = (1, 2) if args.quick else FRAME_COUNTS
    for name in ("omega-tiny", "tiny") if args.quick else ("omega-1b", "1b"):
        steps.append((f"{name} sweep", lambda c=name: family_sweep(check, c, counts, SIZES[c])))
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # one failing step (out of memory, say) must not lose the others
            check.notes.append(f"{name}: {type(exc).__name__}: {exc}")
            logger.exception("step %s failed", name)
    info = machine_info(str(device))
    paths = save(check, info)
    print(markdown(check, info))
    print("\nresults: " + ", ".join(str(p) for p in paths))
    return 0
