"""Bundle adjustment with pycolmap 4: build a model of the registered frames, adjust it with a robust loss,
drop observations with large reprojection errors, and read the result back into the state."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from vggtkit.refine.cameras import Camera
from vggtkit.refine.options import BundleOptions
from vggtkit.refine.state import RefineState
from vggtkit.refine.tracks import Tracks

__all__ = ["adjust", "build_model"]

logger = logging.getLogger(__name__)

# Intrinsics are refined only once this many frames are registered: with two views a focal length and the
# depth of the scene trade off, and the adjustment drifts.
MIN_FRAMES_FOR_INTRINSICS = 3


def _loss(name: str) -> Any:
    import pycolmap

    return {
        "cauchy": pycolmap.LossFunctionType.CAUCHY,
        "huber": pycolmap.LossFunctionType.HUBER,
        "soft_l1": pycolmap.LossFunctionType.SOFT_L1,
        "trivial": pycolmap.LossFunctionType.TRIVIAL,
    }[name]


def build_model(state: RefineState, tracks: Tracks, use: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """A ``pycolmap.Reconstruction`` of the registered frames with the observations ``use`` (M,) bool of
    tracks that have a point and at least two such observations.

    Returns:
        ``(model, point_id, point2d_index)``: the model; (T,) its point3D id per track (-1 for none); (M,)
        each observation's index among its image's points2D (-1 when not in the model). Image ids are frame
        index + 1.
    """
    import pycolmap

    has_point = np.isfinite(state.points).all(axis=1)
    use = use & state.registered[tracks.frame] & has_point[tracks.track]
    counts = np.bincount(tracks.track[use], minlength=len(tracks))
    use &= counts[tracks.track] >= 2
    model = pycolmap.Reconstruction()
    for cid in np.unique(state.camera_ids[state.registered]):
        frame = int(np.nonzero(state.camera_ids == cid)[0][0])
        model.add_camera_with_trivial_rig(state.cameras[frame].to_pycolmap(int(cid)))
    point2d_index = np.full(tracks.num_observations, -1, np.int64)
    for f in np.nonzero(state.registered)[0]:
        sel = np.nonzero(use & (tracks.frame == f))[0]
        point2d_index[sel] = np.arange(len(sel))
        points2d = pycolmap.Point2DList([pycolmap.Point2D(xy) for xy in tracks.xy[sel] + 0.5])
        image = pycolmap.Image(
            name=str(f), points2D=points2d, camera_id=int(state.camera_ids[f]), image_id=int(f) + 1
        )
        model.add_image_with_trivial_frame(image, pycolmap.Rigid3d(state.cam_from_world[f]))
    point_id = np.full(len(tracks), -1, np.int64)
    order = np.argsort(tracks.track[use], kind="stable")
    obs = np.nonzero(use)[0][order]
    bounds = np.searchsorted(tracks.track[obs], np.arange(len(tracks) + 1))
    for t in np.nonzero(counts >= 2)[0]:
        members = obs[bounds[t] : bounds[t + 1]]
        if len(members) < 2:
            continue
        track = pycolmap.Track(
            [pycolmap.TrackElement(int(tracks.frame[o]) + 1, int(point2d_index[o])) for o in members]
        )
        point_id[t] = model.add_point3D(state.points[t], track, np.zeros(3, np.uint8))
    return model, point_id, point2d_index


def _solve(model: Any, state: RefineState, options: BundleOptions, refine_intrinsics: bool) -> Any:
    import pycolmap

    ba = pycolmap.BundleAdjustmentOptions()
    ba.print_summary = False
    ba.refine_focal_length = refine_intrinsics and options.refine_focal_length
    ba.refine_principal_point = refine_intrinsics and options.refine_principal_point
    ba.refine_extra_params = refine_intrinsics and options.refine_distortion
    ba.ceres.loss_function_type = _loss(options.loss)
    ba.ceres.loss_function_scale = options.loss_scale
    # Ceres stops on a relative cost decrease of 1e-6 (pycolmap's default of 0 runs every iteration).
    ba.ceres.solver_options.function_tolerance = 1e-6
    ba.ceres.solver_options.parameter_tolerance = 1e-8
    config = pycolmap.BundleAdjustmentConfig()
    for image_id in model.reg_image_ids():
        config.add_image(image_id)
    # The anchor's pose is held; the gauge fix then holds one translation coordinate of another frame, which
    # fixes the scale (rescaled to the anchor's depth after the adjustment).
    if state.registered[state.anchor]:
        config.set_constant_rig_from_world_pose(model.image(state.anchor + 1).frame_id)
    config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
    for cid in np.unique(state.camera_ids[state.registered & state.fixed_intrinsics]):
        config.set_constant_cam_intrinsics(int(cid))
    return pycolmap.create_default_bundle_adjuster(ba, config, model).solve()


def _read_back(model: Any, state: RefineState, point_id: np.ndarray) -> None:
    for f in np.nonzero(state.registered)[0]:
        state.cam_from_world[f] = model.image(int(f) + 1).cam_from_world().matrix()
    for cid in model.cameras:
        camera = Camera.from_pycolmap(model.camera(cid))
        for f in np.nonzero(state.camera_ids == cid)[0]:
            state.cameras[f] = camera
    for t in np.nonzero(point_id >= 0)[0]:
        pid = int(point_id[t])
        state.points[t] = model.point3D(pid).xyz if model.exists_point3D(pid) else np.nan


def _reset_diverged_focals(state: RefineState, options: BundleOptions) -> list[int]:
    """Frames whose focal length left [f0 / x, f0 x]: reset to f0 and held fixed from now on."""
    reset = []
    for f in np.nonzero(state.registered & ~state.fixed_intrinsics)[0]:
        ratio = state.cameras[f].focal_length / state.initial_focal[f]
        if not (1.0 / options.max_focal_change <= ratio <= options.max_focal_change):
            shared = state.camera_ids == state.camera_ids[f]
            for g in np.nonzero(shared)[0]:
                state.cameras[g] = state.cameras[g].with_focal_length(state.initial_focal[g])
            state.fixed_intrinsics[shared] = True
            reset.append(int(f))
    return reset


def adjust(
    state: RefineState,
    tracks: Tracks,
    use: np.ndarray,
    obs_depth: np.ndarray,
    options: BundleOptions,
    schedule: tuple[float, ...] = (1.0,),
) -> np.ndarray:
    """One round: model of the observations ``use``, robust adjustment and filtering passes, read-back,
    rescaling.

    Args:
        state: updated in place (poses, cameras, points, depth scales; diverged focal lengths are reset).
        tracks: all tracks.
        use: (M,) bool observations allowed into the model.
        obs_depth: (M,) predicted depth of every observation.
        options: adjustment options.
        schedule: one adjustment pass per entry, each followed by dropping observations whose error exceeds
            that multiple of ``options.max_reproj_error``. Points seeded from the predicted depth start
            several pixels off: dropping at the final threshold right away loses correct observations and
            biases the focal lengths, so the threshold is tightened over passes.

    Returns:
        (M,) bool observations that remain in the adjusted model (inliers).
    """
    import pycolmap

    model, point_id, point2d_index = build_model(state, tracks, use)
    if model.num_points3D() == 0:
        return np.zeros(tracks.num_observations, bool)
    refine_intrinsics = int(state.registered.sum()) >= MIN_FRAMES_FOR_INTRINSICS
    manager = pycolmap.ObservationManager(model)
    for factor in schedule:
        summary = _solve(model, state, options, refine_intrinsics)
        manager.filter_all_points3D(factor * options.max_reproj_error, options.min_tri_angle)
    _read_back(model, state, point_id)
    reset = _reset_diverged_focals(state, options)
    if reset:
        logger.info("focal length diverged for frame(s) %s: reset to the starting value and held", reset)
    inliers = _model_observations(model, tracks, point2d_index)
    state.update_depth_scales(tracks, obs_depth, inliers)
    logger.debug(
        "bundle adjustment: %d images, %d points, %d observations, %s",
        model.num_reg_images(),
        model.num_points3D(),
        int(inliers.sum()),
        summary.brief_report() if summary is not None else "",
    )
    return inliers


def _model_observations(model: Any, tracks: Tracks, point2d_index: np.ndarray) -> np.ndarray:
    """(M,) bool: observations still attached to a 3-D point of ``model``."""
    inliers = np.zeros(tracks.num_observations, bool)
    for image_id in model.reg_image_ids():
        f = image_id - 1
        sel = np.nonzero((tracks.frame == f) & (point2d_index >= 0))[0]
        if len(sel) == 0:
            continue
        points2d = model.image(image_id).points2D
        has = np.array([points2d[int(i)].has_point3D() for i in point2d_index[sel]], dtype=bool)
        inliers[sel[has]] = True
    return inliers
