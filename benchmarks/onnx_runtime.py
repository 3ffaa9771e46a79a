"""onnxruntime against PyTorch on this CPU: time and peak memory of a forward pass over one frame.

Models: the shipped ``tiny-synthetic`` and the VGGT-1B configuration with random weights (``vggtkit.bench``'s
``random_model``, the same weights in every process). Each model is exported once per frame size in its own
process (export time and the process's peak RSS are reported). Then every runtime runs in a fresh process:
PyTorch with its default lean plan (``InferenceOptions()``: float32, chunked, in place), PyTorch with the reference
plan (the plain float32 plan the exporter traces) and onnxruntime (CPU provider, all graph optimisations). A
process loads the model, runs one warm-up pass and ``--repeats`` timed passes; PyTorch passes are measured by
``vggtkit.bench.measure.run_path`` and onnxruntime passes the same way (``PeakMemory``: the kernel's RSS
high-water mark, reset before each pass). The table shows the load time, the warm-up pass, the fastest timed pass,
the peak RSS of the process during a pass (weights included) and the largest ``|x - ref| / (1 + |ref|)`` of the
dense outputs against the PyTorch reference plan (``vggtkit.bench.measure.compare_outputs``). All runtimes use
``--threads`` threads.

    python benchmarks/onnx_runtime.py                                   # tiny-synthetic and VGGT-1B at 518x518
    python benchmarks/onnx_runtime.py --models tiny-synthetic --repeats 10 --size 112
    python benchmarks/onnx_runtime.py --models 1b --repeats 1 --workdir /data/onnx   # 5 GB of exported weights
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from vggtkit.bench import bench_config, machine_info, random_model
from vggtkit.bench.measure import DENSE_KEYS, PathResult, compare_outputs, run_path
from vggtkit.inference import ExecutionPlan, InferenceOptions
from vggtkit.utils.memory import PeakMemory

MODELS = ("tiny-synthetic", "1b")
RUNTIMES = ("torch-reference", "torch-lean", "onnxruntime")
COLUMNS = (
    ("model", "model", "{}"),
    ("size", "frame", "{}"),
    ("runtime", "runtime", "{}"),
    ("load_s", "load s", "{:.2f}"),
    ("first_s", "first pass s", "{:.2f}"),
    ("best_s", "best pass s", "{:.3f}"),
    ("peak_gb", "peak RSS GB", "{:.2f}"),
    ("max_rel_diff", "max diff", "{:.1e}"),
)


# ------------------------------------------------------------------------------------------- child processes
def _build(name: str) -> torch.nn.Module:
    """The shipped model by name, or a benchmark configuration with random weights."""
    if name in MODELS[1:]:
        return random_model(bench_config(name), seed=0)
    from vggtkit.models import from_pretrained

    return from_pretrained(name).eval()


def export_case(name: str, side: int, path: str) -> dict[str, Any]:
    """Export ``name`` for side x side frames; its time, the process's peak RSS and the files' size."""
    from vggtkit.onnx import OnnxExportOptions, export_onnx

    with PeakMemory("cpu") as memory:
        model = _build(name)
        start = time.perf_counter()
        written = export_onnx(model, path, OnnxExportOptions(image_hw=(side, side)))
        seconds = time.perf_counter() - start
    files = [written, written.with_name(written.name + ".data")]
    size = sum(p.stat().st_size for p in files if p.exists())
    return {"export_s": seconds, "export_peak_gb": memory.peak_bytes / 1e9, "file_gb": size / 1e9}


def _onnx_pass(model: Any, images: torch.Tensor, label: str) -> PathResult:
    """One onnxruntime pass, measured as ``run_path`` measures a PyTorch pass (one step: the graph)."""
    meter = PeakMemory("cpu")
    baseline = meter.start()
    start = time.perf_counter()
    out = model(images)
    seconds = time.perf_counter() - start
    outputs = {k: out[k].float() for k in DENSE_KEYS if k in out}
    return PathResult(label, [seconds], seconds, baseline, meter.stop(), outputs)


def runtime_case(name: str, runtime: str, onnx_path: str, side: int, repeats: int, threads: int) -> dict:
    """Load ``name`` in ``runtime`` and time 1 + ``repeats`` passes over one random side x side frame."""
    torch.set_num_threads(threads)
    images = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    if runtime == "onnxruntime":
        from vggtkit.onnx import OnnxVGGT

        model = OnnxVGGT(onnx_path, threads=threads)
        load_s = time.perf_counter() - start
        passes = [_onnx_pass(model, images, runtime) for _ in range(1 + repeats)]
    else:
        model = _build(name)
        load_s = time.perf_counter() - start
        options = ExecutionPlan.reference() if runtime == "torch-reference" else InferenceOptions()
        passes = [run_path(model, images, options, runtime) for _ in range(1 + repeats)]
    best = min(passes[1:], key=lambda p: p.total_s)
    return {
        "load_s": load_s,
        "first_s": passes[0].total_s,
        "best_s": best.total_s,
        "peak_gb": max(p.peak_bytes for p in passes) / 1e9,
        "outputs": best.outputs,
    }


# ------------------------------------------------------------------------------------------- parent
def _in_child(function: Any, *args: Any) -> Any:
    """``function(*args)`` in a fresh process, so that its peak RSS is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_model_case(name: str, side: int, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    """The export and every runtime for one model at one frame size: one row per runtime."""
    onnx_path = str(workdir / f"{name}-{side}.onnx")
    export = {"export_s": math.nan, "export_peak_gb": math.nan, "file_gb": math.nan}
    if "onnxruntime" in args.runtimes:
        _log(f"exporting {name} at {side}x{side}")
        export = _in_child(export_case, name, side, onnx_path)
    rows = []
    for runtime in args.runtimes:
        _log(f"{name} {side}x{side} {runtime}")
        result = _in_child(runtime_case, name, runtime, onnx_path, side, args.repeats, args.threads)
        rows.append({"model": name, "size": f"{side}x{side}", "runtime": runtime, **export, **result})
    reference = rows[0]["outputs"]  # the first runtime (torch-reference by default) is the oracle
    for row in rows:
        row["max_rel_diff"] = compare_outputs(row.pop("outputs"), reference)["max_rel_diff"]
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The runtime table, then the export table (one line per exported model and size)."""
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
    lines += ["| " + " | ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS) + " |" for r in rows]
    exported = {(r["model"], r["size"]): r for r in rows if not math.isnan(r["export_s"])}
    if exported:
        lines += [
            "",
            "| model | frame | export s | export peak RSS GB | ONNX files GB |",
            "|---|---|---|---|---|",
        ]
    for r in exported.values():
        lines.append(
            f"| {r['model']} | {r['size']} | {r['export_s']:.0f} | {r['export_peak_gb']:.2f} | "
            f"{r['file_gb']:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--runtimes",
        nargs="+",
        choices=RUNTIMES,
        default=list(RUNTIMES),
        help="the first is the reference of 'max diff' (default: all; the model is exported only for onnxruntime)",
    )
    parser.add_argument("--size", type=int, default=518, help="square frame side (default: 518)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes after the warm-up (default: 3)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="default: torch's")
    parser.add_argument("--workdir", type=Path, default=None, help="where the ONNX files go (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        rows = [row for name in args.models for row in run_model_case(name, args.size, args, Path(tmp))]
    machine = machine_info()
    print(f"{machine['cpu']} ({machine['cpu_count']} cores), torch {machine['torch']}, threads {args.threads}, "
          f"repeats {args.repeats}")  # fmt: skip
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
