"""Video frames chosen before decoding, then decoded one at a time in one pass."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vggtkit.io.video import (
    count_frames,
    iter_video_frames,
    plan_video_frames,
    sample_video_frames,
    sampled_indices,
)


def write_video(path: Path, n_frames: int, fps: float = 10.0, size: tuple[int, int] = (64, 48)) -> Path:
    """Frame k is uniformly grey at level 10 k (mp4v keeps the mean grey level)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for k in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), 10 * k % 256, np.uint8))
    writer.release()
    return path


def test_sampled_indices_follow_video_time() -> None:
    assert sampled_indices(20, 10.0, 2.0) == [0, 5, 10, 15]
    assert sampled_indices(10, 10.0, 3.0) == [0, 4, 7]  # the first frame at or after 0, 1/3 s, 2/3 s
    assert sampled_indices(5, 10.0, 100.0) == [0, 1, 2, 3, 4]  # faster than the video: every frame
    assert sampled_indices(0, 10.0, 1.0) == []
    assert len(sampled_indices(30 * 60 * 30, 30.0, 1.0)) == 1800  # 30 minutes at 30 fps, sampled at 1 fps


def test_plan_then_stream_one_frame_at_a_time(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", n_frames=20)
    assert count_frames(video) == 20
    assert plan_video_frames(video, fps=2.0) == [0, 5, 10, 15]
    assert plan_video_frames(video, fps=2.0, max_frames=2) == [0, 15]
    reported = []
    stream = iter_video_frames(video, [3, 7, 19], progress=lambda done, total: reported.append((done, total)))
    first = next(stream)  # decoding is lazy: only frame 3 has been converted so far
    assert first.index == 3 and reported == [] and round(float(first.rgb.mean()) / 10) == 3
    rest = list(stream)
    assert [f.index for f in rest] == [7, 19] and [round(float(f.rgb.mean()) / 10) for f in rest] == [7, 19]
    assert reported == [(1, 3), (2, 3), (3, 3)]
    assert rest[-1].time_s == pytest.approx(1.9)
    assert [f.index for f in sample_video_frames(video, fps=2.0)] == [0, 5, 10, 15]


def test_frames_past_the_end_are_skipped(tmp_path: Path, caplog) -> None:
    video = write_video(tmp_path / "short.mp4", n_frames=5)
    assert [f.index for f in iter_video_frames(video, [1, 4, 9])] == [1, 4]
    assert "short.mp4 ended after 5 frames; frame 9 was expected" in caplog.text
