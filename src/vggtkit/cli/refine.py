"""`vggtkit refine`: refine the cameras of an earlier run against its images (bundle adjustment), without
running the model again. Writes the refined ``predictions.npz``, ``refine.json`` (the report) and a COLMAP
model whose observations are the matched keypoints (``sparse/0``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vggtkit.cli.common import UserError

EXAMPLES = """\
examples:
  vggtkit refine scene/predictions.npz                          # writes scene/refined/
  vggtkit refine scene/predictions.npz --intrinsics calib.json  # known intrinsics, held fixed
  vggtkit refine scene/predictions.npz --focal 1200 --shared-camera
  vggtkit refine scene/predictions.npz --align-to gps.txt       # lines 'IMAGE_NAME X Y Z'
  vggtkit refine scene/predictions.npz --distance img1.jpg img9.jpg 2.5
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "refine",
        help="refine the cameras of a predictions.npz against its images (bundle adjustment)",
        description="Find correspondences in the original images of an earlier run, refine its cameras and "
        "depth scales by bundle adjustment (frames whose predicted pose the correspondences contradict are "
        "re-initialised), and write the refined predictions.npz, refine.json and a COLMAP model with the "
        "matched keypoints as observations. Frames that cannot be refined keep their predicted camera; the "
        "command never fails because refinement does.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("predictions", metavar="PREDICTIONS.npz", help="a predictions.npz file")
    parser.add_argument(
        "-o", "--output", metavar="DIR", help="output folder (default: 'refined' next to PREDICTIONS.npz)"
    )
    _add_camera_options(parser)
    _add_matching_options(parser)
    _add_alignment_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    parser.set_defaults(func=run)


def _add_camera_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cameras")
    group.add_argument(
        "--camera-model",
        default="SIMPLE_PINHOLE",
        choices=("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL"),
        help="camera model (default: SIMPLE_PINHOLE); SIMPLE_RADIAL's distortion is kept in the COLMAP model "
        "only",
    )
    group.add_argument("--shared-camera", action="store_true", help="one camera for all images (one size)")
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
    group = parser.add_argument_group("correspondences and adjustment")
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


def _add_alignment_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("metric scale and georeferencing")
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


# Option fields as the command line names them, for error messages.
_FLAGS = {
    "MatchOptions.query_frames": "--query-frames",
    "MatchOptions.max_keypoints": "--max-keypoints",
    "InitOptions.min_inliers": "--min-inliers",
    "BundleOptions.max_reproj_error": "--max-reproj-error",
    "BundleOptions.iterations": "--iterations",
    "RefineOptions.seed": "--seed",
}


def _options(args: argparse.Namespace):
    try:
        return _build_options(args)
    except ValueError as exc:
        message = str(exc)
        for field, flag in _FLAGS.items():
            message = message.replace(field, flag)
        raise UserError(message) from exc


def _build_options(args: argparse.Namespace):
    from vggtkit.refine import BundleOptions, InitOptions, MatchOptions, RefineOptions

    return RefineOptions(
        matching=MatchOptions(
            query_frames=args.query_frames, max_keypoints=args.max_keypoints, guided=not args.no_guided
        ),
        init=InitOptions(min_inliers=args.min_inliers),
        bundle=BundleOptions(
            camera_model=args.camera_model,
            shared_camera=args.shared_camera,
            refine_focal_length=not args.fix_focal,
            refine_principal_point=args.refine_principal_point,
            max_reproj_error=args.max_reproj_error,
            iterations=args.iterations,
        ),
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


def _alignment(args: argparse.Namespace) -> dict:
    from vggtkit.refine import load_positions

    if args.align_to is not None and args.distance is not None:
        raise UserError("give --align-to or --distance, not both")
    if args.align_to is not None:
        return {"positions": load_positions(args.align_to), "max_error": args.align_max_error}
    if args.distance is not None:
        name_a, name_b, value = args.distance
        try:
            length = float(value)
        except ValueError as exc:
            raise UserError(f"--distance: '{value}' is not a number") from exc
        return {"distance": (name_a, name_b, length)}
    if args.align_max_error is not None:
        raise UserError("--align-max-error needs --align-to")
    return {}


def _correspondences(args: argparse.Namespace, options):
    if args.track_head is None:
        return None
    from vggtkit import VGGT
    from vggtkit.refine.track_head import TrackHeadSource

    model = VGGT.from_pretrained(args.track_head).eval()
    return TrackHeadSource(model, options.matching, seed=args.seed)


def _output_dir(args: argparse.Namespace, source: Path) -> Path:
    from vggtkit.cli.export import check_output_dir

    return check_output_dir(args.output if args.output is not None else source.parent / "refined")


def run(args: argparse.Namespace) -> int:
    from vggtkit.cli.export import progress_bars
    from vggtkit.pipeline import Reconstruction
    from vggtkit.refine import align, refine, write_colmap_model

    options = _options(args)
    intrinsics = _intrinsics(args)
    alignment = _alignment(args)
    source = Path(args.predictions)
    rec = Reconstruction.load_npz(source)
    if alignment:
        align(rec, seed=args.seed, **alignment)  # names and positions are checked before the work
    out_dir = _output_dir(args, source)
    correspondences = _correspondences(args, options)
    start = time.perf_counter()
    with progress_bars() as progress:
        result = refine(
            rec, options, intrinsics=intrinsics, correspondences=correspondences, progress=progress
        )
    if alignment:
        result, _ = align(result, seed=args.seed, **alignment)
    result.reconstruction.save_npz(out_dir / "predictions.npz")
    result.report.save(out_dir / "refine.json")
    write_colmap_model(result, out_dir / "sparse" / "0")
    print(result.report.summary())
    if result.report.alignment is not None:
        a = result.report.alignment
        print(f"aligned to {a['kind']}: scale {a['similarity']['scale']:.6g}, rms residual {a['rms']:.4g}")
    print(
        f"refined {rec.num_frames} frames from {source} in {time.perf_counter() - start:.1f} s; wrote "
        f"{out_dir}/predictions.npz, refine.json, sparse/0/"
    )
    return 0
