"""`vggtkit demo`: the web demo (gradio), served on this machine only unless told otherwise."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from vggtkit.cli.common import UserError, add_device_options

EXAMPLES = """examples:
  vggtkit demo                                   # http://127.0.0.1:7860, the default model
  vggtkit demo --example                         # open with the bundled example scene reconstructed
  vggtkit demo --example path/to/images          # open with your own folder of images reconstructed
  vggtkit demo --checkpoint facebook/VGGT-1B --device cuda --dtype bfloat16
  vggtkit demo --sky-model skyseg.onnx           # enables "Filter Sky"
  vggtkit demo --host 0.0.0.0 --port 8080        # reachable from other machines (no authentication!)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="start the web demo: upload images or a video, reconstruct, explore and download the scene",
        description=(
            "Start the gradio web demo. Upload a video or images, click Reconstruct, explore the point cloud and "
            "cameras in 3-D, tune the view (confidence, frame, branch, filters) without running the model "
            "again, and download GLB, PLY, a COLMAP model (zip) or predictions.npz. Analytics are off, nothing "
            "is shared through gradio's tunnel, and the server listens on 127.0.0.1 unless --host says otherwise."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="bundled model name, checkpoint folder or weights file, or hub id (default: tiny-synthetic when "
        "bundled, else facebook/VGGT-1B)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860, or the next free one)")
    add_device_options(parser)
    parser.add_argument(
        "--example",
        nargs="?",
        const="bundled",
        default=None,
        metavar="FOLDER",
        help="reconstruct an example when a page opens: the bundled scene, or FOLDER of images",
    )
    parser.add_argument("--no-examples", action="store_true", help="hide the bundled examples table")
    parser.add_argument("--sky-model", default=None, help="sky-segmentation ONNX file; enables 'Filter Sky'")
    parser.add_argument(
        "--max-frames", type=int, default=64, help="most frames per reconstruction (default: 64)"
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=200.0, help="most megabytes per upload (default: 200)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="reconstructions running at once; more wait in a queue (default: 1)",
    )
    parser.add_argument(
        "--resolution", type=int, default=518, help="model input width, multiple of 14 (default: 518)"
    )
    parser.add_argument(
        "--fps", type=float, default=1.0, help="initial video sampling rate (default: 1 frame/s)"
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="folder for uploads and results (default: a temporary folder, deleted on exit)",
    )
    parser.set_defaults(func=run)


def _example_folder(value: str | None) -> Path | None:
    if value is None:
        return None
    if value != "bundled":
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise UserError(
                f"--example {value}: not a folder; pass a folder of images or no value (bundled scene)"
            )
        return folder
    from vggtkit.app.controller import bundled_example_dirs

    scenes = bundled_example_dirs()
    if not scenes:
        raise UserError(
            "no bundled example scene in this installation (vggtkit/assets/example); pass a folder of images: "
            "--example path/to/images"
        )
    return scenes[0]


def run(args: argparse.Namespace) -> int:
    import logging

    preload = _example_folder(args.example)
    if args.workdir and Path(args.workdir).expanduser().is_file():
        raise UserError(f"--workdir {args.workdir} is a file; pass a folder")
    # Before gradio is imported: no analytics or version checks, uploads inside the app's own folder.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's start-up self-check requests
    workdir = (
        Path(args.workdir).expanduser() if args.workdir else Path(tempfile.mkdtemp(prefix="vggtkit-demo-"))
    )
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        os.environ["GRADIO_TEMP_DIR"] = str(workdir.resolve() / "gradio")
        try:
            from vggtkit.app import build_demo, launch_demo
        except ModuleNotFoundError as exc:
            raise UserError(str(exc)) from None
        demo = build_demo(
            args.checkpoint,
            device=args.device,
            dtype=args.dtype,
            workdir_root=workdir,
            max_frames=args.max_frames,
            max_upload_mb=args.max_upload_mb,
            concurrency=args.concurrency,
            sky_model=args.sky_model,
            examples=None if args.no_examples else "bundled",
            resolution=args.resolution,
            default_fps=args.fps,
            preload=preload,
        )
        runner = demo.vggtkit.runner
        url = launch_demo(demo, host=args.host, port=args.port, prevent_thread_lock=True)
        print(
            f"vggtkit demo: {url} (model {runner.source} on {runner.device}, files in {workdir}); Ctrl+C stops it"
        )
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"vggtkit demo: listening on {args.host}: anyone who can reach this machine can use the demo"
            )
        demo.block_thread()
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0
