"""``refine()``: a feed-forward reconstruction in, cameras refined against the images out.

Steps: correspondences (a source, by default the classical matcher) -> anchor frame -> frames registered one
by one (feed-forward pose where the correspondences confirm it, PnP otherwise) with bundle adjustments as
the set grows -> rounds of adjustment, filtering and re-triangulation -> guided matching along the refined
geometry -> more rounds -> frames with too few inliers keep their feed-forward camera -> the refined
reconstruction (depth rescaled per frame) and the report.

It never fails the run: bad options or inputs raise ``ValueError`` before any work, and anything that goes
wrong afterwards gives back the feed-forward reconstruction with a warning in the report.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from vggtkit.reconstruction import Reconstruction
from vggtkit.refine.align import align, check_alignment
from vggtkit.refine.bundle import adjust
from vggtkit.refine.cameras import Camera
from vggtkit.refine.correspondences import (
    ClassicalMatcher,
    CorrespondenceSource,
    Geometry,
    GuidedSource,
    select_query_frames,
)
from vggtkit.refine.depth import sample_depth
from vggtkit.refine.features import frame_images
from vggtkit.refine.initialize import choose_anchor, register_frames, triangulate_tracks
from vggtkit.refine.options import AlignOptions, RefineOptions
from vggtkit.refine.report import FrameReport, RefineReport
from vggtkit.refine.result import RefineResult, refined_reconstruction
from vggtkit.refine.state import FrameStatus, RefineState
from vggtkit.refine.tracks import Tracks
from vggtkit.refine.trust import reregister_frames, untrusted_frames

__all__ = ["initial_cameras", "refine"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
_VERIFY_ROUNDS = 4  # drop / register-again cycles at most
_GATE = 2.0  # observations within this many times the reprojection threshold enter an adjustment round


@dataclass
class _Setup:
    """What the refinement starts from."""

    cameras: list[Camera]
    camera_ids: np.ndarray
    fixed: np.ndarray


@contextlib.contextmanager
def _quiet_pycolmap() -> Iterator[None]:
    """Silence COLMAP's and Ceres' own log lines (solver retries) while refining; restore the level after."""
    import pycolmap

    previous = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = max(previous, 2)
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = previous


def initial_cameras(
    rec: Reconstruction, options: RefineOptions
) -> tuple[list[Camera], np.ndarray, np.ndarray]:
    """The cameras refinement starts from, at each image's original resolution.

    Feed-forward intrinsics in the chosen camera model (one camera averaged over all frames when shared),
    replaced by known intrinsics where given (held fixed).

    Returns:
        ``(cameras, camera_ids, fixed)``: S cameras, (S,) 1-based camera ids, (S,) bool fixed intrinsics.

    Raises:
        ValueError: a shared camera for images of several sizes or with differing known intrinsics.
    """
    s = rec.num_frames
    model = options.bundle.camera_model
    hw = rec.original_hw
    cameras = [
        Camera.from_K(rec.intrinsic_original[i], int(hw[i, 1]), int(hw[i, 0]), model) for i in range(s)
    ]
    intrinsics = options.intrinsics
    known = intrinsics.resolve(rec.names, hw) if intrinsics is not None else [None] * s
    fixed = np.array([k is not None for k in known])
    cameras = [k if k is not None else c for k, c in zip(known, cameras, strict=True)]
    if not options.bundle.shared_camera:
        return cameras, np.arange(1, s + 1), fixed
    if len({(int(h), int(w)) for h, w in hw}) > 1:
        raise ValueError("a shared camera needs images of one size; these images have several sizes")
    given = {c for c, k in zip(cameras, known, strict=True) if k is not None}
    if len(given) > 1:
        raise ValueError("a shared camera needs one set of known intrinsics; the given ones differ per image")
    if given:
        shared = given.pop()
    else:
        params = np.mean([c.params for c in cameras], axis=0)
        shared = Camera(model, cameras[0].width, cameras[0].height, tuple(params))
    return [shared] * s, np.ones(s, np.int64), np.full(s, bool(fixed.any()))


def _state(rec: Reconstruction, setup: _Setup, anchor: int) -> RefineState:
    s = rec.num_frames
    registered = np.zeros(s, bool)
    registered[anchor] = True
    status = [FrameStatus.KEPT] * s
    status[anchor] = FrameStatus.ANCHOR
    return RefineState(
        cameras=list(setup.cameras),
        camera_ids=setup.camera_ids.copy(),
        fixed_intrinsics=setup.fixed.copy(),
        initial_focal=np.array([c.focal_length for c in setup.cameras]),
        cam_from_world=rec.extrinsic.astype(np.float64).copy(),
        registered=registered,
        status=status,
        depth_scale=np.ones(s),
        anchor=anchor,
        feed_forward=rec.extrinsic.astype(np.float64).copy(),
        initial_cameras=list(setup.cameras),
    )


def _feed_forward_errors(rec: Reconstruction, setup: _Setup, tracks: Tracks, max_error: float) -> np.ndarray:
    """(M,) reprojection errors with the feed-forward cameras, each track triangulated with them."""
    state = _state(rec, setup, rec.reference_index)
    state.registered[:] = True
    state.reset_points(len(tracks))
    triangulate_tracks(state, tracks, np.ones(len(tracks), bool), max_error)
    return state.observation_errors(tracks)


def _rounds(
    state: RefineState,
    tracks: Tracks,
    obs_depth: np.ndarray,
    options: RefineOptions,
    count: int | None = None,
) -> np.ndarray:
    """Rounds of adjustment (``count``, default ``options.bundle.iterations``): re-triangulate tracks without
    a point, take in observations the current geometry fits, adjust, filter. Returns the last inliers."""
    bundle = options.bundle
    inliers = np.zeros(tracks.num_observations, bool)
    for _ in range(bundle.iterations if count is None else count):
        missing = ~np.isfinite(state.points).all(axis=1)
        triangulate_tracks(state, tracks, missing, bundle.max_reproj_error)
        state.seed_points(tracks, obs_depth)
        use = state.observation_errors(tracks) < _GATE * bundle.max_reproj_error
        inliers = adjust(state, tracks, use, obs_depth, bundle, bundle.filter_schedule)
    return inliers


def _replace_anchor(
    state: RefineState, tracks: Tracks, obs_depth: np.ndarray, inliers: np.ndarray, dropped: dict[int, str]
) -> None:
    """The anchor lost its inliers: the trusted frame with the most inliers becomes the anchor (the scene
    moves so that it gets its feed-forward pose back)."""
    counts = np.bincount(tracks.frame[inliers], minlength=state.num_frames)
    candidates = [f for f in np.nonzero(state.registered)[0] if f not in dropped]
    if candidates:
        state.move_anchor(int(max(candidates, key=lambda f: counts[f])), tracks, obs_depth, inliers)


def _drop_untrusted(
    state: RefineState, tracks: Tracks, obs_depth: np.ndarray, inliers: np.ndarray, options: RefineOptions
) -> tuple[np.ndarray, dict[int, str]]:
    """Frames whose refinement is not trusted go back to their feed-forward camera (the others are adjusted
    once more without them)."""
    dropped = untrusted_frames(state, tracks, inliers, options.init.min_inliers)
    if state.anchor in dropped:
        _replace_anchor(state, tracks, obs_depth, inliers, dropped)
    for f in dropped:
        state.revert(f)
    if dropped:
        logger.info("not trusted, keeping the feed-forward camera: %s", dropped)
        inliers = inliers & state.registered[tracks.frame]
        if state.registered.sum() >= 2:
            inliers = _rounds(state, tracks, obs_depth, options, count=1)
    return inliers, dropped


def _verify_frames(
    state: RefineState, tracks: Tracks, obs_depth: np.ndarray, inliers: np.ndarray, options: RefineOptions
) -> tuple[np.ndarray, dict[int, str]]:
    """Drop untrusted frames and try to register the frames left out against the adjusted points, until
    nothing changes (a few times at most); then a last check. Returns the inliers and the reason for every
    frame left out."""
    reasons: dict[int, str] = {}
    threshold = 2.0 * options.bundle.max_reproj_error
    for _ in range(_VERIFY_ROUNDS):
        inliers, dropped = _drop_untrusted(state, tracks, obs_depth, inliers, options)
        reasons.update(dropped)
        left_out = [int(f) for f in np.nonzero(~state.registered)[0]]
        again = reregister_frames(
            state, tracks, inliers, left_out, threshold, options.init.min_inliers, options.seed
        )
        for f in again:
            reasons.pop(f, None)
        if again:
            inliers = _rounds(state, tracks, obs_depth, options, count=1)
        elif not dropped:
            return inliers, reasons
    inliers, dropped = _drop_untrusted(state, tracks, obs_depth, inliers, options)
    reasons.update(dropped)
    return inliers, reasons


def _colors(rec: Reconstruction, tracks: Tracks) -> np.ndarray:
    """(T, 3) uint8: the colour under each track's first observation."""
    colors = np.zeros((len(tracks), 3), np.uint8)
    if len(tracks) == 0:
        return colors
    images = frame_images(rec)
    first = np.unique(tracks.track, return_index=True)[1]
    for f in np.unique(tracks.frame[first]):
        sel = first[tracks.frame[first] == f]
        image_from_original = np.linalg.inv(images.original_from_image[f])
        uv = tracks.xy[sel] * np.diag(image_from_original)[:2] + image_from_original[:2, 2]
        h, w = images.rgb[f].shape[:2]
        col = np.clip(np.rint(uv[:, 0]).astype(int), 0, w - 1)
        row = np.clip(np.rint(uv[:, 1]).astype(int), 0, h - 1)
        colors[tracks.track[sel]] = images.rgb[f][row, col]
    return colors


def _refined_parts(state: RefineState, f: int, options: RefineOptions) -> list[str]:
    if not state.registered[f]:
        return []
    parts = [] if f == state.anchor else ["pose"]
    if not state.fixed_intrinsics[f]:
        b = options.bundle
        parts += ["focal_length"] if b.refine_focal_length else []
        parts += ["principal_point"] if b.refine_principal_point else []
        parts += ["distortion"] if b.refine_distortion and b.camera_model == "SIMPLE_RADIAL" else []
    return parts


def _median(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None


def _frame_reports(
    rec: Reconstruction,
    state: RefineState,
    setup: _Setup,
    tracks: Tracks,
    errors_before: np.ndarray,
    inliers: np.ndarray,
    reasons: dict[int, str],
    options: RefineOptions,
) -> list[FrameReport]:
    threshold = options.bundle.max_reproj_error
    errors_after = state.observation_errors(tracks)
    reports = []
    for f in range(rec.num_frames):
        mine = tracks.frame == f
        kept = inliers & mine
        reports.append(
            FrameReport(
                name=rec.names[f],
                status=state.status[f],
                reason=reasons.get(f),
                observations=int(mine.sum()),
                inliers_before=int(np.sum(errors_before[mine] < threshold)),
                inliers_after=int(kept.sum()) if state.registered[f] else 0,
                reproj_error_before=_median(errors_before[mine]),
                reproj_error_after=_median(errors_after[kept]) if state.registered[f] else None,
                refined=_refined_parts(state, f, options),
                focal_before=setup.cameras[f].focal_length,
                focal_after=state.cameras[f].focal_length,
                depth_scale=float(state.depth_scale[f]),
            )
        )
    return reports


def _feed_forward_result(
    rec: Reconstruction,
    setup: _Setup,
    report: RefineReport,
    warning: str,
    reports: list[FrameReport] | None = None,
) -> RefineResult:
    """The feed-forward cameras (with known intrinsics where given), with a warning."""
    logger.warning("refinement: %s; keeping the feed-forward cameras", warning)
    report.status = "feed-forward"
    report.warnings.append(warning)
    report.frames = reports or [
        FrameReport(name=n, status=FrameStatus.KEPT, focal_before=c.focal_length, focal_after=c.focal_length)
        for n, c in zip(rec.names, setup.cameras, strict=True)
    ]
    for frame in report.frames:
        frame.status, frame.refined, frame.inliers_after = FrameStatus.KEPT, [], 0
        frame.reason = frame.reason or warning
        frame.focal_after, frame.reproj_error_after, frame.depth_scale = frame.focal_before, None, 1.0
    s = rec.num_frames
    ones = np.ones(s)
    if setup.fixed.any():
        rec = refined_reconstruction(rec, rec.extrinsic, setup.cameras, ones)
    return RefineResult(
        reconstruction=rec,
        cameras=list(setup.cameras),
        camera_ids=setup.camera_ids.copy(),
        tracks=Tracks.empty(),
        points=np.zeros((0, 3)),
        colors=np.zeros((0, 3), np.uint8),
        refined=np.zeros(s, bool),
        depth_scale=ones,
        report=report,
    )


def _start_from_feed_forward(
    rec: Reconstruction,
    setup: _Setup,
    tracks: Tracks,
    obs_depth: np.ndarray,
    options: RefineOptions,
    anchor: int,
) -> tuple[RefineState, np.ndarray] | None:
    """Adjust every frame with enough correspondences from its feed-forward camera at once. Accepted when
    every such frame ends trusted: the feed-forward cameras were close enough. Otherwise (a weak camera
    head) None, and frames are registered one by one. Starting all frames near the truth keeps repeated
    texture from pulling single frames to a wrong pose, which one-by-one PnP cannot rule out."""
    state = _state(rec, setup, anchor)
    candidates = tracks.per_frame(rec.num_frames) >= options.init.min_inliers
    state.registered |= candidates
    for f in np.nonzero(candidates)[0]:
        if f != anchor:
            state.status[f] = FrameStatus.FEED_FORWARD_START
    state.reset_points(len(tracks))
    state.seed_points(tracks, obs_depth)
    everything = np.ones(tracks.num_observations, bool)
    inliers = adjust(state, tracks, everything, obs_depth, options.bundle, options.bundle.filter_schedule)
    inliers = _rounds(state, tracks, obs_depth, options)
    untrusted = untrusted_frames(state, tracks, inliers, options.init.min_inliers)
    moved = _rotation_change(state)
    far = [int(f) for f in np.nonzero(moved > options.init.feed_forward_tolerance)[0] if f not in untrusted]
    accepted = not far and len(untrusted) <= candidates.sum() / 2
    logger.info(
        "starting every frame from its predicted camera: %s (%d of %d frames not trusted, %d moved over %g "
        "degrees)",
        "accepted" if accepted else "rejected",
        len(untrusted),
        int(candidates.sum()),
        len(far),
        options.init.feed_forward_tolerance,
    )
    return (state, inliers) if accepted else None


def _rotation_change(state: RefineState) -> np.ndarray:
    """(S,) degrees between each registered frame's rotation relative to the anchor, refined and
    feed-forward (0 for the others)."""
    anchor_now = state.cam_from_world[state.anchor, :, :3]
    anchor_before = state.feed_forward[state.anchor, :, :3]
    out = np.zeros(state.num_frames)
    for f in np.nonzero(state.registered)[0]:
        now = state.cam_from_world[f, :, :3] @ anchor_now.T
        before = state.feed_forward[f, :, :3] @ anchor_before.T
        cos = (np.trace(now @ before.T) - 1.0) / 2.0
        out[f] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return out


def _refine_state(
    rec: Reconstruction,
    setup: _Setup,
    source: CorrespondenceSource,
    tracks: Tracks,
    options: RefineOptions,
    anchor: int,
    seconds: dict[str, float],
    progress: Progress | None,
) -> tuple[RefineState, Tracks, np.ndarray, dict[int, str]]:
    """Registration, adjustment rounds, guided matching, final rounds and the check of every frame.
    Returns the state, the final tracks, their inliers and why frames were left out; ``seconds`` gets the
    time of each stage."""
    start = time.perf_counter()
    obs_depth = sample_depth(rec, tracks.frame, tracks.xy)
    started = _start_from_feed_forward(rec, setup, tracks, obs_depth, options, anchor)
    if started is not None:
        state, inliers = started
    else:
        state = _state(rec, setup, anchor)
        register_frames(state, tracks, obs_depth, options.init, options.bundle, options.seed, progress)
        inliers = _rounds(state, tracks, obs_depth, options)
    inliers, reasons = _verify_frames(state, tracks, obs_depth, inliers, options)
    seconds["registration"] = time.perf_counter() - start
    if not (options.matching.guided and isinstance(source, GuidedSource) and state.registered.sum() >= 2):
        return state, tracks, inliers, reasons
    start = time.perf_counter()
    geometry = Geometry(state.cameras, state.cam_from_world, state.depth_scale, state.registered)
    guided = source.rematch(rec, geometry, progress).tracks
    seconds["guided_matching"] = time.perf_counter() - start
    if guided.num_observations < inliers.sum():
        return state, tracks, inliers, reasons
    start = time.perf_counter()
    obs_depth = sample_depth(rec, guided.frame, guided.xy)
    state.reset_points(len(guided))
    inliers = _rounds(state, guided, obs_depth, options)
    inliers, more = _verify_frames(state, guided, obs_depth, inliers, options)
    seconds["final_adjustment"] = time.perf_counter() - start
    reasons = {f: r for f, r in {**reasons, **more}.items() if not state.registered[f]}
    return state, guided, inliers, reasons


def refine(
    reconstruction: Reconstruction,
    options: RefineOptions | None = None,
    *,
    correspondences: CorrespondenceSource | None = None,
    progress: Progress | None = None,
) -> RefineResult:
    """Refine a reconstruction's cameras (and depth scales) against its images by bundle adjustment.

    Args:
        reconstruction: a feed-forward reconstruction (its original images are read from ``image_paths`` or
            ``source_frames``; where missing, its model-resolution images are used).
        options: matching, initialisation and adjustment options, known intrinsics (held fixed) and an
            alignment to a known frame (defaults: :class:`RefineOptions`).
        correspondences: where tracks come from; default the classical matcher
            (:class:`~vggtkit.refine.correspondences.ClassicalMatcher`); e.g.
            :class:`~vggtkit.refine.track_head.TrackHeadSource` for a model with a track head.
        progress: called as ``progress(stage, done, total)``.

    Returns:
        A :class:`RefineResult`, in the aligned frame when ``options.alignment`` is given. A frame with too
        few inliers keeps its feed-forward camera and is named in the report; when nothing can be refined the
        feed-forward reconstruction comes back with a warning.

    Raises:
        ValueError: invalid options, intrinsics or alignment names (before any work is done).
    """
    options = options or RefineOptions()
    if not isinstance(options, RefineOptions):
        raise ValueError(f"options must be a RefineOptions, got {type(options).__name__}")
    cameras, camera_ids, fixed = initial_cameras(reconstruction, options)
    if options.alignment is not None:
        check_alignment(reconstruction, options.alignment)
    setup = _Setup(cameras, camera_ids, fixed)
    source = correspondences or ClassicalMatcher(options.matching, seed=options.seed)
    report = RefineReport(
        status="refined",
        source=getattr(source, "name", type(source).__name__),
        camera_model=cameras[0].model if options.bundle.shared_camera else options.bundle.camera_model,
        shared_camera=options.bundle.shared_camera,
        known_intrinsics=[n for n, f in zip(reconstruction.names, fixed, strict=True) if f],
        options=options.to_dict(),
    )
    try:
        with _quiet_pycolmap():
            result = _run(reconstruction, setup, source, options, report, progress)
    except Exception as exc:  # the contract: refinement never fails the run
        logger.debug("refinement failed", exc_info=True)
        result = _feed_forward_result(reconstruction, setup, report, f"refinement failed: {exc}")
    return result if options.alignment is None else _aligned(result, options.alignment, options.seed)


def _aligned(result: RefineResult, alignment: AlignOptions, seed: int) -> RefineResult:
    """``result`` in the known frame; unchanged, with a warning in its report, when no similarity fits."""
    try:
        aligned, _ = align(
            result,
            positions=alignment.positions,
            distance=alignment.distance,
            max_error=alignment.max_error,
            seed=seed,
        )
    except ValueError as exc:
        warning = f"not aligned: {exc}"
        logger.warning("refinement: %s", warning)
        result.report.warnings.append(warning)
        return result
    return aligned


def _run(
    rec: Reconstruction,
    setup: _Setup,
    source: CorrespondenceSource,
    options: RefineOptions,
    report: RefineReport,
    progress: Progress | None,
) -> RefineResult:
    start = time.perf_counter()
    query = select_query_frames(rec.num_frames, options.matching.query_frames, rec.reference_index)
    found = source.find(rec, query, progress)
    report.query_frames = [rec.names[q] for q in found.query_frames]
    report.seconds["correspondences"] = time.perf_counter() - start
    tracks = found.tracks
    if rec.num_frames < 2:
        return _feed_forward_result(rec, setup, report, "a single frame: nothing to refine against")
    anchor = choose_anchor(tracks, rec.num_frames, rec.reference_index, options.init.min_inliers)
    if anchor is None:
        return _feed_forward_result(
            rec,
            setup,
            report,
            f"no frame has {options.init.min_inliers} correspondences ({tracks.num_observations} in all): "
            "nothing to match",
        )
    state, tracks_final, inliers, reasons = _refine_state(
        rec, setup, source, tracks, options, anchor, report.seconds, progress
    )
    for f in np.nonzero(~state.registered)[0]:
        reasons.setdefault(int(f), f"fewer than {options.init.min_inliers} correspondences agree on a pose")
    inliers &= state.registered[tracks_final.frame]
    obs_depth = sample_depth(rec, tracks_final.frame, tracks_final.xy)
    state.move_anchor(rec.reference_index, tracks_final, obs_depth, inliers)
    errors_before = _feed_forward_errors(rec, setup, tracks_final, options.bundle.max_reproj_error)
    reports = _frame_reports(rec, state, setup, tracks_final, errors_before, inliers, reasons, options)
    if state.registered.sum() < 2:
        return _feed_forward_result(rec, setup, report, "no frame could be registered to another", reports)
    return _result(rec, state, tracks_final, inliers, reports, report, start)


def _result(
    rec: Reconstruction,
    state: RefineState,
    tracks: Tracks,
    inliers: np.ndarray,
    frames: list[FrameReport],
    report: RefineReport,
    start: float,
) -> RefineResult:
    ids = tracks.kept_track_ids(inliers)
    final = tracks.select(inliers)
    report.frames = frames
    report.status = "refined" if state.registered.all() else "partial"
    report.anchor = rec.names[state.anchor]
    report.num_tracks = len(final)
    report.num_observations = final.num_observations
    report.mean_track_length = float(final.lengths().mean()) if len(final) else 0.0
    if report.status == "partial":
        report.warnings.append(f"kept the feed-forward camera of {', '.join(report.kept_frames)}")
    report.seconds["total"] = time.perf_counter() - start
    logger.info(
        "refinement %s: %d of %d frames, %d tracks (mean length %.2f)",
        report.status,
        int(state.registered.sum()),
        rec.num_frames,
        report.num_tracks,
        report.mean_track_length,
    )
    return RefineResult(
        reconstruction=refined_reconstruction(rec, state.cam_from_world, state.cameras, state.depth_scale),
        cameras=list(state.cameras),
        camera_ids=state.camera_ids.copy(),
        tracks=final,
        points=state.points[ids].copy(),
        colors=_colors(rec, final),
        refined=state.registered.copy(),
        depth_scale=state.depth_scale.copy(),
        report=report,
    )
