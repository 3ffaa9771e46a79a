"""Long sequences: peak memory of chunked runs over videos of growing length, and camera accuracy of chunks joined
by Sim(3) alignment (and loop closure) against one pass over the same frames.

Sections (each prints a Markdown table; memory runs each configuration in its own process):

    python benchmarks/long_sequence.py memory                     # 30 and 300 frames, chunks and one pass
    python benchmarks/long_sequence.py memory --frames 30 300 1000 --chunk-size 24 --overlap 6
    python benchmarks/long_sequence.py long-video                 # a 30-minute video sampled at 1 fps
    python benchmarks/long_sequence.py accuracy                   # rendered trajectories, one pass vs chunks

Videos are synthetic: 160x120 mp4v (OpenCV) panning over a smooth random texture, written before the measurement.
Peak memory is the process's peak RSS during ``reconstruct()`` (``vggtkit.utils.memory.PeakMemory``: the kernel's
high-water mark, reset at the start). Accuracy is the RMS camera-centre error after one global Sim(3) alignment to
the ground truth, relative to the trajectory's mean distance from its centroid. Two predictors run: the shipped
``tiny-synthetic`` model, and an oracle (ground truth of the rendered frames, each call in its own frame and scale,
with VGGT-like errors: per-frame camera noise, depth noise, confident outlier pixels and, for the loop, a rotation
drift that grows along each call), installed as the pipeline's model call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VIDEO_SIZE = (160, 120)  # (width, height)
MODEL = "tiny-synthetic"


# ------------------------------------------------------------------------------------------- inputs
def write_video(path: Path, frames: int, fps: float) -> Path:
    """A 160x120 mp4v video panning over a smooth random texture."""
    import cv2

    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 255, (60, 200, 3), dtype=np.uint8), (2000, 600), cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, VIDEO_SIZE)
    span = texture.shape[1] - VIDEO_SIZE[0]
    for k in range(frames):
        x = int(span * (0.5 - 0.5 * np.cos(2 * np.pi * k / 400)))  # back and forth, 400 frames a period
        y = int(200 + 100 * np.sin(2 * np.pi * k / 170))
        writer.write(np.ascontiguousarray(texture[y : y + VIDEO_SIZE[1], x : x + VIDEO_SIZE[0]]))
    writer.release()
    return path


def _mapped_bytes(rec) -> int:
    arrays = (rec.images, rec.depth, rec.depth_conf, rec.world_points_from_depth, rec.world_points)
    return sum(a.nbytes for a in arrays if a is not None)


def _video_run(
    frames: int,
    video_fps: float,
    fps: float,
    chunk_size: int | None,
    overlap: int | None,
    threads: int,
    device: str = "cpu",
) -> dict:
    """One process: write the video, then reconstruct it (in chunks, or in one pass when ``chunk_size`` is None)
    and measure the peak memory of that call (RSS; on CUDA the allocator's peak)."""
    import torch

    from vggtkit import VGGT, reconstruct
    from vggtkit.pipeline import FrameSampling
    from vggtkit.utils.memory import PeakMemory

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "video.mp4", frames, video_fps)
        model = VGGT.from_pretrained(MODEL)
        start = time.perf_counter()
        with PeakMemory(device) as meter:
            rec = reconstruct(
                video,
                model,
                device=device,
                sampling=FrameSampling(fps=fps),
                chunk_size=chunk_size,
                overlap=overlap,
                work_dir=tmp,
            )
        seconds = time.perf_counter() - start
    h, w = rec.model_hw
    return {
        "video frames": frames,
        "frames": rec.num_frames,
        "model input": f"{w}x{h}",
        "run": "one pass" if chunk_size is None else f"chunks {chunk_size} / {overlap}",
        "seconds": round(seconds, 1),
        "frames/s": round(rec.num_frames / seconds, 2),
        "RSS before": round(meter.start_bytes / 1e6, 1),
        "peak RSS": round(meter.peak_bytes / 1e6, 1),
        "result on disk": round(_mapped_bytes(rec) / 1e6, 1),
    }


def _in_child(section: str, **kwargs) -> dict:
    """Run ``_video_run`` in a fresh process (its peak RSS is its own); stderr shows its log."""
    cmd = [sys.executable, __file__, "--child", json.dumps({"section": section, **kwargs})]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> None:
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


# ------------------------------------------------------------------------------------------- sections
def memory(args: argparse.Namespace) -> None:
    runs = [(args.chunk_size, args.overlap)] + ([(None, None)] if args.one_pass else [])
    rows = [
        _in_child(
            "video",
            frames=n,
            video_fps=10.0,
            fps=10.0,
            chunk_size=size,
            overlap=overlap,
            threads=args.threads,
            device=args.device,
        )
        for size, overlap in runs
        for n in args.frames
    ]
    _table(rows)
    chunked = rows[: len(args.frames)]
    for row in chunked[1:]:
        growth = 100 * (row["peak RSS"] / chunked[0]["peak RSS"] - 1)
        print(f"\nchunks: peak RSS of {row['frames']} frames vs {chunked[0]['frames']}: {growth:+.1f} %")


def long_video(args: argparse.Namespace) -> None:
    frames = int(args.minutes * 60 * args.video_fps)
    _table(
        [
            _in_child(
                "video",
                frames=frames,
                video_fps=args.video_fps,
                fps=args.fps,
                chunk_size=args.chunk_size,
                overlap=args.overlap,
                threads=args.threads,
                device=args.device,
            )
        ]
    )


@contextlib.contextmanager
def _oracle_as_model(sample: dict, **noise) -> Iterator[None]:
    """The pipeline's model call (``vggtkit.pipeline.run._run_model``) answered by the tests' oracle."""
    sys.path.insert(0, str(ROOT / "tests" / "pipeline"))
    from _sequences import Oracle

    import vggtkit.pipeline.run as run

    original = run._run_model
    run._run_model = Oracle(sample, **noise)
    try:
        yield
    finally:
        run._run_model = original


def _error(images, model, truth: np.ndarray, **options) -> tuple[float, float]:
    """(camera-centre error, seconds) of one reconstruction."""
    from _sequences import centre_error

    from vggtkit import reconstruct

    start = time.perf_counter()
    rec = reconstruct(images, model, device="cpu", **options)
    return centre_error(rec.extrinsic, truth), time.perf_counter() - start


def _accuracy_rows(label: str, sample: dict, model, plans: list[dict], seeds: int, noise: dict) -> list[dict]:
    truth = sample["extrinsics"].numpy()
    rows = []
    for plan in plans:
        errors = []
        for seed in range(seeds):
            with (
                _oracle_as_model(sample, seed=seed, **noise)
                if noise is not None
                else contextlib.nullcontext()
            ):
                errors.append(_error(sample["images"], model, truth, **plan))
        name = "one pass" if not plan else f"chunks {plan['chunk_size']} / {plan['overlap']}"
        name += " + loop closure" if plan.get("loop_closure") else ""
        error = np.array([e for e, _ in errors])
        rows.append(
            {
                "predictor": label,
                "frames": len(truth),
                "run": name,
                "centre error (mean of runs)": f"{error.mean():.4f}",
                "min / max": f"{error.min():.4f} / {error.max():.4f}",
                "runs": len(errors),
                "s per run": f"{np.mean([s for _, s in errors]):.1f}",
            }
        )
    one = float(rows[0]["centre error (mean of runs)"])
    for row in rows:
        row["vs one pass"] = f"{float(row['centre error (mean of runs)']) / one:.2f}x" if one > 0 else "-"
    return rows


def accuracy(args: argparse.Namespace) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "pipeline"))
    from _sequences import trajectory

    from vggtkit import VGGT

    torch.set_num_threads(args.threads)
    model = VGGT.from_pretrained(MODEL)
    sample = trajectory(args.frames, arc_deg=240.0, seed=7, hw=(84, 112))
    plans = [
        {},
        {"chunk_size": 24, "overlap": 6},
        {"chunk_size": 32, "overlap": 8},
        {"chunk_size": 16, "overlap": 4},
    ]
    noise = {"rotation_noise_deg": 0.5, "translation_noise": 0.01, "depth_noise": 0.02, "outliers": 0.05}
    rows = _accuracy_rows(MODEL, sample, model, plans, 1, None)
    rows += _accuracy_rows("oracle + noise", sample, model, plans, args.seeds, noise)
    loop = trajectory(args.frames, arc_deg=355.0, seed=5, hw=(84, 112))
    drift = {"rotation_noise_deg": 0.2, "drift_deg": 0.3, "depth_noise": 0.01}
    loop_plans = [
        {},
        {"chunk_size": 16, "overlap": 4},
        {"chunk_size": 16, "overlap": 4, "loop_closure": True},
    ]
    rows += _accuracy_rows("oracle + drift, 355 deg loop", loop, model, loop_plans, args.seeds, drift)
    _table(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # child process mode: JSON arguments
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    parser.add_argument(
        "--device", default="cpu", help="device of the video runs (cuda: the allocator's peak instead of RSS)"
    )
    sections = parser.add_subparsers(dest="section")
    mem = sections.add_parser("memory", help="peak RSS of chunked runs over videos of growing length")
    mem.add_argument("--frames", nargs="+", type=int, default=[30, 300])
    mem.add_argument("--no-one-pass", dest="one_pass", action="store_false", help="skip the one-pass rows")
    long = sections.add_parser("long-video", help="a long video sampled at --fps, in chunks")
    long.add_argument("--minutes", type=float, default=30.0)
    long.add_argument("--video-fps", type=float, default=2.0, help="frame rate of the generated video")
    long.add_argument("--fps", type=float, default=1.0, help="frames sampled per second of video")
    for sub in (mem, long):
        sub.add_argument("--chunk-size", type=int, default=24)
        sub.add_argument("--overlap", type=int, default=6)
    acc = sections.add_parser("accuracy", help="camera-centre error, one pass vs chunks (and loop closure)")
    acc.add_argument("--frames", type=int, default=96)
    acc.add_argument("--seeds", type=int, default=5, help="oracle runs per row")
    args = parser.parse_args()
    if args.child:
        kwargs = json.loads(args.child)
        kwargs.pop("section")
        print(json.dumps(_video_run(**kwargs)))
        return 0
    {"memory": memory, "long-video": long_video, "accuracy": accuracy}.get(
        args.section, lambda _: parser.print_help()
    )(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
