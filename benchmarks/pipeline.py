"""Time and peak memory of the whole pipeline: photos on disk -> reconstruct() -> exports.

Each configuration runs in its own process on synthetic 640x480 JPEG photos, with random weights (no checkpoint
is needed), at the model's own image size unless --resolution is given. Peak memory is the process's peak RSS
from building the model to the last export (``vggtkit.utils.memory.PeakMemory``). Prints a Markdown table.

    python benchmarks/pipeline.py                                  # tiny and full (VGGT-1B), 8 frames
    python benchmarks/pipeline.py --configs tiny --frames 4 16 --resolution 518
    python benchmarks/pipeline.py --configs full --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vggtkit.utils.dtypes import DTYPE_CHOICES

COLUMNS = (
    "config",
    "frames",
    "resolution",
    "dtype",
    "model init s",
    "load images s",
    "inference s",
    "postprocess s",
    "export s",
    "total s",
    "peak RSS",
    "points (glb / ply / colmap)",
)


def _photos(folder: Path, count: int) -> list[Path]:
    """``count`` textured 640x480 JPEGs of a scene seen from slowly shifting viewpoints."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (600, 1000, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(base).resize((250, 150)).resize((1000, 600), Image.Resampling.BICUBIC))
    paths = []
    for i in range(count):
        crop = base[40 + 3 * i : 520 + 3 * i, 60 + 20 * i : 700 + 20 * i]
        path = folder / f"frame_{i:03d}.jpg"
        Image.fromarray(np.ascontiguousarray(crop)).save(path, quality=92)
        paths.append(path)
    return paths


class _StageLog:
    """Progress callback printing each stage's start on stderr (so a slow or killed run shows how far it got)."""

    def __init__(self) -> None:
        self._stage: str | None = None
        self._start = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self._stage = stage
            print(f"[{time.perf_counter() - self._start:7.1f} s] {stage}", file=sys.stderr, flush=True)


def _run_one(config: str, frames: int, resolution: int | None, dtype: str, exports: str) -> dict:
    import torch

    from vggtkit import VGGT, VGGTConfig, reconstruct, tiny_config
    from vggtkit.export import ExportOptions, export_all
    from vggtkit.utils.memory import PeakMemory, format_bytes

    torch.manual_seed(0)
    with PeakMemory("cpu") as memory, tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = VGGT(tiny_config() if config == "tiny" else VGGTConfig()).eval()
        init = time.perf_counter() - start
        tmp_path = Path(tmp)
        (tmp_path / "photos").mkdir()
        _photos(tmp_path / "photos", frames)
        t0 = time.perf_counter()
        rec = reconstruct(
            tmp_path / "photos", model, device="cpu", dtype=dtype, resolution=resolution, progress=_StageLog()
        )
        t1 = time.perf_counter()
        results = export_all(rec, tmp_path / "out", exports, ExportOptions(conf_threshold=50))
        t2 = time.perf_counter()
    points = " / ".join(str(results[n].points) if n in results else "-" for n in ("glb", "ply", "colmap"))
    h, w = rec.model_hw
    return {
        "config": config,
        "frames": frames,
        "resolution": f"{w}x{h}",
        "dtype": dtype,
        "model init s": f"{init:.1f}",
        "load images s": f"{rec.timings['load_images']:.2f}",
        "inference s": f"{rec.timings['inference']:.1f}",
        "postprocess s": f"{rec.timings['postprocess']:.2f}",
        "export s": f"{t2 - t1:.1f}",
        "total s": f"{t2 - t0:.1f}",
        "peak RSS": format_bytes(memory.peak_bytes),
        "points (glb / ply / colmap)": points,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=["tiny", "full"], choices=("tiny", "full"))
    parser.add_argument("--frames", nargs="+", type=int, default=[8])
    parser.add_argument("--resolution", type=int, default=None, help="default: the model's img_size")
    parser.add_argument("--dtype", default=DTYPE_CHOICES[0], choices=DTYPE_CHOICES)
    parser.add_argument("--exports", default="npz,glb,ply,colmap")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.single:
        print(
            json.dumps(_run_one(args.configs[0], args.frames[0], args.resolution, args.dtype, args.exports))
        )
        return 0
    rows = []
    for config in args.configs:
        for frames in args.frames:
            cmd = [sys.executable, __file__, "--single", "--configs", config, "--frames", str(frames)]
            cmd += ["--dtype", args.dtype, "--exports", args.exports]
            if args.resolution is not None:
                cmd += ["--resolution", str(args.resolution)]
            done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr: live stage log
            if done.returncode != 0:
                print(f"{config} x {frames} failed (exit code {done.returncode})", file=sys.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"done: {config} x {frames}", file=sys.stderr)
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
