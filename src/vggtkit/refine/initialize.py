"""Initial cameras: register frames one by one against 3-D points, starting from the anchor frame.

The points come from the predicted depth (and, once adjusted, from bundle adjustment). Each frame's
feed-forward pose is checked against its correspondences: where it explains nearly as many of them as a
PnP RANSAC pose does, refinement starts from it; otherwise the frame is re-initialised with the PnP pose.
A weak camera head therefore does not stop the refinement, and a good one is not thrown away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vggtkit.refine.bundle import adjust
from vggtkit.refine.cameras import project
from vggtkit.refine.options import BundleOptions, InitOptions
from vggtkit.refine.state import FrameStatus, RefineState
from vggtkit.refine.tracks import Tracks

__all__ = ["choose_anchor", "register_frames", "triangulate_tracks"]

logger = logging.getLogger(__name__)

_RANKED_CANDIDATES = 3  # frames tried by PnP per step, those with the most 2-D/3-D correspondences
_BA_GROWTH = 1.2
# The feed-forward pose is compared with the PnP pose at this multiple of the PnP threshold: a pose a few
# degrees off (which bundle adjustment corrects) still agrees, a wrong one does not.
_AGREEMENT_SLACK = 3.0  # adjust all registered frames whenever their number grew by this factor


@dataclass
class _Candidate:
    frame: int
    inliers: int
    pose: np.ndarray
    inlier_mask: np.ndarray  # over the frame's usable observations
    observations: np.ndarray  # indices into the tracks' observations
    pnp_explains: int  # observations the PnP pose explains within the loose agreement threshold
    feed_forward_explains: int  # ... and the feed-forward pose


def choose_anchor(tracks: Tracks, num_frames: int, reference: int, min_inliers: int) -> int | None:
    """The frame registration starts from: the reference frame when it has ``min_inliers`` observations,
    else the best-connected frame; None when no frame has enough."""
    counts = tracks.per_frame(num_frames)
    if counts[reference] >= min_inliers:
        return reference
    best = int(np.argmax(counts)) if num_frames else 0
    return best if counts[best] >= min_inliers else None


def triangulate_tracks(state: RefineState, tracks: Tracks, which: np.ndarray, max_error_px: float) -> None:
    """Robust multi-view triangulation (pycolmap, RANSAC on angular errors) of the tracks ``which`` (T,)
    from their registered observations; tracks that cannot be triangulated keep their point."""
    import pycolmap

    options = pycolmap.EstimateTriangulationOptions()
    options.ransac.random_seed = 0
    usable = state.registered[tracks.frame] & which[tracks.track]
    order = np.argsort(tracks.track[usable], kind="stable")
    obs = np.nonzero(usable)[0][order]
    bounds = np.searchsorted(tracks.track[obs], np.arange(len(tracks) + 1))
    cameras = [c.to_pycolmap() for c in state.cameras]
    poses = [pycolmap.Rigid3d(p) for p in state.cam_from_world]
    for t in np.nonzero(which)[0]:
        members = obs[bounds[t] : bounds[t + 1]]
        if len(members) < 2:
            continue
        frames = tracks.frame[members]
        options.ransac.max_error = max_error_px / max(state.cameras[int(frames[0])].focal_length, 1e-9)
        result = pycolmap.estimate_triangulation(
            tracks.xy[members] + 0.5, [poses[f] for f in frames], [cameras[f] for f in frames], options
        )
        if result is not None:
            state.points[t] = result["xyz"]


def _pnp(
    state: RefineState, tracks: Tracks, frame: int, threshold: float, seed: int
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray] | None:
    """PnP RANSAC of ``frame`` against the current points: (inliers, pose, inlier mask, observations)."""
    import pycolmap

    obs = np.nonzero((tracks.frame == frame) & np.isfinite(state.points[tracks.track]).all(axis=1))[0]
    if len(obs) < 4:
        return None
    options = pycolmap.AbsolutePoseEstimationOptions()
    options.ransac.max_error = threshold
    options.ransac.random_seed = seed
    result = pycolmap.estimate_and_refine_absolute_pose(
        tracks.xy[obs] + 0.5, state.points[tracks.track[obs]], state.cameras[frame].to_pycolmap(), options
    )
    if result is None:
        return None
    mask = np.asarray(result["inlier_mask"], dtype=bool)
    return int(mask.sum()), result["cam_from_world"].matrix(), mask, obs


def _evaluate(
    state: RefineState, tracks: Tracks, frame: int, feed_forward: np.ndarray, threshold: float, seed: int
) -> _Candidate | None:
    found = _pnp(state, tracks, frame, threshold, seed)
    if found is None:
        return None
    inliers, pose, mask, obs = found
    loose = _AGREEMENT_SLACK * threshold
    explained = [_explained(state, tracks, frame, p, obs, loose) for p in (pose, feed_forward)]
    return _Candidate(frame, inliers, pose, mask, obs, explained[0], explained[1])


def _explained(
    state: RefineState, tracks: Tracks, frame: int, pose: np.ndarray, obs: np.ndarray, threshold: float
) -> int:
    """How many of the observations ``obs`` of ``frame`` the pose puts within ``threshold`` pixels."""
    uv, depth = project(state.cameras[frame], pose, state.points[tracks.track[obs]])
    error = np.linalg.norm(uv - tracks.xy[obs], axis=1)
    return int(np.sum((depth > 0) & (error < threshold)))


def _next_candidate(
    state: RefineState,
    tracks: Tracks,
    feed_forward: np.ndarray,
    options: InitOptions,
    threshold: float,
    seed: int,
) -> _Candidate | None:
    """The next frame to register: PnP on the unregistered frames with the most 2-D/3-D correspondences,
    the best of the first few; further frames only when those fail."""
    has_point = np.isfinite(state.points).all(axis=1)[tracks.track]
    counts = np.bincount(tracks.frame[has_point], minlength=state.num_frames)
    counts[state.registered] = 0
    ranked = [int(f) for f in np.argsort(-counts, kind="stable") if counts[f] >= options.min_inliers]
    best: _Candidate | None = None
    for rank, frame in enumerate(ranked):
        if rank >= _RANKED_CANDIDATES and best is not None:
            break
        found = _evaluate(state, tracks, frame, feed_forward[frame], threshold, seed + frame)
        qualifies = found is not None and found.inliers >= options.min_inliers
        if qualifies and (best is None or found.inliers > best.inliers):
            best = found
    return best


def _register(
    state: RefineState, tracks: Tracks, obs_depth: np.ndarray, found: _Candidate, agreement: float
) -> None:
    f = found.frame
    keep_feed_forward = found.feed_forward_explains >= agreement * found.pnp_explains
    if keep_feed_forward:
        state.status[f] = FrameStatus.FEED_FORWARD_START
    else:
        state.cam_from_world[f] = found.pose
        state.status[f] = FrameStatus.REINITIALISED
    state.registered[f] = True
    obs = found.observations[found.inlier_mask]
    ratio = state.camera_depths(tracks)[obs] / obs_depth[obs]
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if len(ratio):
        state.depth_scale[f] = float(np.median(ratio))
    logger.debug(
        "registered frame %d (%s): %d PnP inliers; within the agreement threshold PnP explains %d, the "
        "feed-forward pose %d",
        f,
        state.status[f],
        found.inliers,
        found.pnp_explains,
        found.feed_forward_explains,
    )


def register_frames(
    state: RefineState,
    tracks: Tracks,
    obs_depth: np.ndarray,
    init: InitOptions,
    bundle: BundleOptions,
    seed: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> np.ndarray:
    """Register every frame that can be, from the anchor outwards, with bundle adjustments as the set grows.

    Args:
        state: with the anchor registered; updated in place.
        tracks: the correspondences.
        obs_depth: (M,) predicted depth at each observation.
        init: registration options.
        bundle: adjustment options.
        seed: RANSAC seed.
        progress: ``progress("register", done, total)``.

    Returns:
        (M,) bool inliers of the last adjustment (all False when none ran).
    """
    feed_forward = state.cam_from_world.copy()
    size = max(state.cameras[state.anchor].width, state.cameras[state.anchor].height)
    threshold = init.pnp_threshold * size
    state.reset_points(len(tracks))
    state.seed_points(tracks, obs_depth)
    inliers = np.zeros(tracks.num_observations, bool)
    adjusted_at = 1
    while not state.registered.all():
        found = _next_candidate(state, tracks, feed_forward, init, threshold, seed)
        if found is None:
            break
        _register(state, tracks, obs_depth, found, init.agreement)
        state.seed_points(tracks, obs_depth)
        count = int(state.registered.sum())
        if count >= max(adjusted_at + 1, _BA_GROWTH * adjusted_at):
            everything = np.ones(tracks.num_observations, bool)
            inliers = adjust(state, tracks, everything, obs_depth, bundle, bundle.filter_schedule)
            adjusted_at = count
        if progress is not None:
            progress("register", count, state.num_frames)
    return inliers
