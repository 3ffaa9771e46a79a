"""`vggtkit export-onnx`: export a checkpoint to an ONNX file that onnxruntime runs (any frame count, one image
size per file)."""

from __future__ import annotations

import argparse
import time

from vggtkit.cli.common import UserError

EXAMPLES = """\
examples:
  vggtkit export-onnx --checkpoint tiny-synthetic -o tiny.onnx                  # 112x112 frames, float32
  vggtkit export-onnx --checkpoint facebook/VGGT-1B -o vggt.onnx --size 518x392   # weights in vggt.onnx.data
  vggtkit export-onnx --checkpoint ./VGGT-1B -o vggt-fp16.onnx --dtype float16 --tracks
  vggtkit reconstruct photos/ -o scene --runtime onnx --checkpoint vggt.onnx

The graph takes any number of frames, but its image size is fixed when it is exported (--size WIDTHxHEIGHT,
default: the checkpoint's img_size square): the model derives its position embeddings from the image size in
ways the exporter cannot keep symbolic. Export one file per size you run: `reconstruct` at 518 px gives 518x392
frames for 4:3 landscape photos in --mode crop (the default) and 518x518 frames in --mode pad.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from vggtkit.onnx import ONNX_DTYPES
    from vggtkit.weights import DEFAULT_CHECKPOINT

    parser = subparsers.add_parser(
        "export-onnx",
        help="export a checkpoint to ONNX for onnxruntime",
        description="Export a model to an ONNX file: input `images` (S, 3, H, W) in [0, 1] with any frame count "
        "S, outputs named as the PyTorch prediction keys (pose_enc, depth, depth_conf, world_points, "
        "world_points_conf; with --tracks also the input query_points (N, 2) and the outputs track, vis, conf). "
        "The image size H x W is fixed per file (--size).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        metavar="SRC",
        help=f"weights: a folder, a weights file, a Hugging Face repo id or a bundled model name "
        f"(default: {DEFAULT_CHECKPOINT})",
    )
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the .onnx file to write")
    parser.add_argument(
        "--size",
        default=None,
        metavar="WxH",
        help="frame size WIDTHxHEIGHT the graph takes, multiples of 14, fixed per file (default: the "
        "checkpoint's img_size square, e.g. 518x518)",
    )
    parser.add_argument(
        "--dtype",
        choices=ONNX_DTYPES,
        default=ONNX_DTYPES[0],
        help="float16 stores the aggregator's weights and runs its products in float16 (about half the file, "
        "for GPU execution providers; the heads stay float32) (default: float32)",
    )
    parser.add_argument(
        "--tracks",
        action="store_true",
        help="include the track head (input query_points, outputs track, vis, conf)",
    )
    parser.add_argument(
        "--external-data",
        action="store_true",
        help="always write the weights to FILE.data beside the graph (default: only above 1.5 GiB, as one "
        "ONNX file cannot exceed 2 GiB)",
    )
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace):
    """The library's ``OnnxExportOptions`` from the flags."""
    from vggtkit.bench.model import parse_size
    from vggtkit.onnx import OnnxExportOptions

    image_hw = None if args.size is None else parse_size(args.size)
    return OnnxExportOptions(
        image_hw=image_hw, dtype=args.dtype, tracks=args.tracks, external_data=args.external_data or None
    )


def run(args: argparse.Namespace) -> int:
    from vggtkit.models import from_pretrained
    from vggtkit.onnx.export import export_info, export_onnx, require_exporter
    from vggtkit.utils.memory import format_bytes

    options = _options(args)
    try:
        require_exporter()
    except ImportError as exc:
        raise UserError(str(exc)) from exc
    model = from_pretrained(args.checkpoint)
    if args.tracks and not getattr(
        model.config, "enable_track", True
    ):  # VGGT-Omega: export_info says why not
        raise UserError(f"{args.checkpoint} has no track head; export it without --tracks")
    info = export_info(model, options)
    height, width = info.image_hw
    print(f"exporting {args.checkpoint} for {width}x{height} frames ({options.dtype}); this takes minutes")
    start = time.perf_counter()
    path = export_onnx(model, args.output, options)
    data = path.with_name(path.name + ".data")
    size = path.stat().st_size + (data.stat().st_size if data.exists() else 0)
    where = f"{path}" + (f" + {data.name}" if data.exists() else "")
    print(
        f"wrote {where} ({format_bytes(size)}) in {time.perf_counter() - start:.0f} s: images (S, 3, {height}, "
        f"{width}) with any S -> {', '.join(info.outputs)}"
    )
    return 0
