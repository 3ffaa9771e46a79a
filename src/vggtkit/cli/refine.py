"""`vggtkit refine`: refine the cameras of an earlier run against its images (bundle adjustment), without
running the model again. Writes ``predictions_refined.npz`` (which `vggtkit view` shows beside the predicted
cameras), ``refine.json`` (the report) and the chosen exports of the refined result (by default the COLMAP
model whose observations are the matched keypoints).

Also home of the refinement flags `vggtkit reconstruct --ba` shares.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vggtkit.cli.common import UserError
from vggtkit.cli.export import (
    add_export_options,
    check_output_dir,
    export_options_from_args,
    print_exports,
    progress_bars,
)

DEFAULT_EXPORTS = "colmap"
EXAMPLES = """\
examples:
  vggtkit refine scene/predictions.npz                          # scene/predictions_refined.npz, refine.json, sparse/0
  vggtkit refine scene/predictions.npz --intrinsics calib.json  # known intrinsics, held fixed
  vggtkit refine scene/predictions.npz --focal 1200 --shared-camera
  vggtkit refine scene/predictions.npz --align-to gps.txt --export all   # lines 'IMAGE_NAME X Y Z'
  vggtkit refine scene/predictions.npz --distance img1.jpg img9.jpg 2.5
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "refine",
        help="refine the cameras of a predictions.npz against its images (bundle adjustment)",
        description="Find correspondences in the original images of an earlier run, refine its cameras and "
        "depth scales by bundle adjustment (frames whose predicted pose the correspondences contradict are "
        "re-initialised), and write predictions_refined.npz, refine.json and the chosen exports of the refined "
        "result. Frames that cannot be refined keep their predicted camera; the command never fails because "
        "refinement does.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("predictions", metavar="PREDICTIONS.npz", help="a predictions.npz file")
    parser.add_argument(
        "-o", "--output", metavar="DIR", help="output folder (default: the folder of PREDICTIONS.npz)"
    )
    add_refine_options(parser)
    add_export_options(parser, default_exports=DEFAULT_EXPORTS)
    parser.set_defaults(func=run)


def add_refine_options(parser: argparse.ArgumentParser) -> None:
    """The refinement flags (the camera model and shared camera are the exports' --camera-model and
    --shared-camera)."""
    _add_camera_options(parser)
    _add_matching_options(parser)
    _add_alignment_options(parser)


def _add_camera_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("refinement: cameras")
    group.add_argument("--fix-focal", action="store_true", help="do not refine focal lengths")
    group.add_argument(
        "--refine-principal-point", action="store_true", help="also refine principal points (off by default)"
    )
    group.add_argument(
        "--intrinsics",
        metavar="FILE",
        help="known intrinsics, held fixed: a JSON file ({'K': ...} for all images or {'frames': [{'name', "
        "'K'}]}, e.g. a cameras.json), a COLMAP cameras.txt with one camera, or a COLMAP model folder",
    )
    group.add_argument("--focal", type=float, metavar="PX", help="known focal length in pixels, held fixed")


def _add_matching_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("refinement: correspondences and adjustment")
    group.add_argument(
        "--query-frames",
        type=int,
        metavar="N",
        help="frames tracks start from, spread over the sequence (default: all up to 12, else 12)",
    )
    group.add_argument(
        "--max-keypoints", type=int, default=8192, metavar="N", help="per image (default: 8192)"
    )
    group.add_argument(
        "--no-guided", action="store_true", help="skip matching again along the refined geometry"
    )
    group.add_argument(
        "--track-head",
        metavar="CHECKPOINT",
        help="take correspondences from this checkpoint's track head (one model run per query frame) "
        "instead of SIFT matching",
    )
    group.add_argument(
        "--max-reproj-error", type=float, default=4.0, metavar="PX", help="observation filter (default: 4)"
    )
    group.add_argument(
        "--iterations", type=int, default=3, metavar="N", help="adjustment rounds (default: 3)"
    )
    group.add_argument(
        "--min-inliers",
        type=int,
        default=20,
        metavar="N",
        help="a frame needs this many to be refined (default: 20)",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")


def _add_alignment_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("refinement: metric scale and georeferencing")
    group.add_argument(
        "--align-to",
        metavar="FILE",
        help="known camera positions: JSON {name: [x, y, z]} or lines 'NAME X Y Z'; at least 3 cameras",
    )
    group.add_argument(
        "--distance",
        nargs=3,
        metavar=("NAME_A", "NAME_B", "DIST"),
        help="the known distance between two cameras (sets the scale)",
    )
    group.add_argument(
        "--align-max-error",
        type=float,
        metavar="DIST",
        help="inlier distance of --align-to positions (default: 5%% of their spread)",
    )


def refine_options_from_args(args: argparse.Namespace):
    """The library's ``RefineOptions`` from the flags (a ValueError names a bad value in library words)."""
    from vggtkit.refine import BundleOptions, InitOptions, MatchOptions, RefineOptions

    return RefineOptions(
        matching=MatchOptions(
            query_frames=args.query_frames, max_keypoints=args.max_keypoints, guided=not args.no_guided
        ),
        init=InitOptions(min_inliers=args.min_inliers),
        bundle=BundleOptions(
            camera_model=args.camera_model or "SIMPLE_PINHOLE",
            shared_camera=args.shared_camera,
            refine_focal_length=not args.fix_focal,
            refine_principal_point=args.refine_principal_point,
            max_reproj_error=args.max_reproj_error,
            iterations=args.iterations,
        ),
        intrinsics=_intrinsics(args),
        alignment=_alignment(args),
        seed=args.seed,
    )


def _intrinsics(args: argparse.Namespace):
    from vggtkit.refine import KnownIntrinsics

    if args.intrinsics is not None and args.focal is not None:
        raise UserError("give --intrinsics or --focal, not both")
    if args.intrinsics is not None:
        return KnownIntrinsics.from_file(args.intrinsics)
    if args.focal is not None:
        return KnownIntrinsics.from_focal(args.focal)
    return None


def _alignment(args: argparse.Namespace):
    from vggtkit.refine import AlignOptions, load_positions

    if args.align_to is not None and args.distance is not None:
        raise UserError("give --align-to or --distance, not both")
    if args.align_max_error is not None and args.align_to is None:
        raise UserError("--align-max-error needs --align-to")
    if args.align_to is not None:
        return AlignOptions(positions=load_positions(args.align_to), max_error=args.align_max_error)
    if args.distance is not None:
        name_a, name_b, value = args.distance
        try:
            length = float(value)
        except ValueError as exc:
            raise UserError(f"--distance: '{value}' is not a number") from exc
        return AlignOptions(distance=(name_a, name_b, length))
    return None


def correspondences_from_args(args: argparse.Namespace, options):
    """The track-head source of --track-head, or None (the classical matcher)."""
    if args.track_head is None:
        return None
    from vggtkit import from_pretrained
    from vggtkit.refine.track_head import TrackHeadSource

    model = from_pretrained(args.track_head).eval()
    return TrackHeadSource(model, options.matching, seed=args.seed)


def refine_and_export(args: argparse.Namespace, options, rec, out_dir: Path, progress) -> dict:
    """Refine ``rec`` with ``options`` (from :func:`refine_options_from_args`) and write the exports of the
    result (see ``export_refined``); prints the report. Returns the exports written."""
    from vggtkit.refine import export_refined, refine

    correspondences = correspondences_from_args(args, options)
    result = refine(rec, options, correspondences=correspondences, progress=progress)
    # SIMPLE_RADIAL lives in the refined COLMAP model; a feed-forward COLMAP export falls back to PINHOLE.
    export_options = export_options_from_args(
        args, camera_model="PINHOLE" if args.camera_model == "SIMPLE_RADIAL" else None
    )
    results = export_refined(result, out_dir, args.export, export_options, progress=progress)
    print(result.report.summary())
    alignment = result.report.alignment
    if alignment is not None:
        print(
            f"aligned to {alignment['kind']}: scale {alignment['similarity']['scale']:.6g}, rms residual "
            f"{alignment['rms']:.4g}"
        )
    return results


def run(args: argparse.Namespace) -> int:
    from vggtkit import Reconstruction
    from vggtkit.export import parse_export_names

    parse_export_names(args.export)
    options = refine_options_from_args(args)  # every mistake in the flags surfaces before the work
    source = Path(args.predictions)
    rec = Reconstruction.load_npz(source)
    out_dir = check_output_dir(args.output if args.output is not None else source.parent)
    start = time.perf_counter()
    with progress_bars() as progress:
        results = refine_and_export(args, options, rec, out_dir, progress)
    print(
        f"refined {rec.num_frames} frames from {source} in {time.perf_counter() - start:.1f} s; output: {out_dir}"
    )
    print_exports(results, out_dir)
    return 0
