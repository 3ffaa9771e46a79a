"""`vggtkit export`: write exports again from a saved predictions.npz (no model run), with new thresholds.

Also home of what `reconstruct` shares with it: the export options, the progress bars and the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vggtkit.cli.common import UserError
from vggtkit.utils.memory import PeakMemory, format_bytes

EXAMPLES = """\
examples:
  vggtkit export scene/predictions.npz --export ply --conf-threshold 80
  vggtkit export scene/predictions.npz -o scene_sky --export glb --sky-model skyseg.onnx --mask-white
  vggtkit export scene/predictions.npz --export colmap --camera-model SIMPLE_PINHOLE --shared-camera
"""


# ------------------------------------------------------------------------------------------- shared options
def add_export_options(parser: argparse.ArgumentParser, default_exports: str) -> None:
    """--export and the options of the exports (thresholds, masks, formats)."""
    from vggtkit.export import CAMERA_MODELS, EXPORT_DESCRIPTIONS

    listing = "; ".join(f"{name}: {text.split(':')[0]}" for name, text in EXPORT_DESCRIPTIONS.items())
    group = parser.add_argument_group("exports")
    group.add_argument(
        "--export",
        default=default_exports,
        metavar="LIST",
        help=f"comma-separated formats, or all (default: {default_exports}). {listing}",
    )
    group.add_argument(
        "--conf-threshold",
        type=float,
        default=50.0,
        metavar="PCT",
        help="percentile of confidence to drop, as the official demo's slider: 50 keeps the most confident half "
        "of the pixels, 0 keeps all (default: 50)",
    )
    group.add_argument(
        "--branch",
        choices=("depth", "pointmap"),
        default="depth",
        help="points from depth + cameras (default, as the official demo) or from the point head",
    )
    group.add_argument(
        "--frame",
        type=int,
        default=None,
        metavar="N",
        help="GLB/PLY: only the points (and camera) of frame N (0-based, sorted order)",
    )
    group.add_argument("--mask-black", action="store_true", help="drop black background pixels (R+G+B < 16)")
    group.add_argument("--mask-white", action="store_true", help="drop white background pixels (all > 240)")
    group.add_argument(
        "--sky-model",
        metavar="ONNX",
        default=None,
        help="drop sky pixels using this sky-segmentation ONNX file (needs onnxruntime: "
        "pip install 'vggtkit[sky]')",
    )
    group.add_argument("--no-cameras", action="store_true", help="GLB: do not draw camera frusta")
    group.add_argument(
        "--voxel-size",
        type=float,
        default=None,
        metavar="SIZE",
        help="PLY: merge points per voxel of this edge length (scene units)",
    )
    group.add_argument(
        "--camera-model",
        choices=(*CAMERA_MODELS, "SIMPLE_RADIAL"),
        default=None,
        help=f"COLMAP camera model (default: {CAMERA_MODELS[0]}; after refinement, the refined cameras' model, "
        "SIMPLE_PINHOLE by default); SIMPLE_RADIAL only with refinement (--ba, vggtkit refine)",
    )
    group.add_argument(
        "--shared-camera",
        action="store_true",
        help="COLMAP: one camera shared by all images (they must have one size)",
    )
    group.add_argument(
        "--depth-resolution",
        choices=("model", "original"),
        default="model",
        help="depth PNGs at the model resolution (default) or each image's original size",
    )


def export_options_from_args(args: argparse.Namespace, camera_model: str | None = None):
    """Build ``ExportOptions`` (a ValueError names a bad value); ``camera_model`` replaces --camera-model."""
    from vggtkit.export import CAMERA_MODELS, ExportOptions

    return ExportOptions(
        conf_threshold=args.conf_threshold,
        branch=args.branch,
        frame=args.frame,
        mask_black=args.mask_black,
        mask_white=args.mask_white,
        sky_model=args.sky_model,
        show_cameras=not args.no_cameras,
        voxel_size=args.voxel_size,
        camera_model=camera_model or args.camera_model or CAMERA_MODELS[0],
        shared_camera=args.shared_camera,
        depth_resolution=args.depth_resolution,
    )


def check_output_dir(path: str | Path) -> Path:
    """The output folder; a UserError if it exists as a file or cannot be created."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"output '{out}' exists and is a file; pass a folder path with -o")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder '{out}': {exc.strerror or exc}") from exc
    return out


# ------------------------------------------------------------------------------------------- progress
class TqdmProgress:
    """A ``progress(stage, done, total)`` callback drawing one tqdm bar per stage on stderr."""

    def __init__(self, disable: bool | None = None) -> None:
        self._bar: Any = None
        self._stage: str | None = None
        self._disable = disable

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(
                total=total or None,
                desc=stage,
                unit="",
                file=sys.stderr,
                leave=False,
                disable=self._disable,
                dynamic_ncols=True,
            )
        bar = self._bar
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._stage = None


@contextlib.contextmanager
def progress_bars() -> Iterator[TqdmProgress]:
    """Progress bars with log records printed above them."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    progress = TqdmProgress()
    try:
        with logging_redirect_tqdm():
            yield progress
    finally:
        progress.close()


# ------------------------------------------------------------------------------------------- summary
def peak_memory_text(meter: PeakMemory) -> str:
    """'peak process RSS 1.23 GB' (CPU) or 'peak GPU memory allocated 4.56 GB' (CUDA) of a measured section."""
    return f"peak {meter.kind} {format_bytes(meter.peak_bytes)}"


def print_exports(results: dict, out_dir: Path) -> None:
    for name, result in results.items():
        files = ", ".join(_relative(p, out_dir) for p in result.files)
        points = f" ({result.points:,} points)" if result.points is not None else ""
        print(f"  {name:10s} {files}{points}")


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base)) + ("/" if path.is_dir() else "")
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------- command
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write exports again from a predictions.npz (new thresholds, no model run)",
        description="Read a predictions.npz written by `vggtkit reconstruct` (or the official demo) and write "
        "the chosen exports, e.g. with another confidence threshold or masks. The model is not run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("predictions", metavar="PREDICTIONS.npz", help="a predictions.npz file")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="DIR",
        help="output folder (default: the folder of PREDICTIONS.npz)",
    )
    add_export_options(parser, default_exports="glb")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vggtkit import Reconstruction
    from vggtkit.export import export_all, parse_export_names

    names = parse_export_names(args.export)
    options = export_options_from_args(args)
    source = Path(args.predictions)
    out_dir = check_output_dir(args.output if args.output is not None else source.parent)
    start = time.perf_counter()
    with progress_bars() as progress, PeakMemory("cpu") as memory:
        progress("load predictions", 0, 1)
        rec = Reconstruction.load_npz(source)
        progress("load predictions", 1, 1)
        results = export_all(rec, out_dir, names, options, progress=progress)
    h, w = rec.model_hw
    print(
        f"exported {rec.num_frames} frames ({w}x{h}) from {source} in {time.perf_counter() - start:.1f} s, "
        f"{peak_memory_text(memory)}"
    )
    print_exports(results, out_dir)
    return 0
