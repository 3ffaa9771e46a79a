"""Errors of the golden tiny model exported to ONNX and run by onnxruntime, against the golden fixture.

Exports the golden fixture's model (tests/fixtures/golden/tiny) for its 98x70 frames with the track head, in
float32 and float16, runs the fixture's images and query points through onnxruntime and prints, per output, the
golden criterion ``max |x - ref| / (1 + |ref|)`` (dense outputs; the fixture's tolerance is 1e-4) or the largest
absolute error (tracks in pixels, visibility and confidence), next to PyTorch's own errors with the same plans.

    python benchmarks/onnx_parity.py
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from vggtkit import VGGT, VGGTConfig
from vggtkit.inference import ExecutionPlan
from vggtkit.onnx import OnnxExportOptions, OnnxVGGT, export_onnx

GOLDEN = Path(__file__).parents[1] / "tests" / "fixtures" / "golden" / "tiny"
DENSE = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
TRACKS = ("track", "vis", "conf")


def golden_error(ours: torch.Tensor, ref: np.ndarray, absolute: bool) -> float:
    diff = np.abs(ours.numpy().astype(np.float64) - ref.astype(np.float64))
    return float(diff.max() if absolute else (diff / (1 + np.abs(ref.astype(np.float64)))).max())


def main() -> int:
    torch.set_num_threads(1)
    config = json.loads((GOLDEN / "config.json").read_text())["model"]
    model = VGGT(VGGTConfig(**config))
    model.load_state_dict(load_file(GOLDEN / "weights.safetensors"), strict=True)
    model.eval()
    with np.load(GOLDEN / "io.npz") as npz:
        golden = {key: npz[key] for key in npz.files}
    images, queries = torch.from_numpy(golden["images"]), torch.from_numpy(golden["query_points"])
    print("| output | precision | onnxruntime vs golden | PyTorch vs golden | onnxruntime vs PyTorch |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "float16"):
            options = OnnxExportOptions(image_hw=(70, 98), dtype=dtype, tracks=True)
            onnx = OnnxVGGT(export_onnx(model, Path(tmp) / f"golden-{dtype}.onnx", options), threads=1)
            ours = onnx(images, queries, options=dtype)
            plan = dataclasses.replace(
                ExecutionPlan.reference(), dtype=getattr(torch, dtype), store_dtype=getattr(torch, dtype)
            )
            with torch.no_grad():
                ref = model(images, queries, options=plan)
            for key in (*DENSE, *TRACKS):
                absolute = key in TRACKS
                errors = (
                    golden_error(ours[key], golden[key], absolute),
                    golden_error(ref[key].float(), golden[key], absolute),
                    golden_error(ours[key], ref[key].float().numpy(), absolute),
                )
                name = f"{key} ({'abs' if absolute else 'rel'})"
                print(f"| {name} | {dtype} | " + " | ".join(f"{e:.1e}" for e in errors) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
