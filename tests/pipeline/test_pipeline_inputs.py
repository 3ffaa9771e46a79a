"""Input resolution: natural order, folders, globs, unique names, videos sampled with OpenCV, clear errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vggtkit.io.video import probe_video, sample_video_frames
from vggtkit.pipeline import natural_key, resolve_inputs


def _image(path: Path, w: int = 32, h: int = 24, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return path


def write_video(path: Path, n_frames: int = 20, fps: float = 10.0, size: tuple[int, int] = (64, 48)) -> Path:
    """An mp4v video whose frame k is uniformly grey with value 10 k (readable back as its index)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for k in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), 10 * k, np.uint8))
    writer.release()
    return path


def test_natural_order_and_folder(tmp_path: Path) -> None:
    for name in ("img10.png", "img2.png", "IMG1.png", "img1b.png"):
        _image(tmp_path / "photos" / name)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    (tmp_path / "photos" / ".hidden.png").write_bytes(b"")
    frames = resolve_inputs(tmp_path / "photos")
    assert [f.name for f in frames] == ["IMG1.png", "img1b.png", "img2.png", "img10.png"]
    assert natural_key("a2") < natural_key("a10") < natural_key("b1")
    # Explicit lists are sorted too (a shell glob gives img10 before img2).
    explicit = resolve_inputs([tmp_path / "photos" / "img10.png", tmp_path / "photos" / "img2.png"])
    assert [f.name for f in explicit] == ["img2.png", "img10.png"]


def test_scene_images_layout_glob_and_unique_names(tmp_path: Path) -> None:
    _image(tmp_path / "scene" / "images" / "a.png")
    assert [f.name for f in resolve_inputs(tmp_path / "scene")] == ["a.png"]
    _image(tmp_path / "x" / "same.png")
    _image(tmp_path / "y" / "same.png")
    frames = resolve_inputs([tmp_path / "y", tmp_path / "x"])
    assert [f.name for f in frames] == ["x_same.png", "y_same.png"]
    assert [f.name for f in resolve_inputs(str(tmp_path / "x" / "*.png"))] == ["same.png"]


def test_max_frames_keeps_evenly_spaced_frames(tmp_path: Path) -> None:
    for k in range(10):
        _image(tmp_path / f"f{k}.png")
    frames = resolve_inputs(tmp_path, max_frames=4)
    assert [f.name for f in frames] == ["f0.png", "f3.png", "f6.png", "f9.png"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.png", "input not found"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no image files in folder"),
        (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", "neither an image nor a video"),
        (lambda p: p / "*.jpg", "no file matches"),
    ],
)
def test_input_errors(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_inputs(make(tmp_path))


def test_folder_with_only_a_video_says_so(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.mp4", n_frames=2)
    with pytest.raises(ValueError, match="pass the video file"):
        resolve_inputs(tmp_path)


def test_video_sampling_keeps_frame_zero_and_the_rate(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", n_frames=20, fps=10.0)
    info = probe_video(video)
    assert info.fps == pytest.approx(10.0) and (info.width, info.height) == (64, 48)
    frames = sample_video_frames(video, fps=2.0)
    assert [f.index for f in frames] == [0, 5, 10, 15]
    assert [f.time_s for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    # The pixels are the frames' own (mp4v is lossy: compare the mean grey level).
    assert [round(float(f.rgb.mean()) / 10) for f in frames] == [0, 5, 10, 15]
    assert frames[0].rgb.shape == (48, 64, 3) and frames[0].rgb.dtype == np.uint8
    assert len(sample_video_frames(video, fps=100.0)) == 20  # faster than the video: every frame
    assert [f.index for f in sample_video_frames(video, fps=2.0, max_frames=2)] == [0, 15]
    default = resolve_inputs(video)  # 1 fps, as the official demo (but frame 0 included)
    assert [f.name for f in default] == ["clip_000000.png", "clip_000010.png"]
    assert default[0].path is None and default[0].load().size == (64, 48)


def test_video_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(ValueError, match="no decodable frame in .*broken.mp4"):
        resolve_inputs(broken)
    empty = tmp_path / "empty.mp4"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48)).release()  # no frame written
    with pytest.raises(ValueError, match="no decodable frame in .*empty.mp4"):
        resolve_inputs(empty)
    with pytest.raises(ValueError, match="fps"):
        sample_video_frames(write_video(tmp_path / "ok.mp4", n_frames=2), fps=0)
