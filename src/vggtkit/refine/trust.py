"""Which refined frames to trust, and a second registration attempt for the others.

A frame registered from a few wrong matches (repeated texture) can sit in the adjusted model with a wrong
pose and focal length that fit those matches: it ends with few inliers, or with a median reprojection error
several times the other frames'. Such a frame goes back to its feed-forward camera. Once the other frames
are refined, their adjusted points are accurate, so a second PnP (estimating the focal length too, with a
tight threshold) can register it correctly where the first attempt against points from the predicted depth
could not.
"""

from __future__ import annotations

import logging

import numpy as np

from vggtkit.refine.cameras import Camera
from vggtkit.refine.state import FrameStatus, RefineState
from vggtkit.refine.tracks import Tracks

__all__ = ["reregister_frames", "untrusted_frames"]

logger = logging.getLogger(__name__)

ERROR_RATIO = 3.0  # a frame's median error above this multiple of the refined frames' median is suspect
ERROR_FLOOR_PX = 0.5  # ... when it is also above this many pixels


def untrusted_frames(
    state: RefineState, tracks: Tracks, inliers: np.ndarray, min_inliers: int
) -> dict[int, str]:
    """Registered frames whose refinement is not trusted, with the reason (the anchor only for too few
    inliers: its pose is held, so its error says nothing)."""
    errors = state.observation_errors(tracks)
    counts = np.bincount(tracks.frame[inliers], minlength=state.num_frames)
    medians = np.full(state.num_frames, np.nan)
    for f in np.nonzero(state.registered & (counts > 0))[0]:
        medians[f] = np.median(errors[inliers & (tracks.frame == f)])
    typical = float(np.nanmedian(medians)) if np.isfinite(medians).any() else np.nan
    reasons: dict[int, str] = {}
    for f in np.nonzero(state.registered)[0]:
        if counts[f] < min_inliers:
            reasons[int(f)] = f"{counts[f]} inliers after adjustment, fewer than {min_inliers}"
        elif f != state.anchor and medians[f] > max(ERROR_RATIO * typical, ERROR_FLOOR_PX):
            reasons[int(f)] = (
                f"median reprojection error {medians[f]:.2f} px, over {ERROR_RATIO:g} times the other frames' "
                f"{typical:.2f} px: pose not trusted"
            )
    return reasons


def _adjusted_points(state: RefineState, tracks: Tracks, inliers: np.ndarray) -> np.ndarray:
    """(T,) bool tracks whose point is supported by two or more inlier observations in refined frames."""
    support = np.bincount(tracks.track[inliers & state.registered[tracks.frame]], minlength=len(tracks))
    return (support >= 2) & np.isfinite(state.points).all(axis=1)


def reregister_frames(
    state: RefineState,
    tracks: Tracks,
    inliers: np.ndarray,
    frames: list[int],
    threshold: float,
    min_inliers: int,
    seed: int,
) -> list[int]:
    """PnP of each of ``frames`` against the adjusted points (focal length estimated unless held fixed);
    frames with ``min_inliers`` inliers are registered again. Returns them."""
    import pycolmap

    good = _adjusted_points(state, tracks, inliers)
    registered = []
    for f in frames:
        obs = np.nonzero((tracks.frame == f) & good[tracks.track])[0]
        if len(obs) < min_inliers:
            continue
        options = pycolmap.AbsolutePoseEstimationOptions()
        options.estimate_focal_length = not state.fixed_intrinsics[f]
        options.ransac.max_error = threshold
        options.ransac.random_seed = seed + f
        refinement = pycolmap.AbsolutePoseRefinementOptions()
        refinement.refine_focal_length = not state.fixed_intrinsics[f]
        camera = state.initial_cameras[f].to_pycolmap()
        result = pycolmap.estimate_and_refine_absolute_pose(
            tracks.xy[obs] + 0.5, state.points[tracks.track[obs]], camera, options, refinement
        )
        if result is None or result["num_inliers"] < min_inliers:
            continue
        state.cam_from_world[f] = result["cam_from_world"].matrix()
        if not state.fixed_intrinsics[f] and state.camera_ids.tolist().count(state.camera_ids[f]) == 1:
            state.cameras[f] = Camera.from_pycolmap(camera)
        state.registered[f] = True
        state.status[f] = FrameStatus.REINITIALISED
        registered.append(int(f))
        logger.debug("registered frame %d again: %d inliers", f, result["num_inliers"])
    return registered
