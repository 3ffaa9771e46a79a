"""Per-frame arrays of a long sequence kept on disk, so that memory does not grow with the number of frames.

A chunked reconstruction writes each chunk's maps (images, depth, confidences, points) to files as soon as the
chunk is done, reads back the few frames it needs later (alignment, loop closure, the final transform), and at the
end maps the finished files into memory: the :class:`~vggtkit.reconstruction.Reconstruction` it returns holds
copy-on-write memory maps, whose pages are read from disk when used and can be dropped again by the system. The
files are unlinked once mapped (POSIX keeps their data while a mapping or handle is open), so nothing is left
behind, however the process ends after that point.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["FrameStore", "StoredFrames"]

logger = logging.getLogger(__name__)


class _RecordFile:
    """Fixed-size records of one array shape and dtype, record ``i`` at byte ``i * record_bytes``."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.record_bytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        self.file: BinaryIO = open(path, "w+b")  # noqa: SIM115 (closed by FrameStore.close)
        self.count = 0

    def write(self, index: int, array: np.ndarray) -> None:
        if tuple(array.shape) != self.shape:
            raise ValueError(f"{self.path.name}: a record has shape {self.shape}, got {tuple(array.shape)}")
        self.file.seek(index * self.record_bytes)
        self.file.write(np.ascontiguousarray(array, dtype=self.dtype).tobytes())
        self.count = max(self.count, index + 1)

    def read(self, index: int) -> np.ndarray:
        self.file.seek(index * self.record_bytes)
        out = np.empty(self.shape, self.dtype)
        if self.file.readinto(memoryview(out).cast("B")) != self.record_bytes:
            raise ValueError(f"{self.path.name}: record {index} was never written")
        return out


class StoredFrames(Sequence[np.ndarray]):
    """Arrays of varying shapes (original video frames) read from one file on access, one at a time.

    Behaves as the list ``Reconstruction.source_frames`` expects; only the frame asked for is in memory.
    """

    def __init__(self, file: BinaryIO, entries: list[tuple[int, tuple[int, ...]]], dtype: np.dtype) -> None:
        self._file = file
        self._entries = entries
        self._dtype = np.dtype(dtype)
        weakref.finalize(self, file.close)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        offset, shape = self._entries[index]
        if not shape:
            return None
        out = np.empty(shape, self._dtype)
        self._file.seek(offset)
        self._file.readinto(memoryview(out).cast("B"))
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


class FrameStore:
    """Named per-frame arrays in files under a fresh folder inside ``work_dir`` (default: the system's temp folder).

    ``write(name, index, array)`` stores record ``index`` of array ``name`` (every record of a name has one shape
    and dtype); ``read`` returns a copy; :meth:`mapped` maps a finished array; :meth:`append_source` and
    :meth:`source_frames` keep arrays of varying shapes. :meth:`close` unlinks everything (mapped arrays stay
    valid on POSIX systems).
    """

    def __init__(self, work_dir: str | os.PathLike[str] | None = None) -> None:
        try:
            if work_dir is not None:
                Path(work_dir).mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix="vggtkit-frames-", dir=work_dir))
        except OSError as exc:
            raise ValueError(
                f"cannot keep frames in work_dir='{work_dir}' ({exc.strerror or exc}); give a writable folder"
            ) from exc
        self._files: dict[str, _RecordFile] = {}
        self._source = open(self.folder / "source_frames.bin", "w+b")  # noqa: SIM115 (handed to StoredFrames)
        self._source_entries: list[tuple[int, tuple[int, ...]]] = []
        self._source_end = 0

    def write(self, name: str, index: int, array: np.ndarray) -> None:
        """Store ``array`` as record ``index`` of ``name`` (its first write fixes the shape and dtype)."""
        if name not in self._files:
            self._files[name] = _RecordFile(self.folder / f"{name}.bin", tuple(array.shape), array.dtype)
        self._files[name].write(index, array)

    def write_many(self, name: str, indices: Sequence[int], arrays: np.ndarray) -> None:
        """Store ``arrays[k]`` as record ``indices[k]`` of ``name``."""
        for index, array in zip(indices, arrays, strict=True):
            self.write(name, int(index), array)

    def read(self, name: str, indices: Sequence[int]) -> np.ndarray:
        """Records ``indices`` of ``name``, stacked: (len(indices), *shape)."""
        records = self._files[name]
        return (
            np.stack([records.read(int(i)) for i in indices])
            if len(indices)
            else np.empty((0, *records.shape))
        )

    def has(self, name: str) -> bool:
        return name in self._files

    def mapped(self, name: str) -> np.ndarray:
        """All records of ``name`` as one copy-on-write memory map (count, *shape): reads come from the file,
        writes stay in this process."""
        records = self._files[name]
        records.file.flush()
        return np.memmap(records.path, dtype=records.dtype, mode="c", shape=(records.count, *records.shape))

    def append_source(self, array: np.ndarray | None) -> None:
        """Keep one source frame (uint8, any shape), or None for a frame that has a file of its own."""
        if array is None:
            self._source_entries.append((self._source_end, ()))
            return
        data = np.ascontiguousarray(array, dtype=np.uint8)
        self._source.seek(self._source_end)
        self._source.write(data.tobytes())
        self._source_entries.append((self._source_end, tuple(data.shape)))
        self._source_end += data.nbytes

    def source_frames(self) -> StoredFrames | None:
        """The kept source frames, read on access (None when every frame has a file of its own)."""
        if all(not shape for _, shape in self._source_entries):
            return None
        self._source.flush()
        frames = StoredFrames(self._source, self._source_entries, np.uint8)
        self._source = None  # now owned by the StoredFrames
        return frames

    def close(self) -> None:
        """Close and unlink every file and the folder (memory maps and :class:`StoredFrames` stay readable)."""
        for records in self._files.values():
            records.file.close()
        if self._source is not None:
            self._source.close()
        try:
            shutil.rmtree(self.folder)
        except OSError as exc:  # mapped files cannot be removed on some systems (Windows)
            logger.warning("could not remove the frame store %s (%s); delete it when done", self.folder, exc)
