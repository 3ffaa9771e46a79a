"""onnxruntime against PyTorch on this CPU: time and peak memory of a forward pass over one frame.

Models: the shipped ``tiny-synthetic`` and the VGGT-1B configuration with random weights
(``vggtkit.bench.random_model``, the same weights in every process). Each model is exported once for the frame
size (in its own process; time and peak RSS are reported), then every runtime runs in a fresh process: PyTorch
with its default lean plan (``InferenceOptions()``: float32, chunked, in place), PyTorch with the reference plan
(the plain float32 plan the exporter traces) and onnxruntime (CPU provider, graph optimisations on). A process
loads the model, runs one warm-up pass and then ``--repeats`` timed passes; the table shows the load time, the
first pass, the fastest timed pass and the process's peak RSS from before loading to the end (weights included).
All runtimes use the same number of threads. "max diff" is the worst ``|x - ref| / (1 + |ref|)`` of the depth,
depth confidence and pose encoding against the PyTorch reference plan.

    python benchmarks/onnx_runtime.py                                   # tiny-synthetic 112x112 and 518x518, VGGT-1B 518x518
    python benchmarks/onnx_runtime.py --models tiny-synthetic --repeats 10
    python benchmarks/onnx_runtime.py --models 1b --repeats 2 --workdir /data/onnx   # 5 GB of exported weights
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = ("tiny-synthetic", "1b")
RUNTIMES = ("torch-lean", "torch-reference", "onnxruntime")
DEFAULT_CASES = (("tiny-synthetic", 112), ("tiny-synthetic", 518), ("1b", 518))
COMPARED = ("depth", "depth_conf", "pose_enc")


# ------------------------------------------------------------------------------------------- child processes
def _build_model(name: str):
    from vggtkit.bench import random_model
    from vggtkit.models import from_pretrained
    from vggtkit.models.vggt.config import preset_config

    if name == "1b":
        return random_model(preset_config("1b"), seed=0)
    return from_pretrained(name)


def _export(spec: dict[str, Any]) -> dict[str, Any]:
    from vggtkit.onnx import OnnxExportOptions, export_onnx
    from vggtkit.utils.memory import PeakMemory

    with PeakMemory("cpu") as memory:
        model = _build_model(spec["model"])
        start = time.perf_counter()
        path = export_onnx(model, spec["onnx"], OnnxExportOptions(image_hw=tuple(spec["size"])))
        seconds = time.perf_counter() - start
    files = [path, path.with_name(path.name + ".data")]
    size = sum(p.stat().st_size for p in files if p.exists())
    return {"export_s": seconds, "export_peak_bytes": memory.peak_bytes, "file_bytes": size}


def _load(spec: dict[str, Any]):
    """(callable running one pass, load seconds)."""
    import torch

    from vggtkit.inference import ExecutionPlan, InferenceOptions
    from vggtkit.onnx import OnnxVGGT

    start = time.perf_counter()
    if spec["runtime"] == "onnxruntime":
        model = OnnxVGGT(spec["onnx"], threads=spec["threads"])
        options = None
    else:
        model = _build_model(spec["model"])
        options = ExecutionPlan.reference() if spec["runtime"] == "torch-reference" else InferenceOptions()
    load_s = time.perf_counter() - start

    def run(images: torch.Tensor) -> dict:
        with torch.inference_mode():
            return model(images, options=options)

    return run, load_s


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch

    from vggtkit.utils.memory import PeakMemory

    torch.set_num_threads(spec["threads"])
    h, w = spec["size"]
    images = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with PeakMemory("cpu") as memory:
        run, load_s = _load(spec)
        times = []
        for _ in range(1 + spec["repeats"]):
            start = time.perf_counter()
            out = run(images)
            times.append(time.perf_counter() - start)
    np.savez(spec["outputs"], **{k: out[k].float().numpy() for k in COMPARED})
    return {"load_s": load_s, "first_s": times[0], "best_s": min(times[1:]), "peak_bytes": memory.peak_bytes}


def _child(spec: dict[str, Any]) -> int:
    result = _export(spec) if spec["runtime"] == "export" else _measure(spec)
    print(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------------------- parent
def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE, text=True
    )  # stderr: the child's logs, live
    if done.returncode != 0:
        raise SystemExit(f"{spec['model']} {spec['runtime']} failed (exit code {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _max_diff(ours: Path, ref: Path) -> float:
    import numpy as np

    with np.load(ours) as a, np.load(ref) as b:
        return max(float(np.max(np.abs(a[k] - b[k]) / (1 + np.abs(b[k])))) for k in COMPARED)


def _case(model: str, side: int, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    base = {"model": model, "size": [side, side], "threads": args.threads, "repeats": args.repeats}
    onnx_path = workdir / f"{model}-{side}.onnx"
    print(f"[{time.strftime('%H:%M:%S')}] exporting {model} at {side}x{side}", file=sys.stderr, flush=True)
    export = _spawn({**base, "runtime": "export", "onnx": str(onnx_path)})
    rows = []
    for runtime in RUNTIMES:
        print(f"[{time.strftime('%H:%M:%S')}] {model} {side}x{side} {runtime}", file=sys.stderr, flush=True)
        outputs = workdir / f"{model}-{side}-{runtime}.npz"
        result = _spawn({**base, "runtime": runtime, "onnx": str(onnx_path), "outputs": str(outputs)})
        rows.append({"model": model, "size": f"{side}x{side}", "runtime": runtime, **result, **export})
    reference = workdir / f"{model}-{side}-torch-reference.npz"
    for row in rows:
        row["max_diff"] = _max_diff(workdir / f"{model}-{side}-{row['runtime']}.npz", reference)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | frame | runtime | load s | first pass s | best pass s | peak RSS GB | max diff |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['size']} | {r['runtime']} | {r['load_s']:.2f} | {r['first_s']:.2f} | "
            f"{r['best_s']:.3f} | {r['peak_bytes'] / 1e9:.2f} | {r['max_diff']:.1e} |"
        )
    lines += [
        "",
        "| model | frame | export s | export peak RSS GB | ONNX files GB |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows[:: len(RUNTIMES)]:
        lines.append(
            f"| {r['model']} | {r['size']} | {r['export_s']:.0f} | {r['export_peak_bytes'] / 1e9:.2f} | "
            f"{r['file_bytes'] / 1e9:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=None, help="default: all cases")
    parser.add_argument("--size", type=int, default=None, help="square frame side (default: per case)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes after the warm-up (default: 3)")
    parser.add_argument("--threads", type=int, default=None, help="default: torch's default")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the ONNX files go (default: a temp dir)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(json.loads(args.child))
    if args.threads is None:
        import torch

        args.threads = torch.get_num_threads()
    cases = [(m, args.size or s) for m, s in DEFAULT_CASES if args.models is None or m in args.models]
    cases = list(dict.fromkeys(cases))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        rows = [row for model, side in cases for row in _case(model, side, args, Path(tmp))]
    print(f"threads: {args.threads}, repeats: {args.repeats}")
    print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
