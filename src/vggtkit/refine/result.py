"""The refinement's result: the refined :class:`Reconstruction` plus the correspondences behind it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from vggtkit.geometry import extri_intri_to_pose_encoding, unproject_depth_map_to_point_map
from vggtkit.reconstruction import Reconstruction
from vggtkit.refine.cameras import Camera
from vggtkit.refine.report import RefineReport
from vggtkit.refine.tracks import Tracks

__all__ = ["RefineResult", "refined_reconstruction"]


@dataclass
class RefineResult:
    """A refined reconstruction and the evidence for it.

    Attributes:
        reconstruction: the reconstruction with refined cameras (``extrinsic``, ``intrinsic``,
            ``intrinsic_original``, ``pose_enc``), depth rescaled per frame by ``depth_scale`` and
            ``world_points_from_depth`` recomputed; frames that were not refined keep their feed-forward
            values. The point head's map (if any) is unchanged: the world frame and scale are the
            feed-forward ones.
        cameras: S cameras at original resolution (with distortion for SIMPLE_RADIAL, which the
            reconstruction's pinhole matrices cannot hold).
        camera_ids: (S,) 1-based camera id of each frame; equal ids share a camera.
        tracks: the observations in the refined model (original-image pixels, OpenCV convention).
        points: (T, 3) world point of each track.
        colors: (T, 3) uint8 colour of each track.
        refined: (S,) bool frames whose camera was refined.
        depth_scale: (S,) factor applied to each frame's predicted depth.
        report: what happened, frame by frame.
    """

    reconstruction: Reconstruction
    cameras: list[Camera]
    camera_ids: np.ndarray
    tracks: Tracks
    points: np.ndarray
    colors: np.ndarray
    refined: np.ndarray
    depth_scale: np.ndarray
    report: RefineReport

    @property
    def mean_track_length(self) -> float:
        lengths = self.tracks.lengths()
        return float(lengths.mean()) if len(lengths) else 0.0


def refined_reconstruction(
    rec: Reconstruction, cam_from_world: np.ndarray, cameras: list[Camera], depth_scale: np.ndarray
) -> Reconstruction:
    """A copy of ``rec`` with new cameras and per-frame depth scales, everything derived kept consistent.

    Args:
        rec: the feed-forward reconstruction.
        cam_from_world: (S, 3, 4) poses.
        cameras: S cameras at original resolution (their pinhole part is used).
        depth_scale: (S,) factors for the depth maps.
    """
    K_original = np.stack([c.K() for c in cameras])
    K_model = np.linalg.inv(rec.original_from_model) @ K_original
    depth = (rec.depth * depth_scale[:, None, None, None]).astype(np.float32)
    extrinsic = np.asarray(cam_from_world, dtype=np.float64)
    pose_enc = extri_intri_to_pose_encoding(
        torch.from_numpy(extrinsic), torch.from_numpy(K_model), rec.model_hw
    ).numpy()
    points = unproject_depth_map_to_point_map(depth, extrinsic, K_model).astype(np.float32)
    return dataclasses.replace(
        rec,
        pose_enc=pose_enc.astype(np.float32),
        extrinsic=extrinsic,
        intrinsic=K_model,
        depth=depth,
        world_points_from_depth=points,
        intrinsic_original=K_original,
        names=list(rec.names),
        image_paths=list(rec.image_paths),
        source_frames=rec.source_frames,
        timings=dict(rec.timings),
    )
