"""Where correspondences come from: a source turns a reconstruction into multi-view tracks.

Two sources plug into the same interface (:class:`CorrespondenceSource`): the classical matcher below
(OpenCV SIFT, mutual nearest neighbours, ratio test, RANSAC fundamental matrix, chained into tracks) and the
model's track head (:class:`vggtkit.refine.track_head.TrackHeadSource`). Both start tracks on query frames
chosen to cover the sequence. A source that can also match *guided by geometry* implements
:class:`GuidedSource`; the refinement calls it once the cameras are refined.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from vggtkit.reconstruction import Reconstruction
from vggtkit.refine.cameras import Camera, fundamental_from_poses
from vggtkit.refine.depth import sample_depth
from vggtkit.refine.features import Features, detect_sift, frame_images
from vggtkit.refine.matching import GuideView, guided_matches, mutual_ratio_matches, verify_fundamental
from vggtkit.refine.options import MatchOptions
from vggtkit.refine.tracks import Tracks, chain_matches

__all__ = [
    "ClassicalMatcher",
    "CorrespondenceSource",
    "Correspondences",
    "Geometry",
    "GuidedSource",
    "query_pairs",
    "select_query_frames",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
EXHAUSTIVE_UP_TO = 12  # frames; beyond this, 12 query frames
PAIR_AGREEMENT = 0.5  # share of a pair's verified matches the refined geometry must confirm


@dataclass
class Correspondences:
    """Tracks found by a source.

    Attributes:
        tracks: observations at original resolution.
        pair_matches: (i, j) -> number of verified correspondences between frames i < j.
        source: name of the source ("sift", "track-head").
        query_frames: the frames tracks started from.
    """

    tracks: Tracks
    pair_matches: dict[tuple[int, int], int] = field(default_factory=dict)
    source: str = ""
    query_frames: list[int] = field(default_factory=list)


@dataclass
class Geometry:
    """Refined geometry a guided source may use.

    Attributes:
        cameras: S cameras at original resolution.
        cam_from_world: (S, 3, 4) poses.
        depth_scale: (S,) factor from predicted to refined depth.
        registered: (S,) bool, frames whose geometry is known (only their pairs are matched again).
    """

    cameras: list[Camera]
    cam_from_world: np.ndarray
    depth_scale: np.ndarray
    registered: np.ndarray


@runtime_checkable
class CorrespondenceSource(Protocol):
    """Finds multi-view tracks in a reconstruction's images."""

    name: str

    def find(
        self, rec: Reconstruction, query_frames: Sequence[int], progress: Progress | None = None
    ) -> Correspondences: ...


@runtime_checkable
class GuidedSource(Protocol):
    """A source that can match again where refined geometry says points must lie."""

    def rematch(
        self, rec: Reconstruction, geometry: Geometry, progress: Progress | None = None
    ) -> Correspondences: ...


def select_query_frames(num_frames: int, count: int | None, reference: int = 0) -> list[int]:
    """Query frames evenly spread over the sequence, the reference frame always among them.

    Args:
        num_frames: S.
        count: how many; None: all frames up to 12, else 12.
        reference: the frame that must be included.
    """
    if count is None:
        count = num_frames if num_frames <= EXHAUSTIVE_UP_TO else EXHAUSTIVE_UP_TO
    count = min(count, num_frames)
    chosen = set(np.round(np.linspace(0, num_frames - 1, count)).astype(int).tolist())
    if reference not in chosen:
        chosen.remove(min(chosen, key=lambda q: abs(q - reference)))
        chosen.add(reference)
    return sorted(chosen)


def query_pairs(num_frames: int, query_frames: Sequence[int]) -> list[tuple[int, int]]:
    """Frame pairs (i < j) in which at least one frame is a query frame."""
    pairs = {(min(q, j), max(q, j)) for q in query_frames for j in range(num_frames) if j != q}
    return sorted(pairs)


class ClassicalMatcher:
    """SIFT keypoints at original resolution, mutual nearest neighbours with a ratio test, a RANSAC
    fundamental matrix per pair, chained into tracks; with :meth:`rematch`, guided matching along the refined
    epipolar lines and within the refined depth range.

    Args:
        options: matching options.
        seed: RANSAC seed.
    """

    name = "sift"

    def __init__(self, options: MatchOptions | None = None, seed: int = 0) -> None:
        self.options = options or MatchOptions()
        self.seed = seed
        self._features: list[Features] | None = None
        self._pairs: list[tuple[int, int]] = []
        self._matches: dict[tuple[int, int], np.ndarray] = {}

    def features(self, rec: Reconstruction) -> list[Features]:
        """SIFT features of every frame (computed once)."""
        if self._features is None or len(self._features) != rec.num_frames:
            images = frame_images(rec)
            content = rec.content_mask()
            self._features = [
                detect_sift(
                    images.rgb[i],
                    images.original_from_image[i],
                    self.options.max_keypoints,
                    self.options.contrast_threshold,
                    mask=None if images.at_original[i] else content[i],
                )
                for i in range(rec.num_frames)
            ]
        return self._features

    def find(
        self, rec: Reconstruction, query_frames: Sequence[int], progress: Progress | None = None
    ) -> Correspondences:
        features = self.features(rec)
        self._pairs = query_pairs(rec.num_frames, query_frames)
        self._matches = {}
        for n, (i, j) in enumerate(self._pairs):
            matches = self._match_pair(features[i], features[j], seed=self.seed + n)
            if len(matches) >= self.options.min_pair_matches:
                self._matches[(i, j)] = matches
            if progress is not None:
                progress("match", n + 1, len(self._pairs))
        return self._correspondences(features, self._matches, list(query_frames))

    def rematch(
        self, rec: Reconstruction, geometry: Geometry, progress: Progress | None = None
    ) -> Correspondences:
        """Match the pairs of :meth:`find` again, guided by ``geometry`` where both frames are registered and
        the geometry confirms the pair's unguided matches; a registered pair it contradicts is dropped
        (repeated texture), and pairs with an unregistered frame keep their unguided matches."""
        if self._features is None:
            raise ValueError("ClassicalMatcher.rematch needs find() to have run first")
        views = self._guide_views(rec, geometry)
        o = self.options
        matches: dict[tuple[int, int], np.ndarray] = {}
        none = np.zeros((0, 2), np.int64)
        for n, (i, j) in enumerate(self._pairs):
            if views[i] is None or views[j] is None:
                found = self._matches.get((i, j), none)
            elif self._agrees(geometry, (i, j)):
                found = guided_matches(
                    views[i], views[j], o.guided_epipolar_px, o.guided_depth_range, o.guided_ratio
                )
            else:
                found = none
            if len(found) >= o.min_pair_matches:
                matches[(i, j)] = found
            if progress is not None:
                progress("guided match", n + 1, len(self._pairs))
        query_frames = sorted({q for pair in self._pairs for q in pair})
        return self._correspondences(self._features, matches, query_frames)

    def _epipolar_distances(self, geometry: Geometry, pair: tuple[int, int]) -> np.ndarray:
        """Distances (pixels, in the second frame) of a pair's unguided matches to their epipolar lines."""
        assert self._features is not None
        i, j = pair
        matches = self._matches[pair]
        F = fundamental_from_poses(
            geometry.cameras[i].K(),
            geometry.cam_from_world[i],
            geometry.cameras[j].K(),
            geometry.cam_from_world[j],
        )
        ones = np.ones((len(matches), 1))
        xy_a = np.concatenate((self._features[i].xy[matches[:, 0]], ones), axis=1)
        xy_b = np.concatenate((self._features[j].xy[matches[:, 1]], ones), axis=1)
        lines = xy_a @ F.T
        return np.abs(np.sum(lines * xy_b, axis=1)) / np.maximum(np.linalg.norm(lines[:, :2], axis=1), 1e-12)

    def _agrees(self, geometry: Geometry, pair: tuple[int, int]) -> bool:
        """Whether most of a pair's verified matches lie on the geometry's epipolar lines. Repeated texture
        can give a pair a consistent but wrong set of matches; guided matching there would only find more
        of them, so such a pair is left out."""
        if pair not in self._matches:
            return True
        distance = self._epipolar_distances(geometry, pair)
        return bool(np.mean(distance < self.options.guided_epipolar_px) >= PAIR_AGREEMENT)

    def _match_pair(self, a: Features, b: Features, seed: int) -> np.ndarray:
        matches = mutual_ratio_matches(a.descriptors, b.descriptors, self.options.ratio)
        if len(matches) < self.options.min_pair_matches:
            return np.zeros((0, 2), np.int64)
        inliers = verify_fundamental(
            a.xy[matches[:, 0]], b.xy[matches[:, 1]], self.options.ransac_threshold, seed
        )
        return matches[inliers]

    def _guide_views(self, rec: Reconstruction, geometry: Geometry) -> list[GuideView | None]:
        assert self._features is not None
        views: list[GuideView | None] = []
        for i, feats in enumerate(self._features):
            if not geometry.registered[i]:
                views.append(None)
                continue
            depth = sample_depth(rec, np.full(len(feats), i), feats.xy) * geometry.depth_scale[i]
            views.append(GuideView(feats, geometry.cameras[i], geometry.cam_from_world[i], depth))
        return views

    def _correspondences(
        self,
        features: list[Features],
        matches: dict[tuple[int, int], np.ndarray],
        query_frames: list[int],
    ) -> Correspondences:
        tracks = chain_matches([f.xy for f in features], matches)
        logger.info(
            "%s: %d keypoints per image on average, %d of %d pairs matched, %d tracks (%d observations)",
            self.name,
            int(np.mean([len(f) for f in features])) if features else 0,
            len(matches),
            len(self._pairs),
            len(tracks),
            tracks.num_observations,
        )
        return Correspondences(
            tracks,
            {pair: len(m) for pair, m in matches.items()},
            source=self.name,
            query_frames=query_frames,
        )
