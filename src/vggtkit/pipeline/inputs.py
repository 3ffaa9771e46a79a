"""Turn what the user passed (image files, folders, videos, glob patterns) into an ordered list of frames.

Frames are sorted by natural name order (``img2`` before ``img10``) of their paths; the first is the reference
frame unless the caller chooses another. Video files expand, in place, into frames sampled at ``fps``.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vggtkit.io.images import load_rgb_image
from vggtkit.io.paths import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_image_path, is_video_path, natural_key
from vggtkit.io.video import iter_video_frames, no_frame_message, plan_video_frames

# IMAGE_SUFFIXES and natural_key are re-exported: the web demo imports them from here.
__all__ = [
    "IMAGE_SUFFIXES",
    "FrameRef",
    "InputFrame",
    "find_inputs",
    "iter_frames",
    "natural_key",
    "plan_frames",
    "resolve_inputs",
]

logger = logging.getLogger(__name__)

InputPath = str | os.PathLike[str]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FrameRef:
    """Where one input frame comes from, before it is read.

    Attributes:
        name: the frame's unique name (see :class:`InputFrame`).
        path: the image file, or the video holding the frame.
        video_index: the frame's index in the video; None for an image file.
    """

    name: str
    path: Path
    video_index: int | None = None


@dataclass
class InputFrame:
    """One input frame.

    Attributes:
        name: unique file name used by exports (COLMAP image names, ``images/`` copies); for video frames
            ``<video stem>_<frame index:06d>.png``.
        path: the source image file, or None for a decoded video frame.
        rgb: decoded pixels (H, W, 3) uint8 for video frames, else None.
    """

    name: str
    path: Path | None = None
    rgb: np.ndarray | None = None

    def load(self) -> Image.Image:
        """The frame as an 8-bit RGB PIL image, EXIF orientation applied."""
        if self.rgb is not None:
            return Image.fromarray(self.rgb)
        assert self.path is not None
        return load_rgb_image(self.path, exif_transpose=True)


def _is_image_file(path: Path) -> bool:
    """Decide by suffix; for unknown suffixes ask PIL whether it recognises the file."""
    if is_image_path(path):
        return True
    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, SyntaxError):
        return False


def _folder_images(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    images = [p for p in files if is_image_path(p)]
    if images:
        return images
    if (folder / "images").is_dir():  # the scene/images/ layout of COLMAP and the official demos
        return _folder_images(folder / "images")
    videos = [p.name for p in files if is_video_path(p)]
    hint = (
        f"; it holds video(s) {', '.join(sorted(videos)[:3])}: pass the video file instead" if videos else ""
    )
    raise ValueError(f"no image files in folder '{folder}' (looked for {', '.join(IMAGE_SUFFIXES)}){hint}")


def _expand(item: InputPath) -> list[Path]:
    """A path, folder or glob pattern -> files (unsorted)."""
    text = os.fspath(item)
    path = Path(text).expanduser()
    if path.is_dir():
        return _folder_images(path)
    if path.is_file():
        if is_video_path(path) or _is_image_file(path):
            return [path]
        raise ValueError(
            f"'{path}' is neither an image nor a video: pass image files ({', '.join(IMAGE_SUFFIXES[:4])}, ...), "
            f"a folder of images, or a video ({', '.join(VIDEO_SUFFIXES[:4])}, ...)"
        )
    if any(ch in text for ch in "*?["):
        matches = [Path(m) for m in glob.glob(os.path.expanduser(text)) if Path(m).is_file()]
        if matches:
            return [m for m in matches if is_video_path(m) or _is_image_file(m)]
        raise ValueError(f"no file matches the pattern '{text}'")
    raise ValueError(f"input not found: '{text}'; check the path (and the working directory)")


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """Basenames, made unique with the parent folder (then an index) where two inputs share one."""
    names = [p.name for p in paths]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    out: list[str] = []
    seen: set[str] = set()
    for path, name in zip(paths, names, strict=True):
        candidate = f"{path.parent.name}_{name}" if counts[name] > 1 and path.parent.name else name
        stem, suffix = os.path.splitext(candidate)
        k = 1
        while candidate in seen:
            candidate = f"{stem}_{k}{suffix}"
            k += 1
        seen.add(candidate)
        out.append(candidate)
    return out


def _even_subset(refs: list[FrameRef], count: int) -> list[FrameRef]:
    picks = np.linspace(0, len(refs) - 1, count).round().astype(int)
    return [refs[i] for i in picks]


def find_inputs(inputs: InputPath | Iterable[InputPath]) -> list[Path]:
    """Expand paths, folders and glob patterns into image and video files in natural order, without reading them.

    Raises:
        ValueError: when nothing is found, a path does not exist, or a file is neither image nor video.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise ValueError("no input given: pass image files, a folder of images, or a video")
    paths: list[Path] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise ValueError(f"inputs must be paths (str or os.PathLike), got {type(item).__name__}")
        paths.extend(_expand(item))
    paths = sorted(dict.fromkeys(paths), key=lambda p: natural_key(str(p)))
    if not paths:
        raise ValueError(f"no image or video found in {', '.join(map(os.fspath, items))}")
    return paths


def _video_refs(path: Path, fps: float, max_frames: int | None) -> list[FrameRef]:
    indices = plan_video_frames(path, fps=fps, max_frames=max_frames)
    if not indices:
        raise ValueError(no_frame_message(path))
    return [FrameRef(f"{path.stem}_{index:06d}.png", path, index) for index in indices]


def _unique_refs(refs: list[FrameRef]) -> list[FrameRef]:
    """Video frames may collide with image names or with each other: suffix repeated names."""
    seen: set[str] = set()
    out = []
    for ref in refs:
        name = ref.name
        stem, suffix = os.path.splitext(name)
        k = 1
        while name in seen:
            name = f"{stem}_{k}{suffix}"
            k += 1
        seen.add(name)
        out.append(ref if name == ref.name else dataclasses.replace(ref, name=name))
    return out


def plan_frames(
    inputs: InputPath | Iterable[InputPath], fps: float = 1.0, max_frames: int | None = None
) -> list[FrameRef]:
    """Which frames :func:`resolve_inputs` gives, in order, without reading any pixel.

    Videos are probed (and read through only when their container does not report a frame count); see
    :func:`resolve_inputs` for the arguments and errors.
    """
    paths = find_inputs(inputs)
    image_paths = [p for p in paths if not is_video_path(p)]
    image_names = dict(zip(image_paths, _unique_names(image_paths), strict=True))
    refs: list[FrameRef] = []
    for path in paths:
        if path in image_names:
            refs.append(FrameRef(image_names[path], path))
        else:
            refs.extend(_video_refs(path, fps, max_frames))
    if max_frames is not None and len(refs) > max_frames:
        logger.warning("%d frames found; keeping %d evenly spaced ones (max_frames)", len(refs), max_frames)
        refs = _even_subset(refs, max_frames)
    return _unique_refs(refs)


def _decode_run(refs: list[FrameRef], progress: Progress | None) -> Iterator[InputFrame]:
    """Frames of one video, decoded in one pass."""
    path = refs[0].path
    by_index = {ref.video_index: ref for ref in refs}

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(f"decode {path.name}", done, total)

    for frame in iter_video_frames(path, list(by_index), report):
        yield InputFrame(name=by_index[frame.index].name, rgb=frame.rgb)


def iter_frames(refs: Sequence[FrameRef], progress: Progress | None = None) -> Iterator[InputFrame]:
    """The frames of ``refs`` in order, read one at a time: images are loaded when used (``InputFrame.load``),
    each run of frames of one video is decoded in one pass through it.

    Args:
        refs: frames from :func:`plan_frames`.
        progress: ``progress("decode <video name>", done, total)`` while a video is decoded.
    """
    for (path, is_image), run in itertools.groupby(refs, key=lambda r: (r.path, r.video_index is None)):
        if is_image:
            for ref in run:
                yield InputFrame(name=ref.name, path=path)
        else:
            yield from _decode_run(list(run), progress)


def resolve_inputs(
    inputs: InputPath | Iterable[InputPath],
    fps: float = 1.0,
    max_frames: int | None = None,
    progress: Progress | None = None,
) -> list[InputFrame]:
    """Resolve image paths, folders, glob patterns and videos into frames in natural name order.

    Args:
        inputs: one path or several: image files, folders of images (or a folder with an ``images/``
            subfolder), glob patterns, or video files (see :func:`find_inputs`).
        fps: video sampling rate in frames per second of video time.
        max_frames: keep at most this many frames in total (evenly spaced; videos are thinned first).
        progress: ``progress("decode <video name>", done, total)`` while videos are decoded.

    Returns:
        The frames, ordered: inputs sorted by natural order of their paths, video frames in time order. Video
        frames are decoded into memory (:func:`plan_frames` and :func:`iter_frames` stream them instead).

    Raises:
        ValueError: when nothing is found, a path does not exist, a file is neither image nor video, or a
            video has no decodable frame.
    """
    return list(iter_frames(plan_frames(inputs, fps, max_frames), progress))
