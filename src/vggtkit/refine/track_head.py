"""Tracks from the model's track head, for checkpoints that have one.

The track head follows query points of the *first* frame through all frames (``model(images,
query_points=...)``). To query several frames, each query frame is moved to the front and the model is run
again: one full forward pass per query frame (the aggregator treats the first frame differently, so its
tokens cannot be reused for another query frame). Query points are the frame's SIFT keypoints (at most
``max_query_points``); a prediction becomes an observation where its visibility and confidence pass the
thresholds, and each (query frame, frame) pair is verified with a RANSAC fundamental matrix like the
classical matcher's matches. Tracks from different query frames are not merged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch

from vggtkit.reconstruction import Reconstruction
from vggtkit.refine.correspondences import ClassicalMatcher, Correspondences
from vggtkit.refine.matching import verify_fundamental
from vggtkit.refine.options import MatchOptions
from vggtkit.refine.tracks import Tracks

__all__ = ["TrackHeadSource"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


class TrackHeadSource:
    """Correspondences from a VGGT model's track head.

    Args:
        model: a ``vggtkit.VGGT`` whose configuration enables the track head, on the device to run on.
        matching: keypoint detection and verification options (``max_keypoints``, ``contrast_threshold``,
            ``ransac_threshold``, ``min_pair_matches``).
        max_query_points: query points per query frame.
        vis_threshold: minimum predicted visibility of an observation (the official demo's 0.2).
        conf_threshold: minimum predicted confidence of an observation.
        seed: RANSAC seed.

    Raises:
        ValueError: the model has no track head.
    """

    name = "track-head"

    def __init__(
        self,
        model: torch.nn.Module,
        matching: MatchOptions | None = None,
        max_query_points: int = 1024,
        vis_threshold: float = 0.2,
        conf_threshold: float = 0.0,
        seed: int = 0,
    ) -> None:
        if getattr(model, "track_head", None) is None:
            raise ValueError("this model has no track head; use the classical matcher")
        if max_query_points < 1:
            raise ValueError(f"max_query_points must be >= 1, got {max_query_points}")
        self.model = model
        self.matching = matching or MatchOptions()
        self.max_query_points = max_query_points
        self.vis_threshold = vis_threshold
        self.conf_threshold = conf_threshold
        self.seed = seed
        self.seconds_per_query: list[float] = []

    def _query_points(self, rec: Reconstruction, frame: int, keypoints: np.ndarray) -> np.ndarray:
        """(N, 2) query pixels in the model image of ``frame``: its keypoints inside the image content."""
        model_from_original = np.linalg.inv(rec.original_from_model[frame])
        uv = keypoints * np.diag(model_from_original)[:2] + model_from_original[:2, 2]
        h, w = rec.model_hw
        col, row = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        inside[inside] &= rec.content_mask()[frame][row[inside], col[inside]]
        return uv[inside][: self.max_query_points]

    def _track(self, rec: Reconstruction, query: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the model with ``query`` first: (S, N, 2) model pixels and (S, N) bool kept, in frame order."""
        import time

        order = [query, *[i for i in range(rec.num_frames) if i != query]]
        device = next(self.model.parameters()).device
        images = torch.from_numpy(rec.images[order]).to(device)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model(images, query_points=torch.from_numpy(points).float().to(device))
        self.seconds_per_query.append(time.perf_counter() - start)
        inverse = np.argsort(order)
        track = out["track"][0].float().cpu().numpy()[inverse]
        vis = out["vis"][0].float().cpu().numpy()[inverse]
        conf = out["conf"][0].float().cpu().numpy()[inverse]
        return track, (vis > self.vis_threshold) & (conf > self.conf_threshold)

    def _observations(
        self, rec: Reconstruction, query: int, track: np.ndarray, kept: np.ndarray
    ) -> tuple[Tracks, dict[tuple[int, int], int]]:
        """Tracks of one query frame in original pixels (one per query point), each (query, frame) pair
        verified by RANSAC."""
        query_xy = rec.to_original_pixels(query, track[query])
        point, frame, position, pairs = [], [], [], {}
        for f in range(rec.num_frames):
            xy = rec.to_original_pixels(f, track[f])
            if f == query:
                keep = np.ones(len(xy), bool)
            else:
                sel = np.nonzero(kept[f] & np.isfinite(xy).all(axis=1))[0]
                inliers = verify_fundamental(
                    query_xy[sel], xy[sel], self.matching.ransac_threshold, self.seed + f
                )
                keep = np.zeros(len(xy), bool)
                keep[sel[inliers]] = True
                if keep.sum() < self.matching.min_pair_matches:
                    continue
                pairs[(min(query, f), max(query, f))] = int(keep.sum())
            point.append(np.nonzero(keep)[0])
            frame.append(np.full(int(keep.sum()), f))
            position.append(xy[keep])
        tracks = Tracks(np.concatenate(point), np.concatenate(frame), np.concatenate(position))
        return tracks.select(np.ones(tracks.num_observations, bool)), pairs

    def find(
        self, rec: Reconstruction, query_frames: Sequence[int], progress: Progress | None = None
    ) -> Correspondences:
        keypoints = ClassicalMatcher(self.matching, self.seed).features(rec)
        parts, pairs = [], {}
        for k, q in enumerate(query_frames):
            points = self._query_points(rec, q, keypoints[q].xy)
            if len(points):
                track, kept = self._track(rec, q, points.astype(np.float32))
                tracks, found = self._observations(rec, q, track, kept)
                parts.append(tracks)
                for pair, count in found.items():
                    pairs[pair] = pairs.get(pair, 0) + count
            if progress is not None:
                progress("track head", k + 1, len(query_frames))
        tracks = Tracks.concat(parts)
        logger.info(
            "track head: %d query frames, %d tracks (%d observations), %.2f s per query frame",
            len(query_frames),
            len(tracks),
            tracks.num_observations,
            float(np.mean(self.seconds_per_query)) if self.seconds_per_query else 0.0,
        )
        return Correspondences(tracks, pairs, source=self.name, query_frames=list(query_frames))
