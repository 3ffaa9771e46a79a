"""`vggtkit demo`: the web demo (gradio), served on this machine only unless told otherwise."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vggtkit.cli.common import UserError, add_device_options

if TYPE_CHECKING:
    from vggtkit.app.settings import DemoSettings

EXAMPLES = """examples:
  vggtkit demo                                   # http://127.0.0.1:7860, the default model
  vggtkit demo --example                         # open with the bundled example scene reconstructed
  vggtkit demo --example path/to/images          # open with your own folder of images reconstructed
  vggtkit demo --checkpoint facebook/VGGT-1B --device cuda --dtype bfloat16
  vggtkit demo --sky-model skyseg.onnx           # enables "Filter Sky"
  vggtkit demo --host 0.0.0.0 --port 8080        # reachable from other machines (no authentication!)
  vggtkit demo --workdir demo-files --expire-hours 2   # keep files on exit; delete idle sessions after 2 h
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="start the web demo: upload images or a video, reconstruct, explore and download the scene",
        description=(
            "Start the gradio web demo. Upload a video or images, click Reconstruct, explore the point cloud and "
            "cameras in 3-D, tune the view (confidence, frame, branch, filters) without running the model "
            "again, and download GLB, PLY, a COLMAP model (zip) or predictions.npz. Analytics are off, nothing "
            "is shared through gradio's tunnel, the server listens on 127.0.0.1 unless --host says otherwise, and "
            "each result file is served only to the browser that produced it (docs/web-demo.md)."
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
        "--resolution",
        type=int,
        default=None,
        help="model input width, multiple of 14 (default: the checkpoint's own, e.g. 112 for tiny-synthetic, "
        "518 for VGGT-1B)",
    )
    parser.add_argument(
        "--fps", type=float, default=1.0, help="initial video sampling rate (default: 1 frame/s)"
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="folder for uploads and results, kept on exit (default: a temporary folder, deleted when the demo "
        "stops on Ctrl+C, SIGTERM or SIGHUP)",
    )
    parser.add_argument(
        "--share-results",
        action="store_true",
        help="serve result files to anyone who has their address (default: only to the browser that made them)",
    )
    parser.add_argument(
        "--expire-hours",
        type=float,
        default=24.0,
        help="delete a browser session's uploads and results this many hours after its last action (default: 24)",
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


def _settings(args: argparse.Namespace, workdir: Path) -> DemoSettings:
    from vggtkit.app.settings import DemoSettings

    try:
        return DemoSettings(
            workdir_root=workdir,
            max_frames=args.max_frames,
            max_upload_mb=args.max_upload_mb,
            concurrency=args.concurrency,
            default_fps=args.fps,
            sky_model=Path(args.sky_model) if args.sky_model else None,
            share_results=args.share_results,
            expire_hours=args.expire_hours,
        )
    except ValueError as exc:
        raise UserError(_flag_words(str(exc))) from None


def _flag_words(message: str) -> str:
    """A settings message in the command line's words (``max_frames`` -> ``--max-frames``)."""
    for name in ("max_frames", "max_upload_mb", "concurrency", "default_fps", "expire_hours", "sky model"):
        flag = "--fps" if name == "default_fps" else "--" + name.replace("_", "-").replace(" ", "-")
        message = message.replace(name, flag)
    return message


def _build(args: argparse.Namespace, workdir: Path, preload: Path | None) -> Any:
    """The demo (imports gradio: a missing app extra is a user error)."""
    os.environ["GRADIO_TEMP_DIR"] = str(workdir.resolve() / "gradio")  # before gradio is imported
    try:
        from vggtkit.app import build_demo
    except ModuleNotFoundError as exc:
        raise UserError(str(exc)) from None
    return build_demo(
        args.checkpoint,
        device=args.device,
        dtype=args.dtype,
        resolution=args.resolution,
        examples=None if args.no_examples else "bundled",
        preload=preload,
        settings=_settings(args, workdir),
    )


def _stop(demo: Any) -> bool:
    """Shut the demo down (when it was built); True when nothing was left running."""
    if demo is None:
        return True
    from vggtkit.app import shutdown_demo

    return shutdown_demo(demo)


def _launch(demo: Any, args: argparse.Namespace) -> str:
    from vggtkit.app import launch_demo

    try:
        return launch_demo(demo, host=args.host, port=args.port, prevent_thread_lock=True)
    except OSError:
        where = f"{args.host}:{args.port}" if args.port else f"{args.host}, ports 7860 to 7959"
        raise UserError(f"cannot listen on {where} (in use or not allowed); choose another --port") from None


def _announce(demo: Any, url: str, args: argparse.Namespace, workdir: Path) -> None:
    runner = demo.vggtkit.runner
    print(
        f"vggtkit demo: {url} (model {runner.source} on {runner.device} at {runner.resolution} px, files in "
        f"{workdir}); Ctrl+C or SIGTERM stops it",
        flush=True,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"vggtkit demo: listening on {args.host}: anyone who can reach this machine can use the demo")
    if args.share_results:
        print("vggtkit demo: --share-results: anyone who has a result's address can download it")


def run(args: argparse.Namespace) -> int:
    from vggtkit.app.server import ShutdownRequested, stop_on_signals, wait_while

    preload = _example_folder(args.example)
    if args.workdir and Path(args.workdir).expanduser().is_file():
        raise UserError(f"--workdir {args.workdir} is a file; pass a folder")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no analytics or version checks
    workdir = Path(args.workdir).expanduser() if args.workdir else None
    temporary = demo = None
    import pycolmap  # noqa: F401  (before the stop handlers: pycolmap's first import replaces SIGTERM's)

    # From here on a stop signal (also one during start-up) ends in the clean-up below.
    with stop_on_signals() as signals:
        try:
            if workdir is None:
                workdir = temporary = Path(tempfile.mkdtemp(prefix="vggtkit-demo-"))
            workdir.mkdir(parents=True, exist_ok=True)
            demo = _build(args, workdir, preload)
            _announce(demo, _launch(demo, args), args, workdir)
            wait_while(lambda: demo.is_running, each=signals.install)  # taken back if a library took them
        except ShutdownRequested as stop:
            print(f"vggtkit demo: {stop}; shutting down", flush=True)
        finally:
            signals.disarm()
            idle = _stop(demo)
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)
    if not idle:
        # A reconstruction inside the model's forward pass cannot be interrupted and would keep the process alive
        # until the pass ends; its folders are gone and it saves nothing, so exit now.
        logging.getLogger(__name__).warning("a reconstruction was still running; it was cancelled")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
