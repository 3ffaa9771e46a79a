"""Uploads -> a folder of frames: images are checked and copied, videos are sampled into PNG frames.

Every problem a user can cause (an empty file, a file that is not an image, a corrupt image, a video without a
decodable frame, too many frames, too many megabytes) raises :class:`UploadError` with one sentence naming the file
and the fix; nothing is left behind in that case (frames are written to a temporary folder, renamed at the end).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vggtkit.io.images import PATCH_SIZE
from vggtkit.io.paths import (
    BROWSER_IMAGE_SUFFIXES,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    is_video_path,
    natural_key,
)
from vggtkit.io.video import probe_video, sample_video_frames
from vggtkit.utils.atomic import atomic_dir

__all__ = ["UploadError", "UploadLimits", "ingest_uploads", "list_frames"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


class UploadError(ValueError):
    """An upload the demo cannot use; the message names the file and what to do."""


@dataclass(frozen=True)
class UploadLimits:
    """Bounds of one upload: frames in total (images plus sampled video frames) and bytes of all files."""

    max_frames: int
    max_bytes: int


def _display_name(path: Path) -> str:
    return path.name or str(path)


def _check_image(path: Path) -> tuple[int, int]:
    """Decode the whole file; return (width, height) or raise UploadError saying what is wrong."""
    name = _display_name(path)
    try:
        with Image.open(path) as img:
            fmt = img.format
            img.load()
            size = img.size
    except UnidentifiedImageError:
        raise UploadError(
            f"'{name}' is not an image this demo can read; upload image files (PNG, JPEG, WebP, ...) or a video "
            f"({', '.join(VIDEO_SUFFIXES[:4])}, ...)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadError(
            f"'{name}' could not be decoded ({exc}); the image is corrupt or truncated: re-export it and upload "
            "again"
        ) from None
    if min(size) < PATCH_SIZE:
        raise UploadError(
            f"'{name}' ({fmt}, {size[0]}x{size[1]} pixels) is smaller than {PATCH_SIZE} pixels on a side; "
            "upload larger images"
        )
    return size


def _video_extent(path: Path, fps: float) -> tuple[int | None, float | None]:
    """(frames sampling would keep, duration in seconds) from the container (None where unknown)."""
    info = probe_video(path)
    if info.frame_count <= 0 or info.fps <= 0:
        return None, None
    duration = info.frame_count / info.fps
    return int(math.floor(duration * min(fps, info.fps) + 1e-9)) + 1, duration


def _too_many(
    count: int,
    n_images: int,
    video_frames: int,
    fps: float,
    limits: UploadLimits,
    video_seconds: float | None,
) -> UploadError:
    detail = f"{n_images} image(s)" + (
        f" + {video_frames} video frame(s) at {fps:g} fps" if video_frames else ""
    )
    tips = []
    if video_frames and video_seconds:
        room = limits.max_frames - n_images
        if room >= 1:
            tips.append(f"lower the video frame rate to {max(room - 1, 1) / video_seconds:.2g} fps or less")
    tips.append("upload fewer images" if n_images else "upload a shorter video")
    return UploadError(
        f"{count} frames ({detail}) exceed this demo's limit of {limits.max_frames} frames; "
        + " or ".join(tips)
    )


def _unique(name: str, taken: set[str]) -> str:
    stem, suffix = os.path.splitext(name)
    candidate, k = name, 1
    while candidate.lower() in taken:
        candidate = f"{stem}_{k}{suffix}"
        k += 1
    taken.add(candidate.lower())
    return candidate


def _safe_name(name: str) -> str:
    """A plain file name (no folders, no leading dots) from an uploaded file's name."""
    base = os.path.basename(name.replace("\\", "/")).lstrip(".") or "image"
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in base)


def ingest_uploads(
    images_dir: str | os.PathLike[str],
    image_files: Sequence[str | os.PathLike[str]] | None,
    video_file: str | os.PathLike[str] | None,
    fps: float,
    limits: UploadLimits,
    progress: Progress | None = None,
) -> list[str]:
    """Check the uploads and write the frames into ``images_dir`` (created, or replaced when it exists).

    Args:
        images_dir: destination folder of the frames.
        image_files: uploaded image files (video files among them are sampled like ``video_file``).
        video_file: an uploaded video, sampled at ``fps`` frames per second of video time (frame 0 first).
        fps: video sampling rate (> 0).
        limits: most frames and bytes.
        progress: called as ``progress(stage, done, total)`` while checking images, before writing the frames and
            while decoding videos; an exception it raises stops the upload (nothing is written).

    Returns:
        The frame file names in natural order (empty when nothing was uploaded).

    Raises:
        UploadError: naming the file and the problem: empty, not an image, corrupt, too small, a video without a
            decodable frame, too many frames or bytes, or a bad frame rate.
    """
    images, videos = _split_uploads(image_files, video_file)
    if not images and not videos:
        return []
    _check_frame_rate(fps)
    _check_sizes([*images, *videos], limits)
    _check_images(images, limits, fps, progress)
    budget = _check_videos(videos, len(images), fps, limits)
    if progress is not None:
        progress("write frames", 0, len(images) + len(videos))
    with atomic_dir(images_dir) as tmp:
        taken: set[str] = set()
        names = _copy_images(images, tmp, taken)
        names += _sample_videos(videos, tmp, taken, budget, progress)
    logger.info("ingested %d frame(s) into %s", len(names), images_dir)
    return sorted(names, key=natural_key)


def _split_uploads(
    image_files: Sequence[str | os.PathLike[str]] | None, video_file: str | os.PathLike[str] | None
) -> tuple[list[Path], list[Path]]:
    """(images, videos): videos dropped into the image box are sampled like the video box's."""
    files = [Path(p) for p in (image_files or []) if p]
    videos = [p for p in files if is_video_path(p)]
    images = [p for p in files if not is_video_path(p)]
    if video_file:
        videos.insert(0, Path(video_file))
    return images, videos


def _check_frame_rate(fps: float) -> None:
    if isinstance(fps, bool) or not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise UploadError(f"the video frame rate must be a number above 0 frames per second, got {fps!r}")


def _check_sizes(files: Sequence[Path], limits: UploadLimits) -> None:
    """Empty files and uploads over the byte limit are refused before anything is decoded."""
    for path in files:
        if path.is_file() and path.stat().st_size == 0:
            raise UploadError(
                f"'{_display_name(path)}' is empty (0 bytes); the file may not have been saved completely: "
                "upload it again or choose another file"
            )
    total = sum(p.stat().st_size for p in files if p.is_file())
    if total > limits.max_bytes:
        raise UploadError(
            f"the upload has {total / 2**20:.1f} MB, over this demo's limit of {limits.max_bytes / 2**20:.0f} MB; "
            "upload fewer or smaller files"
        )


def _check_images(
    images: Sequence[Path], limits: UploadLimits, fps: float, progress: Progress | None
) -> None:
    if len(images) > limits.max_frames:
        raise _too_many(len(images), len(images), 0, fps, limits, None)
    for i, path in enumerate(images):
        _check_image(path)
        if progress is not None:
            progress("check images", i + 1, len(images))


@dataclass(frozen=True)
class _FrameBudget:
    """How many video frames still fit, with what the messages need to suggest a lower frame rate."""

    n_images: int
    fps: float
    limits: UploadLimits
    video_seconds: float | None

    def check(self, video_frames: int) -> None:
        count = self.n_images + video_frames
        if count > self.limits.max_frames:
            raise _too_many(count, self.n_images, video_frames, self.fps, self.limits, self.video_seconds)


def _check_videos(videos: Sequence[Path], n_images: int, fps: float, limits: UploadLimits) -> _FrameBudget:
    """Probe every video (without decoding it) and refuse the upload when sampling would exceed the frame limit."""
    expected, seconds = 0, 0.0
    for video in videos:
        try:
            estimate, duration = _video_extent(video, fps)
        except ValueError:
            raise UploadError(
                f"the video '{_display_name(video)}' cannot be read (it has no frames, an unsupported codec, or is "
                "not a video); re-encode it as MP4 (H.264) or upload its frames as images"
            ) from None
        expected += estimate or 0
        seconds += duration or 0.0
    budget = _FrameBudget(n_images, fps, limits, seconds or None)
    budget.check(expected)
    return budget


def _copy_images(images: Sequence[Path], folder: Path, taken: set[str]) -> list[str]:
    """Copy the images browsers display as they are; convert the others (TIFF, PPM, ...) to PNG."""
    names = []
    for path in images:
        name = _safe_name(path.name)
        if Path(name).suffix.lower() in BROWSER_IMAGE_SUFFIXES:
            name = _unique(name, taken)
            shutil.copyfile(path, folder / name)
        else:
            name = _unique(f"{Path(name).stem}.png", taken)
            with Image.open(path) as img:
                img.convert("RGB").save(folder / name, format="PNG")
        names.append(name)
    return names


def _sample_videos(
    videos: Sequence[Path], folder: Path, taken: set[str], budget: _FrameBudget, progress: Progress | None
) -> list[str]:
    """Decode each video at the budget's frame rate into PNG frames named ``<video stem>_<frame index>.png``."""
    names: list[str] = []
    for video in videos:

        def report(done: int, total: int, _name: str = video.name) -> None:
            if progress is not None:
                progress(f"decode {_name}", done, total)

        try:
            frames = sample_video_frames(video, fps=budget.fps, progress=report)
        except ValueError:
            raise UploadError(
                f"the video '{_display_name(video)}' has no decodable frame (empty, corrupt, or a codec this "
                "demo cannot read); re-encode it as MP4 (H.264) or upload its frames as images"
            ) from None
        budget.check(len(names) + len(frames))  # the container's frame count can be wrong
        stem = _safe_name(Path(video.name).stem)
        for frame in frames:
            name = _unique(f"{stem}_{frame.index:06d}.png", taken)
            Image.fromarray(frame.rgb).save(folder / name, format="PNG")
            names.append(name)
    return names


def list_frames(images_dir: str | os.PathLike[str]) -> list[str]:
    """Frame file names in ``images_dir`` in natural order (the order of the reconstruction)."""
    folder = Path(images_dir)
    if not folder.is_dir():
        return []
    names = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(names, key=natural_key)
