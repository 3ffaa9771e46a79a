"""`vggtkit reconstruct`: images, folders or a video in; predictions.npz, a GLB, a COLMAP model, ... out."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vggtkit.cli.common import UserError, add_device_options, resolve_device
from vggtkit.cli.export import (
    add_export_options,
    check_output_dir,
    export_options_from_args,
    peak_memory_text,
    print_exports,
    progress_bars,
)
from vggtkit.cli.refine import add_refine_options, refine_and_export, refine_options_from_args
from vggtkit.utils.memory import PeakMemory

DEFAULT_EXPORTS = "npz,glb,colmap"
EXAMPLES = """\
examples:
  vggtkit reconstruct photos/ -o scene                      # predictions.npz, scene.glb, sparse/0 + images/
  vggtkit reconstruct photos/ -o scene --checkpoint tiny-synthetic   # the bundled model, offline, at 112 px
  vggtkit reconstruct clip.mp4 -o scene --fps 2 --max-frames 32
  vggtkit reconstruct a.jpg b.jpg c.jpg -o scene --export all --conf-threshold 30
  vggtkit reconstruct photos/ -o scene --checkpoint ./VGGT-1B --dtype bfloat16 --reference 3
  vggtkit reconstruct photos/ -o scene --export colmap,transforms --camera-model SIMPLE_PINHOLE
  vggtkit reconstruct long.mp4 -o scene --chunk-size 48 --overlap 12 --loop-closure   # any length
  vggtkit reconstruct long.mp4 -o scene --max-memory 8GB     # one pass if it fits, else chunks that do
  vggtkit reconstruct photos/ -o scene --ba                 # cameras refined by bundle adjustment
  vggtkit reconstruct photos/ -o scene --ba --focal 1450 --align-to gps.txt --export all
  vggtkit reconstruct photos/ -o scene --runtime onnx --checkpoint vggt.onnx   # from vggtkit export-onnx

Files are sorted by natural name order (img2 before img10); the first one (or --reference N) defines the
world frame. Re-export later without the model: vggtkit export scene/predictions.npz --export ply

With --ba, predictions.npz keeps the model's own cameras (`vggtkit refine` can refine it again), the refined
result is predictions_refined.npz with refine.json, and every other export uses the refined cameras.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from vggtkit.weights import DEFAULT_CHECKPOINT

    parser = subparsers.add_parser(
        "reconstruct",
        help="reconstruct cameras, depth and a 3-D scene from images or a video",
        description="Run a VGGT or VGGT-Omega model on images (files, folders, glob patterns) or videos and write the chosen exports "
        "into the output folder.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or videos"
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created)")
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        metavar="SRC",
        help=f"weights: a folder (config.json + model.safetensors), a weights file (.safetensors/.pt), or a "
        f"Hugging Face repo id, looked up in the local cache (default: {DEFAULT_CHECKPOINT})",
    )
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="torch: the PyTorch model (default); onnx: --checkpoint is an .onnx file written by `vggtkit "
        "export-onnx`, run by onnxruntime at the frame size it was exported for",
    )
    add_device_options(parser)
    parser.add_argument(
        "--view",
        action="store_true",
        help="open the result in the interactive viewer after the run (as `vggtkit view OUT`; Ctrl+C stops it)",
    )
    group = parser.add_argument_group("inputs")
    group.add_argument(
        "--mode",
        choices=("crop", "pad", "balanced", "max_size"),
        default=None,
        help="image preprocessing (default: the model family's, as its official demo). VGGT: crop (width to "
        "--resolution, taller images centre-cropped; the default) or pad (the whole image, padded to a square). "
        "VGGT-Omega: balanced (about (resolution/16)^2 patches at any aspect ratio; the default) or max_size "
        "(longer side to --resolution)",
    )
    group.add_argument(
        "--resolution",
        type=int,
        default=None,
        metavar="PX",
        help="model input resolution, a multiple of the model's patch size (14 for VGGT, 16 for VGGT-Omega): "
        "VGGT's width (crop) or side (pad) (default: the resolution the checkpoint was trained at: 518 for "
        "VGGT-1B, 112 for tiny-synthetic, 512 for VGGT-Omega-1B-512); smaller is faster and uses less memory",
    )
    group.add_argument("--fps", type=float, default=1.0, help="video frames sampled per second (default: 1)")
    group.add_argument(
        "--max-frames",
        type=int,
        default=None,
        metavar="N",
        help="use at most N frames, evenly spaced (default: all)",
    )
    group.add_argument(
        "--reference",
        type=int,
        default=0,
        metavar="N",
        help="frame (0-based, sorted order) that defines the world frame (default: 0)",
    )
    _add_long_sequence_options(parser)
    add_export_options(parser, default_exports=DEFAULT_EXPORTS)
    parser.add_argument(
        "--ba",
        action="store_true",
        help="refine the cameras against the images by bundle adjustment (see the refinement options); "
        "a scene that cannot be refined keeps the model's cameras, with a warning",
    )
    add_refine_options(parser)
    parser.set_defaults(func=run)


def _add_long_sequence_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "long sequences",
        "Chunks of frames are reconstructed one at a time, read from disk as they start, and joined by the "
        "similarity transforms their shared frames agree on; memory does not grow with the number of frames.",
    )
    group.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        metavar="N",
        help="run the model on overlapping chunks of N frames (default: one pass over all frames, unless "
        "--max-memory calls for chunks)",
    )
    group.add_argument(
        "--overlap",
        type=int,
        default=None,
        metavar="K",
        help="frames shared by consecutive chunks (default: a quarter of --chunk-size)",
    )
    group.add_argument(
        "--loop-closure",
        action="store_true",
        help="with chunks: find places the camera revisits and spread the drift of the chunk chain over them",
    )
    group.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="memory budget, e.g. 8GB: one pass when it fits, otherwise the largest chunks that do",
    )
    group.add_argument(
        "--work-dir",
        default=None,
        metavar="DIR",
        help="where chunked runs keep per-frame maps while they run (default: the output folder; the files are "
        "removed as soon as they are read back)",
    )


def _options(args: argparse.Namespace):
    """The library's ``ReconstructOptions`` from the flags (a ValueError names a bad value)."""
    from vggtkit.pipeline import FrameSampling, ReconstructOptions

    return ReconstructOptions(
        device=resolve_device(args.device),
        dtype=args.dtype,
        mode=args.mode,
        resolution=args.resolution,
        reference=args.reference,
        sampling=FrameSampling(fps=args.fps, max_frames=args.max_frames),
        chunk_size=args.chunk_size,
        overlap=args.overlap,
        loop_closure=args.loop_closure,
        max_memory=args.max_memory,
        work_dir=args.work_dir or args.output,
        runtime=args.runtime,
    )


def _save_decoded_frames(rec, out_dir: Path) -> None:
    """Write decoded video frames to ``out_dir/images`` so exports and later re-exports can use them."""
    if rec.source_frames is not None and any(
        f is not None and not p for f, p in zip(rec.source_frames, rec.image_paths, strict=True)
    ):
        rec.save_source_frames(out_dir / "images")


def _refine_options(args: argparse.Namespace):
    """``RefineOptions`` with --ba; without it, a UserError when a refinement flag is given."""
    if args.ba:
        return refine_options_from_args(args)
    if args.camera_model == "SIMPLE_RADIAL":
        raise UserError("--camera-model SIMPLE_RADIAL needs --ba (the model's cameras have no distortion)")
    given = [flag for flag, value in _refine_flags(args) if value]
    if given:
        raise UserError(f"{given[0]} is a refinement option; add --ba")
    return None


def _refine_flags(args: argparse.Namespace) -> list[tuple[str, object]]:
    """Refinement flags that change something when given (their defaults are None or False)."""
    return [
        ("--intrinsics", args.intrinsics),
        ("--focal", args.focal),
        ("--align-to", args.align_to),
        ("--distance", args.distance),
        ("--track-head", args.track_head),
        ("--fix-focal", args.fix_focal),
        ("--refine-principal-point", args.refine_principal_point),
        ("--query-frames", args.query_frames),
    ]


def _export(args: argparse.Namespace, rec, out_dir: Path, refine_options, progress) -> dict:
    """The exports: with refinement, predictions.npz from the model and everything else refined."""
    from vggtkit.export import export_all

    if refine_options is None:
        return export_all(rec, out_dir, args.export, export_options_from_args(args), progress=progress)
    from vggtkit.export import parse_export_names

    results = {}
    if "npz" in parse_export_names(args.export):
        results = export_all(rec, out_dir, ["npz"], export_options_from_args(args), progress=progress)
    return results | refine_and_export(args, refine_options, rec, out_dir, progress)


def run(args: argparse.Namespace) -> int:
    from vggtkit.export import parse_export_names
    from vggtkit.pipeline import reconstruct

    # Check everything that needs no computation first, so mistakes surface before the slow steps.
    parse_export_names(args.export)
    export_options = export_options_from_args(
        args, camera_model="PINHOLE" if args.camera_model == "SIMPLE_RADIAL" else None
    )
    refine_options = _refine_options(args)
    options = _options(args)
    out_dir = check_output_dir(args.output)
    if export_options.sky_model:
        from vggtkit.export.sky import check_sky_model

        check_sky_model(export_options.sky_model)
    start = time.perf_counter()
    try:
        with progress_bars() as progress, PeakMemory(options.device) as memory:
            rec = reconstruct(args.inputs, args.checkpoint, options, progress=progress)
            _save_decoded_frames(rec, out_dir)
            t_export = time.perf_counter()
            results = _export(args, rec, out_dir, refine_options, progress)
            export_time = time.perf_counter() - t_export
    except MemoryError as exc:
        raise UserError(
            "out of memory; try --max-memory (chunks that fit), fewer frames (--max-frames), --dtype bfloat16 or "
            "a smaller --resolution"
        ) from exc
    total = time.perf_counter() - start
    print(_summary(rec, options.device, total, export_time, memory, refined=refine_options is not None))
    print(f"output: {out_dir}")
    print_exports(results, out_dir)
    if args.view:
        from vggtkit.cli.view import view_reconstruction

        return view_reconstruction(rec, out_dir, export_options)
    return 0


def _summary(rec, device, total: float, export_time: float, memory: PeakMemory, refined: bool = False) -> str:
    """One line: frames, sizes, device, time per stage and peak memory."""
    h, w = rec.model_hw
    sizes = {(int(hw[1]), int(hw[0])) for hw in rec.original_hw}
    original = ", ".join(f"{a}x{b}" for a, b in sorted(sizes)[:3]) + (" ..." if len(sizes) > 3 else "")
    t = rec.timings
    return (
        f"reconstructed {rec.num_frames} frames at {w}x{h} (original {original}) on {device} in {total:.1f} s "
        f"(model load {t.get('load_model', 0):.1f} s, images {t.get('load_images', 0):.1f} s, "
        f"inference {t.get('inference', 0):.1f} s{_chunk_times(t)}, "
        f"{'refinement and exports' if refined else 'exports'} {export_time:.1f} s); "
        f"{peak_memory_text(memory)}"
    )


def _chunk_times(timings: dict[str, float]) -> str:
    """', alignment 1.2 s, loop closure 3.4 s' for chunked runs."""
    names = {"alignment": "alignment", "loop_closure": "loop closure"}
    return "".join(f", {text} {timings[key]:.1f} s" for key, text in names.items() if key in timings)
