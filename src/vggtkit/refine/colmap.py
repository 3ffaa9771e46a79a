"""The refined result as a COLMAP model whose observations are the matched keypoints.

Cameras at each image's original resolution (the refined camera model, distortion included), every frame an
image (frames that kept their feed-forward camera have it, without observations), and one 3-D point per
track observed at its keypoints (COLMAP pixel convention: the centre of the top-left pixel at (0.5, 0.5)).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from vggtkit.refine.result import RefineResult

__all__ = ["to_pycolmap", "write_colmap_model"]

logger = logging.getLogger(__name__)


def to_pycolmap(result: RefineResult) -> Any:
    """A ``pycolmap.Reconstruction`` of the refined cameras, poses and tracks (image ids = frame index + 1,
    image names = the reconstruction's names)."""
    import pycolmap

    rec = result.reconstruction
    tracks = result.tracks
    model = pycolmap.Reconstruction()
    for cid in np.unique(result.camera_ids):
        frame = int(np.nonzero(result.camera_ids == cid)[0][0])
        model.add_camera_with_trivial_rig(result.cameras[frame].to_pycolmap(int(cid)))
    point2d_index = np.zeros(tracks.num_observations, np.int64)
    for f in range(rec.num_frames):
        sel = np.nonzero(tracks.frame == f)[0]
        point2d_index[sel] = np.arange(len(sel))
        points2d = pycolmap.Point2DList([pycolmap.Point2D(xy) for xy in tracks.xy[sel] + 0.5])
        image = pycolmap.Image(
            name=rec.names[f], points2D=points2d, camera_id=int(result.camera_ids[f]), image_id=f + 1
        )
        model.add_image_with_trivial_frame(image, pycolmap.Rigid3d(rec.extrinsic[f].astype(np.float64)))
    order = np.argsort(tracks.track, kind="stable")
    bounds = np.searchsorted(tracks.track[order], np.arange(len(tracks) + 1))
    for t in range(len(tracks)):
        members = order[bounds[t] : bounds[t + 1]]
        track = pycolmap.Track(
            [pycolmap.TrackElement(int(tracks.frame[o]) + 1, int(point2d_index[o])) for o in members]
        )
        model.add_point3D(result.points[t], track, result.colors[t])
    model.update_point_3d_errors()
    return model


def write_colmap_model(result: RefineResult, folder: str | os.PathLike[str]) -> Path:
    """Write the model (``cameras``, ``images``, ``points3D``, ``rigs``, ``frames`` as ``.bin`` and ``.txt``)
    into ``folder`` (written under a temporary name, then renamed). Returns the folder."""
    from vggtkit.utils.atomic import atomic_dir

    folder = Path(folder)
    model = to_pycolmap(result)
    with atomic_dir(folder) as tmp:
        model.write_binary(str(tmp))
        model.write_text(str(tmp))
    logger.info(
        "wrote %s: %d images, %d points, mean track length %.2f, mean reprojection error %.3f px",
        folder,
        model.num_images(),
        model.num_points3D(),
        model.compute_mean_track_length() if model.num_points3D() else 0.0,
        model.compute_mean_reprojection_error() if model.num_points3D() else 0.0,
    )
    return folder
