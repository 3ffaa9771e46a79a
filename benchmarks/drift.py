"""Reduced-precision drift on the golden tiny fixture, against the float32 reference plan.

Compares each precision mode of the lean plans with the float32 reference plan on the golden model and inputs
(tests/fixtures/golden/tiny), and with an emulation of the official code under ``torch.autocast("cpu",
bfloat16)`` (our reference modules under autocast, heads included, as the official heads only disable CUDA
autocast). The issue's numbers for the official code on this CPU: median relative depth error 0.5%, pose encoding
within 0.1.

    python benchmarks/drift.py [--out benchmarks/results/drift.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from vggtkit import VGGT, VGGTConfig
from vggtkit.inference import ExecutionPlan, InferenceOptions
from vggtkit.utils.atomic import atomic_path

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden" / "tiny"
OFFICIAL = {"depth_median_rel_err": 0.005, "pose_max_abs_err": 0.1}


def golden() -> tuple[VGGT, torch.Tensor, torch.Tensor]:
    config = VGGTConfig(**json.loads((GOLDEN / "config.json").read_text())["model"])
    model = VGGT(config)
    model.load_state_dict(load_file(GOLDEN / "weights.safetensors"), strict=True)
    with np.load(GOLDEN / "io.npz") as npz:
        return model.eval(), torch.from_numpy(npz["images"]), torch.from_numpy(npz["query_points"])


def official_autocast(model: VGGT, images: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The modules under CPU autocast with the plain plan, heads included (what the official code does on a CPU)."""
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        tokens, start = model.aggregator(images)
        pose = model.camera_head(tokens[-1])[-1]
        depth, depth_conf = model.depth_head(tokens, images, start)
        points, points_conf = model.point_head(tokens, images, start)
    out = {"pose_enc": pose, "depth": depth, "depth_conf": depth_conf, "world_points": points}
    return {k: v.float() for k, v in {**out, "world_points_conf": points_conf}.items()}


def drift(out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, float]:
    rel = ((out["depth"] - ref["depth"]).abs() / ref["depth"].abs()).flatten()
    prel = (
        (out["world_points"] - ref["world_points"]).norm(dim=-1) / ref["world_points"].norm(dim=-1)
    ).flatten()
    result = {
        "depth_median_rel_err": rel.median().item(),
        "depth_p95_rel_err": rel.quantile(0.95).item(),
        "points_median_rel_err": prel.median().item(),
        "pose_max_abs_err": (out["pose_enc"] - ref["pose_enc"]).abs().max().item(),
        "depth_conf_max_rel_err": ((out["depth_conf"] - ref["depth_conf"]).abs() / ref["depth_conf"])
        .max()
        .item(),
    }
    if "track" in out and "track" in ref:
        result["track_max_px"] = (out["track"] - ref["track"]).abs().max().item()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "drift.json"))
    args = parser.parse_args(argv)
    model, images, queries = golden()
    with torch.no_grad():
        ref = model(images, queries, options=ExecutionPlan.reference())
        modes = {
            "lean float32": InferenceOptions(),
            "lean bfloat16 (heads float32)": InferenceOptions(dtype="bfloat16"),
            "lean bfloat16, layers stored float32": InferenceOptions(
                dtype="bfloat16", store_layers_dtype="float32"
            ),
            "lean bfloat16, heads bfloat16": InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16"),
        }
        rows = {name: drift(model(images, queries, options=o), ref) for name, o in modes.items()}
        # Last: bfloat16 weights are converted in place, on a copy so the float32 model stays for the emulation.
        lean = copy.deepcopy(model)
        rows["lean bfloat16, heads and weights bfloat16"] = drift(
            lean(images, queries, options=InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16",
                                                           weights_dtype="bfloat16")),
            ref,
        )  # fmt: skip
    rows["official-style autocast bfloat16 (emulated)"] = drift(
        official_autocast(model, images, torch.bfloat16), ref
    )
    print(
        "| mode | depth median rel. err | depth p95 rel. err | points median rel. err | pose max abs err | track max px |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        track = f"{r['track_max_px']:.3f}" if "track_max_px" in r else "-"
        print(f"| {name} | {100 * r['depth_median_rel_err']:.3f}% | {100 * r['depth_p95_rel_err']:.3f}% | "
              f"{100 * r['points_median_rel_err']:.3f}% | {r['pose_max_abs_err']:.4f} | {track} |")  # fmt: skip
    print(f"| official code, bfloat16 autocast (issue) | {100 * OFFICIAL['depth_median_rel_err']:.1f}% | - | - | "
          f"{OFFICIAL['pose_max_abs_err']} | - |")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({"reference": "lean plans vs the float32 reference plan, golden tiny",
                                   "modes": rows, "official_issue_numbers": OFFICIAL,
                                   "torch": torch.__version__}, indent=1))  # fmt: skip
    print(f"\nresults: {out}")
    ok = all(
        r["depth_median_rel_err"] <= OFFICIAL["depth_median_rel_err"]
        and r["pose_max_abs_err"] <= OFFICIAL["pose_max_abs_err"]
        for name, r in rows.items()
        if name.startswith("lean")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
