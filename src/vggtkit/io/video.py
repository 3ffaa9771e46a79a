"""Video frame sampling with OpenCV (opencv-python-headless).

Frames are taken at a fixed rate in video time: frame 0 first, then one every ``1 / fps`` seconds (the
official demo samples 1 frame per second but skips frame 0). ``max_frames`` keeps an evenly spaced subset.
Which frames to keep is decided from the container's frame count before decoding (:func:`plan_video_frames`),
so a long video can be streamed one frame at a time (:func:`iter_video_frames`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vggtkit.io.paths import VIDEO_SUFFIXES, is_video_path

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoFrame",
    "VideoInfo",
    "count_frames",
    "is_video_path",
    "iter_video_frames",
    "no_frame_message",
    "plan_video_frames",
    "probe_video",
    "sample_video_frames",
    "sampled_indices",
]

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


def sampled_indices(frame_count: int, video_fps: float, fps: float) -> list[int]:
    """Indices of the frames kept at ``fps``: frame ``n`` (at time ``n / video_fps``) is kept when it is the first
    frame at or after the next sampling time ``k / fps``, so frame 0 is always kept.

    Args:
        frame_count: frames in the video.
        video_fps: the video's frame rate (> 0).
        fps: sampling rate in frames per second of video time (> 0); above ``video_fps`` every frame is kept.
    """
    step = max(video_fps / fps, 1.0)  # source frames between two samples
    kept: list[int] = []
    next_sample = 0.0
    for index in range(frame_count):
        if index + 1e-6 >= next_sample:
            kept.append(index)
            while next_sample <= index + 1e-6:
                next_sample += step
    return kept


def count_frames(path: str | os.PathLike[str]) -> int:
    """Count a video's frames by reading through it (for containers that do not report their frame count)."""
    cap = _open(Path(path))
    try:
        count = 0
        while cap.grab():
            count += 1
        return count
    finally:
        cap.release()


def _video_fps(path: Path, info: VideoInfo) -> float:
    if info.fps > 0:
        return info.fps
    logger.warning("%s does not report its frame rate; assuming %.0f fps", path.name, _FALLBACK_FPS)
    return _FALLBACK_FPS


def plan_video_frames(
    path: str | os.PathLike[str], fps: float = 1.0, max_frames: int | None = None
) -> list[int]:
    """The indices of the frames :func:`sample_video_frames` keeps, without decoding them (the frame count is the
    container's; a video that does not report it is read through once to count its frames).

    Raises:
        ValueError: on a bad ``fps``/``max_frames`` or a file OpenCV cannot open.
    """
    _check_sampling(fps, max_frames)
    path = Path(path)
    info = probe_video(path)
    frame_count = info.frame_count or count_frames(path)
    indices = sampled_indices(frame_count, _video_fps(path, info), fps)
    if max_frames is not None and len(indices) > max_frames:
        logger.info("%s: keeping %d of %d sampled frames (max_frames)", path.name, max_frames, len(indices))
        indices = _even_subset(indices, max_frames)
    return indices


def iter_video_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[VideoFrame]:
    """Decode the frames with the given indices in one pass through the video, one at a time.

    Only the frame being yielded is held in memory; frames in between are read (``grab``) but not converted.
    A frame that cannot be decoded, or that lies past the end of the video, is skipped.

    Args:
        path: the video file.
        indices: increasing frame indices (e.g. from :func:`plan_video_frames`).
        progress: called as ``progress(frames_yielded, len(indices))``.
    """
    path = Path(path)
    wanted = sorted(set(indices))
    if not wanted:
        return
    video_fps = _video_fps(path, probe_video(path))
    cap = _open(path)
    try:
        position = 0
        for done, target in enumerate(wanted, start=1):
            while position <= target and cap.grab():
                position += 1
            if position <= target:  # the video ended early
                logger.warning("%s ended after %d frames; frame %d was expected", path.name, position, target)
                return
            ok, image = cap.retrieve()
            if ok and image is not None and image.size:
                yield VideoFrame(index=target, time_s=target / video_fps, rgb=_to_rgb(image))
            else:
                logger.warning("%s: frame %d cannot be decoded; skipping it", path.name, target)
            if progress is not None:
                progress(done, len(wanted))
    finally:
        cap.release()


def sample_video_frames(
    path: str | os.PathLike[str],
    fps: float = 1.0,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[VideoFrame]:
    """Decode frames of a video at ``fps`` frames per second of video time, all into memory.

    Frame ``n`` (at time ``n / video_fps``) is kept when it is the first frame at or after the next sampling
    time ``k / fps``, so frame 0 is always kept. With ``fps`` above the video's rate, every frame is kept. Long
    videos are better streamed: :func:`plan_video_frames` then :func:`iter_video_frames`.

    Args:
        path: video file (anything OpenCV's FFMPEG backend decodes: mp4, mov, avi, mkv, webm, ...).
        fps: sampling rate in frames per second of video time (> 0).
        max_frames: keep at most this many frames, evenly spaced over the sampled ones.
        progress: called as ``progress(frames_decoded, frames_to_decode)`` while decoding.

    Returns:
        The kept frames in time order.

    Raises:
        ValueError: on a bad ``fps``/``max_frames``, a file OpenCV cannot open, or a video with no decodable frame.
    """
    path = Path(path)
    indices = plan_video_frames(path, fps, max_frames)
    frames = list(iter_video_frames(path, indices, progress))
    if not frames:
        raise ValueError(no_frame_message(path))
    logger.info("%s: %d frames sampled at %g fps", path.name, len(frames), fps)
    return frames


def no_frame_message(path: Path) -> str:
    """The error for a video without a decodable frame."""
    return (
        f"no decodable frame in '{path}' (empty, corrupt, or a codec OpenCV cannot decode); "
        "re-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) or extract the frames as images"
    )
