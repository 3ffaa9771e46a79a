"""COLMAP export: a sparse model (``sparse/0``, binary and text) plus the images it refers to (``images/``).

* Cameras: PINHOLE (fx, fy, cx, cy) or SIMPLE_PINHOLE (f, cx, cy), one per image or one shared, at each
  image's original resolution (the model's 518-px intrinsics rescaled, crop / padding undone).
* Images: names of the files in ``images/``, poses ``cam_from_world`` as predicted.
* Points3D: multi-view tracks where the predicted geometry agrees across views
  (:func:`vggtkit.export.tracks.build_tracks`), pixel coordinates in COLMAP's convention (the centre of the
  top-left pixel at (0.5, 0.5)) at the original resolution.

The layout ``OUT/images`` + ``OUT/sparse/0`` is what COLMAP, nerfstudio (``ns-process-data``'s output), gsplat
and the 3D Gaussian Splatting reference code read. Written with pycolmap (4.x API).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from vggtkit.export._images import FrameImage, write_images
from vggtkit.export.options import DEFAULT_OPTIONS, ExportOptions, ExportResult
from vggtkit.export.points import point_mask
from vggtkit.export.tracks import DepthViews, TrackOptions, Tracks, build_tracks
from vggtkit.reconstruction import Reconstruction
from vggtkit.utils.atomic import atomic_dir

__all__ = ["build_colmap_reconstruction", "camera_params", "export_colmap"]

logger = logging.getLogger(__name__)


def camera_params(K: np.ndarray, model: str) -> list[float]:
    """COLMAP parameters of an OpenCV-convention K: the principal point moves by +0.5 pixel."""
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5
    if model == "SIMPLE_PINHOLE":
        return [(fx + fy) / 2.0, cx, cy]
    return [fx, fy, cx, cy]


def _tracks(rec: Reconstruction, options: ExportOptions, keep: np.ndarray | None) -> Tracks:
    """Tracks from the depth branch (depth maps are what the agreement test compares)."""
    opts = dataclasses.replace(options, frame=None, branch="depth")
    mask = point_mask(rec, rec.depth_conf, opts, keep, rec.world_points_from_depth)
    views = DepthViews(
        rec.world_points_from_depth, rec.depth[..., 0], mask, rec.extrinsic, rec.intrinsic, rec.colors()
    )
    return build_tracks(
        views,
        TrackOptions(
            points_per_frame=options.track_points_per_frame, depth_tolerance=options.track_depth_tolerance
        ),
    )


def _cameras(frames: list[FrameImage], options: ExportOptions) -> list:
    """One ``pycolmap.Camera`` per frame (ids 1..S), or one shared camera (id 1) with the mean intrinsics."""
    import pycolmap

    model = options.camera_model
    if not options.shared_camera:
        return [
            pycolmap.Camera(
                model=model, width=f.hw[1], height=f.hw[0], params=camera_params(f.K, model), camera_id=i + 1
            )
            for i, f in enumerate(frames)
        ]
    sizes = {f.hw for f in frames}
    if len(sizes) > 1:
        raise ValueError(
            f"shared_camera=True needs images of one size, got {len(sizes)} sizes "
            f"({', '.join(f'{w}x{h}' for h, w in sorted(sizes)[:3])}); use one camera per image "
            "(shared_camera=False)"
        )
    params = np.mean([camera_params(f.K, model) for f in frames], axis=0).tolist()
    h, w = frames[0].hw
    return [pycolmap.Camera(model=model, width=w, height=h, params=params, camera_id=1)]


def _add_images(
    colmap, rec: Reconstruction, frames: list[FrameImage], tracks: Tracks, shared_camera: bool
) -> np.ndarray:
    """Add every frame as a posed image with its observations; returns each observation's index among its
    image's 2-D points."""
    import pycolmap

    point2d_index = np.zeros(len(tracks.point), dtype=np.int64)
    for i, frame in enumerate(frames):
        sel = np.nonzero(tracks.frame == i)[0]
        point2d_index[sel] = np.arange(len(sel))
        # Observations in COLMAP pixels of the file written for this frame.
        a = frame.file_from_model
        xy = tracks.uv[sel] * np.array([a[0, 0], a[1, 1]]) + np.array([a[0, 2], a[1, 2]]) + 0.5
        points2d = pycolmap.Point2DList([pycolmap.Point2D(p) for p in xy])
        camera_id = 1 if shared_camera else i + 1
        image = pycolmap.Image(name=frame.path.name, points2D=points2d, camera_id=camera_id, image_id=i + 1)
        E = rec.extrinsic[i].astype(np.float64)
        colmap.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(E[:, :3]), E[:, 3]))
    return point2d_index


def _add_points(colmap, tracks: Tracks, point2d_index: np.ndarray) -> None:
    """Add every track as a 3-D point observed by its images' 2-D points."""
    import pycolmap

    order = np.argsort(tracks.point, kind="stable")
    bounds = np.searchsorted(tracks.point[order], np.arange(len(tracks) + 1))
    for p in range(len(tracks)):
        obs = order[bounds[p] : bounds[p + 1]]
        track = pycolmap.Track(
            [pycolmap.TrackElement(int(tracks.frame[o]) + 1, int(point2d_index[o])) for o in obs]
        )
        colmap.add_point3D(tracks.xyz[p], track, tracks.rgb[p])


def build_colmap_reconstruction(
    rec: Reconstruction, frames: list[FrameImage], tracks: Tracks, options: ExportOptions
):
    """A ``pycolmap.Reconstruction`` of the cameras, posed images and tracks.

    Args:
        rec: the reconstruction (poses).
        frames: the image file and camera of each frame (see ``write_images``).
        tracks: observations in model pixels.
        options: ``camera_model`` and ``shared_camera``.
    """
    import pycolmap

    colmap = pycolmap.Reconstruction()
    for camera in _cameras(frames, options):
        colmap.add_camera_with_trivial_rig(camera)
    point2d_index = _add_images(colmap, rec, frames, tracks, options.shared_camera)
    _add_points(colmap, tracks, point2d_index)
    return colmap


def export_colmap(
    rec: Reconstruction,
    out_dir: str | os.PathLike[str],
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """Write ``out_dir/images/`` and the sparse model ``out_dir/sparse/0/`` (``.bin`` and ``.txt``).

    Args:
        rec: the reconstruction.
        out_dir: the scene folder.
        options: confidence percentile and masks (for the pixels that may start tracks), camera model, shared
            camera, track density and depth tolerance.
        keep: optional (S, H, W) bool mask of allowed pixels (e.g. not sky).

    Returns:
        The model folder and the number of 3-D points. A single frame (or views that never agree) gives a
        model without points (a warning is logged).
    """
    out_dir = Path(out_dir)
    frames = write_images(rec, out_dir / "images")
    tracks = _tracks(rec, options, keep)
    if len(tracks) == 0:
        logger.warning(
            "COLMAP: no point is observed consistently in two or more frames%s; the model has cameras and "
            "images but no points3D",
            " (only one frame)" if rec.num_frames == 1 else "",
        )
    colmap = build_colmap_reconstruction(rec, frames, tracks, options)
    model_dir = out_dir / "sparse" / "0"
    with atomic_dir(model_dir) as tmp:
        colmap.write_binary(str(tmp))
        colmap.write_text(str(tmp))
    lengths = tracks.lengths()
    logger.info(
        "wrote %s: %d images, %d points (mean track length %.2f)",
        model_dir,
        rec.num_frames,
        len(tracks),
        float(lengths.mean()) if len(lengths) else 0.0,
    )
    return ExportResult((model_dir, out_dir / "images"), len(tracks))
