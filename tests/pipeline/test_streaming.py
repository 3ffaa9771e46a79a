"""Videos streamed from disk chunk by chunk: decoding keeps pace with the chunks, memory does not grow with length."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import vggtkit.pipeline.inputs as inputs_module
import vggtkit.pipeline.run as run_module
from vggtkit import reconstruct
from vggtkit.pipeline import FrameSampling

pytestmark = pytest.mark.usefixtures("one_thread")

RES = 56
SIZE = (160, 120)  # (width, height) of the video


def _video(path: Path, n_frames: int) -> Path:
    """Frame k: a gradient whose brightness steps with k (mp4v keeps the mean level), at 10 fps."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, SIZE)
    ramp = np.linspace(0, 60, SIZE[0], dtype=np.float32)[None, :, None]
    for k in range(n_frames):
        frame = np.clip(ramp + (k * 37) % 180, 0, 255).astype(np.uint8)
        writer.write(np.ascontiguousarray(np.broadcast_to(frame, (SIZE[1], SIZE[0], 3))))
    writer.release()
    return path


def _run(video: Path, golden_vggt, **options):
    return reconstruct(
        video, golden_vggt, device="cpu", resolution=RES, sampling=FrameSampling(fps=10.0), **options
    )


def test_frames_are_decoded_as_their_chunk_starts(tmp_path: Path, golden_vggt, monkeypatch) -> None:
    video = _video(tmp_path / "clip.mp4", 40)
    decoded = [0]
    calls: list[tuple[int, int]] = []  # (frames in the call, frames decoded so far)
    stream, model = inputs_module.iter_video_frames, run_module._run_model

    def counting_stream(*args, **kwargs):
        for frame in stream(*args, **kwargs):
            decoded[0] += 1
            yield frame

    def recording_model(net, images, *args):
        calls.append((len(images), decoded[0]))
        return model(net, images, *args)

    monkeypatch.setattr(inputs_module, "iter_video_frames", counting_stream)
    monkeypatch.setattr(run_module, "_run_model", recording_model)
    progress = []
    rec = _run(video, golden_vggt, chunk_size=10, overlap=2, progress=lambda *a: progress.append(a))
    # Chunks 0-9, 8-17, 16-25, 24-33, 30-39: each call sees only the frames decoded up to its chunk's end.
    assert calls == [(10, 10), (10, 18), (10, 26), (10, 34), (10, 40)]
    assert [p for p in progress if p[0] == "inference"] == [
        ("inference", n, 40) for n in (10, 18, 26, 34, 40)
    ]
    assert rec.num_frames == 40 and rec.names[-1] == "clip_000039.png"
    # The original frames come back from disk one at a time, with their own pixels.
    levels = [round(float(rec.source_image(k).mean())) for k in (0, 1, 39)]
    expected = [
        round(float(np.clip(np.linspace(0, 60, SIZE[0]) + (k * 37) % 180, 0, 255).mean())) for k in (0, 1, 39)
    ]
    assert np.abs(np.subtract(levels, expected)).max() <= 5  # frames differ by 37 levels
    assert rec.source_image(5).shape == (SIZE[1], SIZE[0], 3)


def _wall(net, images, device, inference) -> dict:
    """A model call seeing a wall 2 units ahead from cameras 0.1 apart: the pipeline's memory without the model's
    (whose own memory depends on the chunk only)."""
    s, _, h, w = images.shape
    centres = torch.zeros(s, 3)
    centres[:, 0] = 0.1 * torch.arange(s)
    fov = 2 * torch.atan(torch.tensor([h / 2 / 50.0, w / 2 / 50.0]))
    pose_enc = torch.cat([-centres, torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(s, 4), fov.expand(s, 2)], -1)
    return {
        "pose_enc": pose_enc[None],
        "depth": torch.full((1, s, h, w, 1), 2.0),
        "depth_conf": torch.full((1, s, h, w), 2.0),
    }


def _traced_peak(video: Path, golden_vggt, work_dir: Path) -> int:
    """Peak bytes of Python and numpy allocations (tracemalloc) during a chunked reconstruction."""
    tracemalloc.start()
    try:
        rec = _run(video, golden_vggt, chunk_size=8, overlap=2, work_dir=work_dir)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rec.num_frames in (24, 96)
    return peak


def test_memory_does_not_grow_with_the_video_length(tmp_path: Path, golden_vggt, monkeypatch) -> None:
    monkeypatch.setattr(run_module, "_run_model", _wall)
    short = _traced_peak(_video(tmp_path / "short.mp4", 24), golden_vggt, tmp_path / "work")
    long = _traced_peak(_video(tmp_path / "long.mp4", 96), golden_vggt, tmp_path / "work")
    # 72 more frames would hold 4.1 MB of decoded video and 2.0 MB of model images, plus the maps, if kept.
    held = 72 * (SIZE[0] * SIZE[1] * 3 + 3 * RES * 42 * 4)
    assert long - short < 0.1 * held, (short, long)
