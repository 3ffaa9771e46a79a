"""Multi-view tracks: the observations of one scene point in several frames, at original resolution."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Tracks", "chain_matches"]


@dataclass
class Tracks:
    """Observations grouped into tracks; a track has at most one observation per frame.

    Attributes:
        track: (M,) int64 track index of each observation, in 0..T-1.
        frame: (M,) int64 frame of each observation.
        xy: (M, 2) float64 pixel position (x, y) in the frame's original image, OpenCV convention (the centre
            of the top-left pixel at (0, 0)).
    """

    track: np.ndarray
    frame: np.ndarray
    xy: np.ndarray

    def __post_init__(self) -> None:
        self.track = np.asarray(self.track, dtype=np.int64).reshape(-1)
        self.frame = np.asarray(self.frame, dtype=np.int64).reshape(-1)
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(-1, 2)
        if not len(self.track) == len(self.frame) == len(self.xy):
            raise ValueError("Tracks.track, frame and xy must have one entry per observation")

    @classmethod
    def empty(cls) -> Tracks:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)))

    def __len__(self) -> int:
        """The number of tracks T."""
        return int(self.track.max()) + 1 if len(self.track) else 0

    @property
    def num_observations(self) -> int:
        return len(self.track)

    def lengths(self) -> np.ndarray:
        """(T,) observations per track."""
        return np.bincount(self.track, minlength=len(self))

    def per_frame(self, num_frames: int) -> np.ndarray:
        """(S,) observations per frame."""
        return np.bincount(self.frame, minlength=num_frames)

    def _kept(self, keep: np.ndarray, min_length: int) -> np.ndarray:
        keep = np.asarray(keep, dtype=bool)
        counts = np.bincount(self.track[keep], minlength=len(self))
        return keep & (counts[self.track] >= min_length)

    def select(self, keep: np.ndarray, min_length: int = 2) -> Tracks:
        """The observations where ``keep`` (M,) is True, in tracks still at least ``min_length`` long,
        renumbered 0..T'-1 in the order of :meth:`kept_track_ids`."""
        keep = self._kept(keep, min_length)
        _, track = np.unique(self.track[keep], return_inverse=True)
        return Tracks(track, self.frame[keep], self.xy[keep])

    def kept_track_ids(self, keep: np.ndarray, min_length: int = 2) -> np.ndarray:
        """(T',) the original index of each track of ``select(keep, min_length)``."""
        return np.unique(self.track[self._kept(keep, min_length)])

    @staticmethod
    def concat(parts: Sequence[Tracks]) -> Tracks:
        """Tracks of several sources side by side (no track is shared between parts)."""
        offset, tracks = 0, []
        for part in parts:
            tracks.append(part.track + offset)
            offset += len(part)
        if not parts:
            return Tracks.empty()
        return Tracks(
            np.concatenate(tracks),
            np.concatenate([p.frame for p in parts]),
            np.concatenate([p.xy for p in parts]),
        )


def chain_matches(keypoints: Sequence[np.ndarray], matches: Mapping[tuple[int, int], np.ndarray]) -> Tracks:
    """Chain pairwise matches into tracks (connected components of the match graph).

    Where a component holds two keypoints of one frame, the matches disagree there: that frame's
    observations are dropped from the track, the rest of the track is kept.

    Args:
        keypoints: S arrays (N_i, 2) of keypoint positions (original pixels).
        matches: (i, j) -> (K, 2) int array of keypoint indices ``[index in i, index in j]``.

    Returns:
        Tracks of length >= 2.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    offsets = np.concatenate(([0], np.cumsum([len(k) for k in keypoints])))
    if not matches or offsets[-1] == 0:
        return Tracks.empty()
    a = np.concatenate([offsets[i] + m[:, 0] for (i, _), m in matches.items()])
    b = np.concatenate([offsets[j] + m[:, 1] for (_, j), m in matches.items()])
    n = int(offsets[-1])
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    nodes = np.unique(np.concatenate((a, b)))
    frame = np.searchsorted(offsets, nodes, side="right") - 1
    track = component[nodes]
    # A (track, frame) pair seen twice is a disagreement: drop those observations.
    key = track * len(keypoints) + frame
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    xy = np.concatenate([np.asarray(k, dtype=np.float64).reshape(-1, 2) for k in keypoints])[nodes]
    return Tracks(track, frame, xy).select(counts[inverse] == 1)
