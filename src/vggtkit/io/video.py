"""Video frame sampling with OpenCV (opencv-python-headless).

Frames are taken at a fixed rate in video time: frame 0 first, then one every ``1 / fps`` seconds (the
official demo samples 1 frame per second but skips frame 0). ``max_frames`` keeps an evenly spaced subset.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vggtkit.io.paths import VIDEO_SUFFIXES, is_video_path

__all__ = ["VIDEO_SUFFIXES", "VideoFrame", "VideoInfo", "is_video_path", "probe_video", "sample_video_frames"]

logger = logging.getLogger(__name__)

_FALLBACK_FPS = 30.0


@dataclass(frozen=True)
class VideoInfo:
    """What the container reports. ``frame_count`` may be 0 or approximate for some codecs."""

    fps: float
    frame_count: int
    width: int
    height: int


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its index in the video, its time in seconds, and the RGB pixels (H, W, 3) uint8."""

    index: int
    time_s: float
    rgb: np.ndarray


def _open(path: Path):
    import cv2

    if not path.is_file():
        raise ValueError(f"video file not found: '{path}'")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise ValueError(
            f"no decodable frame in '{path}': OpenCV cannot open it as a video (empty, corrupt, or an unsupported "
            "codec); re-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) or extract the frames as images"
        )
    return cap


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's frame rate, frame count and size without decoding it.

    Raises:
        ValueError: if the file does not exist or OpenCV cannot open it.
    """
    import cv2

    cap = _open(Path(path))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return VideoInfo(
            fps=fps if math.isfinite(fps) and fps > 0 else 0.0,
            frame_count=max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        cap.release()


def _even_subset(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items``, first and last included."""
    if count >= len(items):
        return items
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in picks]


def _check_sampling(fps: float, max_frames: int | None) -> None:
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """An OpenCV frame (H, W, 3) BGR or (H, W) grey -> (H, W, 3) RGB uint8."""
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else np.dstack([image] * 3)


def _decode_every(
    cap: Any, step: float, video_fps: float, progress: Callable[[int, int], None] | None, total: int
) -> tuple[list[VideoFrame], int]:
    """Read the whole video, keeping the first frame at or after each sampling time (every ``step`` source
    frames). Returns the kept frames and the number of frames read."""
    frames: list[VideoFrame] = []
    next_sample = 0.0
    index = 0
    while cap.grab():
        if index + 1e-6 >= next_sample:
            ok, image = cap.retrieve()
            if ok and image is not None and image.size:
                frames.append(VideoFrame(index=index, time_s=index / video_fps, rgb=_to_rgb(image)))
                while next_sample <= index + 1e-6:
                    next_sample += step
        index += 1
        if progress is not None:
            progress(index, total)
    return frames, index


def sample_video_frames(
    path: str | os.PathLike[str],
    fps: float = 1.0,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[VideoFrame]:
    """Decode frames of a video at ``fps`` frames per second of video time.

    Frame ``n`` (at time ``n / video_fps``) is kept when it is the first frame at or after the next sampling
    time ``k / fps``, so frame 0 is always kept. With ``fps`` above the video's rate, every frame is kept.

    Args:
        path: video file (anything OpenCV's FFMPEG backend decodes: mp4, mov, avi, mkv, webm, ...).
        fps: sampling rate in frames per second of video time (> 0).
        max_frames: keep at most this many frames, evenly spaced over the sampled ones.
        progress: called as ``progress(frames_read, frames_total)`` while decoding (total may be 0 if unknown).

    Returns:
        The kept frames in time order.

    Raises:
        ValueError: on a bad ``fps``/``max_frames``, a file OpenCV cannot open, or a video with no decodable frame.
    """
    _check_sampling(fps, max_frames)
    path = Path(path)
    info = probe_video(path)
    video_fps = info.fps
    if video_fps <= 0:
        logger.warning("%s does not report its frame rate; assuming %.0f fps", path.name, _FALLBACK_FPS)
        video_fps = _FALLBACK_FPS
    step = max(video_fps / fps, 1.0)  # source frames between two samples
    cap = _open(path)
    try:
        frames, read = _decode_every(cap, step, video_fps, progress, info.frame_count)
    finally:
        cap.release()
    if not frames:
        raise ValueError(
            f"no decodable frame in '{path}' (empty, corrupt, or a codec OpenCV cannot decode); "
            "re-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) or extract the frames as images"
        )
    if max_frames is not None and len(frames) > max_frames:
        logger.info("%s: keeping %d of %d sampled frames (max_frames)", path.name, max_frames, len(frames))
        frames = _even_subset(frames, max_frames)
    logger.info(
        "%s: %d frames sampled at %g fps (video: %.3g fps, %d frames)",
        path.name,
        len(frames),
        fps,
        video_fps,
        read,
    )
    return frames
