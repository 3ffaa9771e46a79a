"""The refinement's working state: cameras, poses, per-frame depth scales and one 3-D point per track.

Gauge: the anchor frame (the reference frame when it can be matched) keeps its feed-forward pose, and the
scene's scale is the one at which the anchor's predicted depth needs no rescaling, so refined cameras live
in the feed-forward reconstruction's world frame and scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vggtkit.refine.cameras import Camera, project, unproject
from vggtkit.refine.tracks import Tracks

__all__ = ["FrameStatus", "RefineState"]


class FrameStatus:
    """How a frame's camera was obtained (values stored in ``RefineState.status``)."""

    ANCHOR = "anchor"  # kept its pose (defines the world frame), intrinsics refined
    FEED_FORWARD_START = "refined"  # started from its feed-forward pose, which the correspondences confirmed
    REINITIALISED = "re-initialised"  # feed-forward pose contradicted by the correspondences: PnP start
    KEPT = "kept"  # not refined: keeps its feed-forward camera


@dataclass
class RefineState:
    """Mutable state of one refinement.

    Attributes:
        cameras: S cameras at original resolution (frames sharing a camera hold equal values).
        camera_ids: (S,) pycolmap camera id (1-based) of each frame; equal ids mean a shared camera.
        fixed_intrinsics: (S,) bool, intrinsics never changed (known, or reset after diverging).
        initial_focal: (S,) the focal lengths refinement started from.
        cam_from_world: (S, 3, 4) poses.
        registered: (S,) bool, frames being refined.
        status: S values of :class:`FrameStatus`.
        depth_scale: (S,) refined depth / predicted depth.
        anchor: the frame whose pose is held.
        feed_forward: (S, 3, 4) the feed-forward poses.
        initial_cameras: S cameras refinement started from.
        points: (T, 3) one point per track, NaN where none.
    """

    cameras: list[Camera]
    camera_ids: np.ndarray
    fixed_intrinsics: np.ndarray
    initial_focal: np.ndarray
    cam_from_world: np.ndarray
    registered: np.ndarray
    status: list[str]
    depth_scale: np.ndarray
    anchor: int
    feed_forward: np.ndarray
    initial_cameras: list[Camera]
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def num_frames(self) -> int:
        return len(self.cameras)

    def revert(self, frame: int) -> None:
        """Give ``frame`` back its feed-forward camera and stop refining it."""
        self.registered[frame] = False
        self.status[frame] = FrameStatus.KEPT
        self.cam_from_world[frame] = self.feed_forward[frame]
        if not (self.registered & (self.camera_ids == self.camera_ids[frame])).any():
            self.cameras[frame] = self.initial_cameras[frame]
        self.depth_scale[frame] = 1.0

    def reset_points(self, num_tracks: int) -> None:
        self.points = np.full((num_tracks, 3), np.nan)

    def seed_points(self, tracks: Tracks, obs_depth: np.ndarray) -> None:
        """Give tracks without a point one from the predicted depth: the mean of their registered
        observations unprojected at the (rescaled) predicted depth."""
        missing = ~np.isfinite(self.points).all(axis=1)
        use = missing[tracks.track] & self.registered[tracks.frame] & np.isfinite(obs_depth)
        if not use.any():
            return
        total = np.zeros((len(tracks), 3))
        count = np.zeros(len(tracks))
        for f in np.unique(tracks.frame[use]):
            sel = np.nonzero(use & (tracks.frame == f))[0]
            world = unproject(
                self.cameras[f], self.cam_from_world[f], tracks.xy[sel], obs_depth[sel] * self.depth_scale[f]
            )
            np.add.at(total, tracks.track[sel], world)
            np.add.at(count, tracks.track[sel], 1.0)
        seeded = missing & (count > 0)
        self.points[seeded] = total[seeded] / count[seeded, None]

    def observation_errors(self, tracks: Tracks) -> np.ndarray:
        """(M,) reprojection error (pixels) of every observation against its track's point; inf for
        unregistered frames, missing points and points behind the camera."""
        errors = np.full(tracks.num_observations, np.inf)
        for f in np.nonzero(self.registered)[0]:
            sel = np.nonzero(tracks.frame == f)[0]
            if len(sel) == 0:
                continue
            uv, _ = project(self.cameras[f], self.cam_from_world[f], self.points[tracks.track[sel]])
            err = np.linalg.norm(uv - tracks.xy[sel], axis=1)
            errors[sel] = np.where(np.isfinite(err), err, np.inf)
        return errors

    def camera_depths(self, tracks: Tracks) -> np.ndarray:
        """(M,) depth of each observation's point in its frame's camera (NaN without a point)."""
        depth = np.full(tracks.num_observations, np.nan)
        for f in np.unique(tracks.frame):
            sel = np.nonzero(tracks.frame == f)[0]
            pts = self.points[tracks.track[sel]]
            depth[sel] = pts @ self.cam_from_world[f, 2, :3] + self.cam_from_world[f, 2, 3]
        return depth

    def update_depth_scales(self, tracks: Tracks, obs_depth: np.ndarray, inliers: np.ndarray) -> None:
        """Rescale the scene about the anchor camera so that the anchor's predicted depth needs no
        rescaling, then set every registered frame's depth scale to the median ratio of its points' depths
        to its predicted depths (frames without inliers keep their scale)."""
        ratio = self.camera_depths(tracks) / obs_depth
        ok = inliers & np.isfinite(ratio) & (ratio > 0)
        anchor_ok = ok & (tracks.frame == self.anchor)
        if anchor_ok.sum() >= 3:
            self._rescale_about_anchor(1.0 / float(np.median(ratio[anchor_ok])))
            ratio = self.camera_depths(tracks) / obs_depth
        for f in np.nonzero(self.registered)[0]:
            sel = ok & (tracks.frame == f)
            if sel.sum() >= 3:
                self.depth_scale[f] = float(np.median(ratio[sel]))

    def move_anchor(self, frame: int, tracks: Tracks, obs_depth: np.ndarray, inliers: np.ndarray) -> None:
        """Make the registered ``frame`` the anchor: move the refined frames and points rigidly so that it
        gets its feed-forward pose back, then rescale so that its predicted depth needs no rescaling."""
        if frame == self.anchor or not self.registered[frame]:
            return
        old = np.eye(4)
        old[:3] = self.cam_from_world[frame]
        target = np.eye(4)
        target[:3] = self.feed_forward[frame]
        old_from_new = np.linalg.inv(old) @ target
        moved = self.cam_from_world[self.registered] @ old_from_new
        self.cam_from_world[self.registered] = moved
        new_from_old = np.linalg.inv(old_from_new)
        self.points = self.points @ new_from_old[:3, :3].T + new_from_old[:3, 3]
        self.status[self.anchor] = FrameStatus.FEED_FORWARD_START
        self.anchor = frame
        self.status[frame] = FrameStatus.ANCHOR
        self.update_depth_scales(tracks, obs_depth, inliers)

    def _rescale_about_anchor(self, factor: float) -> None:
        """Scale the scene by ``factor`` about the anchor's camera centre (its pose does not change)."""
        anchor = self.cam_from_world[self.anchor]
        centre = -anchor[:, :3].T @ anchor[:, 3]
        self.points = centre + factor * (self.points - centre)
        rot = self.cam_from_world[:, :, :3]
        trans = self.cam_from_world[:, :, 3]
        moved = factor * trans + (1.0 - factor) * -(rot @ centre)
        self.cam_from_world[self.registered, :, 3] = moved[self.registered]
