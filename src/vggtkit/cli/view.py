"""`vggtkit view`: explore a reconstruction in the browser (viser), however many points it has."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from vggtkit.cli.common import UserError

if TYPE_CHECKING:
    import os

    from vggtkit.export import ExportOptions
    from vggtkit.pipeline import Reconstruction
    from vggtkit.viewer import SceneSource, Viewer, ViewerOptions

EXAMPLES = """examples:
  vggtkit view scene/                          # the output folder of vggtkit reconstruct
  vggtkit view scene/predictions.npz --port 8081
  vggtkit view scene/ --conf-threshold 70 --max-points 2000000 --sky-model skyseg.onnx
  vggtkit view scene/ --host 0.0.0.0           # reachable from other machines (no authentication!)
"""

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(subparsers: argparse._SubParsersAction) -> None:
    from vggtkit.viewer.controls import budget_label
    from vggtkit.viewer.settings import DEFAULT_MAX_POINTS, DEFAULT_PORT

    parser = subparsers.add_parser(
        "view",
        help="explore a reconstruction in the browser: points, cameras, filters, PLY export",
        description=(
            "Serve a reconstruction (the output folder of `vggtkit reconstruct`, or its predictions.npz) to the "
            "browser: coloured points and camera frusta with each frame's image, with controls for the "
            "confidence percentile, the frame, the depth / point-map branch, background and sky masks, point size, "
            "a point budget that keeps scenes of millions of points fluid, and a button that saves the selected "
            "points as PLY. Refined cameras (predictions_refined.npz beside predictions.npz) can be shown and "
            "compared. Ctrl+C stops it."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", metavar="OUT", help="a reconstruction output folder or a predictions.npz")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help=f"port (default: {DEFAULT_PORT}, or the next free one)"
    )
    parser.add_argument(
        "--conf-threshold",
        type=float,
        default=50.0,
        metavar="PCT",
        help="initial confidence percentile (default: 50)",
    )
    parser.add_argument(
        "--max-points",
        type=int,
        default=DEFAULT_MAX_POINTS,
        metavar="N",
        help=f"initial point budget; 0 sends every point (default: {budget_label(DEFAULT_MAX_POINTS)})",
    )
    parser.add_argument(
        "--sky-model", default=None, metavar="ONNX", help="sky-segmentation ONNX file; enables 'Mask sky'"
    )
    parser.add_argument(
        "--save-dir",
        default=None,
        metavar="DIR",
        help="folder for 'Save PLY' (default: the reconstruction's folder)",
    )
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace) -> ViewerOptions:
    from pathlib import Path

    from vggtkit.viewer import ViewerOptions, ViewSettings

    if args.max_points is not None and args.max_points < 0:
        raise UserError(f"--max-points {args.max_points}: pass a positive number of points, or 0 for all")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: pass a port in 1..65535 (or 0 for any free port)")
    if not 0 <= args.conf_threshold <= 100:
        raise UserError(f"--conf-threshold {args.conf_threshold}: pass a percentile in 0..100")
    save_dir = Path(args.save_dir).expanduser() if args.save_dir else None
    if save_dir is not None and save_dir.exists() and not save_dir.is_dir():
        raise UserError(f"--save-dir {args.save_dir} is a file; pass a folder")
    initial = ViewSettings(conf_threshold=args.conf_threshold, max_points=args.max_points or None)
    return ViewerOptions(
        host=args.host, port=args.port, initial=initial, sky_model=args.sky_model, save_dir=save_dir
    )


def serve_and_wait(
    scene: SceneSource | Reconstruction | str | os.PathLike[str],
    options: ViewerOptions,
    out: TextIO | None = None,
) -> int:
    """Serve ``scene`` (a ``SceneSource``, a ``Reconstruction``, or an output folder / npz path), print its URL
    and block until Ctrl+C or SIGTERM, then stop the server. Returns 0.

    Raises:
        ValueError: unreadable input, a busy port, viser missing (see :func:`vggtkit.viewer.serve`).
    """
    from vggtkit.viewer import serve

    out = sys.stdout if out is None else out  # the stream of now, not of import time

    logging.getLogger("websockets").setLevel(logging.WARNING)  # viser's server logs every start and stop
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        viewer = serve(scene, options)
        try:
            scene_text = _describe(viewer)
            print(f"vggtkit view: {viewer.url} ({scene_text}); Ctrl+C stops it", file=out, flush=True)
            if options.host not in _LOCAL_HOSTS:
                print(
                    f"vggtkit view: listening on {options.host}: anyone who can reach this machine can see the scene",
                    file=out,
                    flush=True,
                )
            while not stop.wait(0.5):
                pass
        finally:
            viewer.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("vggtkit view: stopped", file=out, flush=True)
    return 0


def view_reconstruction(
    rec: Reconstruction, out_dir: str | os.PathLike[str] | None, export_options: ExportOptions | None = None
) -> int:
    """Serve a reconstruction just made (``vggtkit reconstruct --view``) until Ctrl+C or SIGTERM: its folder is
    where Save PLY writes and where refined cameras are looked for; the controls start at the exports' settings.
    Returns 0."""
    from vggtkit.viewer import SceneSource, ViewerOptions, ViewSettings

    initial = ViewSettings() if export_options is None else ViewSettings.from_export_options(export_options)
    sky_model = None if export_options is None else export_options.sky_model
    options = ViewerOptions(initial=initial, sky_model=sky_model)
    return serve_and_wait(SceneSource.from_reconstruction(rec, folder=out_dir), options)


def _describe(viewer: Viewer) -> str:
    rec = viewer.source.get()
    h, w = rec.model_hw
    sets = " and ".join(viewer.source.names)
    return f"{rec.num_frames} frames at {w}x{h}, {rec.depth_conf.size:,} pixels, {sets} cameras"


def run(args: argparse.Namespace) -> int:
    return serve_and_wait(args.path, _options(args))
