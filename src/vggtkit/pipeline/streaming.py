"""Frames fed to the pipeline a few at a time: images read and videos decoded only when their chunk runs.

A :class:`PathFeed` knows how many frames a sequence has and the (H, W) of its batches before reading any pixel
(image headers and each video's first frame), then reads the frames in order, ``take(n)`` at a time: a video is
decoded in one pass and never held in memory as a whole. A :class:`TensorFeed` serves frames already in memory.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from PIL import Image, UnidentifiedImageError

from vggtkit.io.preprocessing import Preprocessing
from vggtkit.io.video import iter_video_frames, no_frame_message
from vggtkit.pipeline.frames import PreparedFrames, batch_shape, prepare_frames, slice_frames
from vggtkit.pipeline.inputs import FrameRef, iter_frames

__all__ = ["FrameFeed", "PathFeed", "TensorFeed"]

Progress = Callable[[str, int, int], None]
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class FrameFeed(Protocol):
    """A sequence of frames served in order.

    Attributes:
        num_frames: frames the sequence is expected to have (a video may end early).
    """

    num_frames: int

    @property
    def hw(self) -> tuple[int, int]:
        """(H, W) of every batch ``take`` returns."""
        ...

    def take(self, count: int, progress: Progress | None = None) -> PreparedFrames | None:
        """The next ``count`` frames (fewer at the end), or None when none is left."""
        ...


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image after its EXIF orientation, from its header."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(
            f"cannot read '{path}' as an image ({err}); pass an image file PIL can open (PNG, JPEG, ...)"
        ) from err
    return (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)


@functools.lru_cache(maxsize=64)
def _video_size(path: Path) -> tuple[int, int]:
    """(width, height) of a video's decoded frames (its first frame: containers may report them unrotated)."""
    for frame in iter_video_frames(path, [0]):
        return frame.rgb.shape[1], frame.rgb.shape[0]
    raise ValueError(no_frame_message(path))


class PathFeed:
    """Frames of image files and videos (from :func:`~vggtkit.pipeline.inputs.plan_frames`), read on demand.

    Args:
        refs: the frames, in order.
        preprocessing: the model family's image preprocessing.
    """

    def __init__(self, refs: Sequence[FrameRef], preprocessing: Preprocessing) -> None:
        self.refs = list(refs)
        self.num_frames = len(self.refs)
        self.preprocessing = preprocessing
        self._frames = iter_frames(self.refs)

    @functools.cached_property
    def hw(self) -> tuple[int, int]:
        """(H, W) of the batches, from every frame's size (a ValueError names a frame the model cannot take)."""
        sizes = (
            (ref.name, *(_image_size(ref.path) if ref.video_index is None else _video_size(ref.path)))
            for ref in self.refs
        )
        return batch_shape(sizes, self.preprocessing)

    def take(self, count: int, progress: Progress | None = None) -> PreparedFrames | None:
        frames = list(itertools.islice(self._frames, count))
        if not frames:
            return None
        return prepare_frames(frames, self.preprocessing, progress, batch_hw=self.hw)

    def take_all(self, progress: Progress | None = None) -> PreparedFrames:
        """Every frame in one batch of the largest frame's size (for one pass)."""
        frames = list(iter_frames(self.refs, progress))
        return prepare_frames(frames, self.preprocessing, progress)


class TensorFeed:
    """Frames already prepared in memory (an image tensor), served in slices."""

    def __init__(self, frames: PreparedFrames) -> None:
        self.frames = frames
        self.num_frames = len(frames.names)
        self._next = 0

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.frames.images.shape[-2]), int(self.frames.images.shape[-1])

    def take(self, count: int, progress: Progress | None = None) -> PreparedFrames | None:
        if self._next >= self.num_frames:
            return None
        start, self._next = self._next, min(self._next + count, self.num_frames)
        return slice_frames(self.frames, start, self._next)

    def take_all(self, progress: Progress | None = None) -> PreparedFrames:
        return self.frames
