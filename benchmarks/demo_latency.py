"""Web demo latency: time from uploading N images to the first 3-D view, measured in headless chromium.

Starts the demo in-process, then for each repeat opens a fresh browser session, uploads the images, clicks
Reconstruct and waits until the 3-D viewer has the GLB, then until its canvas shows drawn points. Prints the
upload, reconstruct and total times. Headless chromium renders with software WebGL (no GPU), so "drawn" is a
pessimistic bound for a desktop browser.

Examples:
    python benchmarks/demo_latency.py --checkpoint path/to/tiny_ckpt --images 3
    python benchmarks/demo_latency.py --checkpoint facebook/VGGT-1B --device cuda --dtype bfloat16 --images 8
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vggtkit.utils.dtypes import DTYPE_CHOICES

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]  # fmt: skip


def _images(folder: Path, count: int, width: int, height: int) -> list[str]:
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    paths = []
    for i in range(count):
        rgb = np.stack([0.5 + 0.4 * np.sin(7 * x + 5 * y + 2 * c + i) for c in range(3)], axis=-1)
        path = folder / f"frame{i}.jpg"
        Image.fromarray((rgb * 255).astype(np.uint8)).save(path, quality=92)
        paths.append(str(path))
    return paths


def _drawn_pixels(page) -> int:
    """Pixels of the viewer's canvas that differ from its background (below the label and buttons that gradio
    overlays on its top 40 pixels)."""
    import io

    from PIL import Image

    png = page.locator("#viewer canvas").screenshot()
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int32)[40:-5, 5:-5]  # no border
    background = np.median(rgb.reshape(-1, 3), axis=0)
    return int((np.abs(rgb - background).sum(axis=-1) > 30).sum())


def _wait_drawn(page, timeout: float, min_pixels: int = 200) -> float | None:
    """perf_counter() when the canvas first shows geometry (None on timeout); software WebGL in headless
    chromium draws large point clouds seconds after the GLB arrives."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if _drawn_pixels(page) >= min_pixels:
            return time.perf_counter()
        time.sleep(0.25)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default=None, help="model for the demo (default: the demo's default)")
    parser.add_argument("--images", type=int, default=3, help="images per upload (default: 3)")
    parser.add_argument("--size", default="640x480", help="image size WxH (default: 640x480)")
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="model input width (default: the demo's, the model's img_size)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=DTYPE_CHOICES[0], choices=DTYPE_CHOICES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--screenshot", default=None, help="save a picture of the last 3-D view here (PNG)")
    parser.add_argument("--render-timeout", type=float, default=60.0, help="seconds to wait for drawn points")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vggtkit-demo-bench-"))
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")
    from playwright.sync_api import expect, sync_playwright

    from vggtkit.app import build_demo, launch_demo

    width, height = (int(v) for v in args.size.lower().split("x"))
    (work / "inputs").mkdir()
    paths = _images(work / "inputs", args.images, width, height)
    sizing = {} if args.resolution is None else {"resolution": args.resolution}
    demo = build_demo(args.checkpoint, device=args.device, dtype=args.dtype, workdir_root=work / "app",
                      examples=None, **sizing)  # fmt: skip
    url = launch_demo(demo, prevent_thread_lock=True, quiet=True)
    rows = []
    import re

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            for k in range(args.repeats):
                context = browser.new_context(viewport={"width": 1280, "height": 1400})
                page = context.new_page()
                page.goto(url)
                page.locator("#reconstruct-btn").wait_for(state="visible", timeout=120_000)
                log = page.locator("#log textarea")
                t0 = time.perf_counter()
                page.locator("#input-images input[type=file]").set_input_files(paths)
                expect(log).to_have_value(re.compile("^Upload complete"), timeout=120_000)
                t1 = time.perf_counter()
                page.locator("#reconstruct-btn").click()
                expect(log).to_have_value(re.compile("^Reconstructed"), timeout=600_000)
                page.locator("#viewer canvas").wait_for(timeout=120_000)
                page.locator("#viewer a[href]").first.wait_for(timeout=120_000)
                t2 = time.perf_counter()
                t3 = _wait_drawn(page, timeout=args.render_timeout)
                rows.append((t1 - t0, t2 - t1, t2 - t0, t3 - t0 if t3 else float("nan")))
                drawn = f"{t3 - t0:.2f} s" if t3 else f"not within {args.render_timeout:g} s"
                print(f"run {k}: upload {t1 - t0:.2f} s, reconstruct until the viewer has the GLB {t2 - t1:.2f} s, "
                      f"total {t2 - t0:.2f} s; points drawn on the canvas at {drawn}")  # fmt: skip
                print("  " + log.input_value().splitlines()[0])
                if args.screenshot and k == args.repeats - 1:  # the viewer only: a full-page capture resizes
                    page.locator("#viewer").screenshot(path=args.screenshot)  # the canvas, which then redraws
                context.close()
            browser.close()
    finally:
        demo.close()
        shutil.rmtree(work, ignore_errors=True)
    totals, drawn = [r[2] for r in rows], [r[3] for r in rows]
    at = f"{args.resolution} px" if args.resolution else "the demo's default resolution"
    print(f"{args.images} images {args.size} at {at}, model {demo.vggtkit.runner.source}, "
          f"{len(rows)} runs: upload to GLB in the viewer median {statistics.median(totals):.2f} s (min "
          f"{min(totals):.2f}, max {max(totals):.2f}); upload to points drawn median "
          f"{statistics.median(drawn):.2f} s (min {min(drawn):.2f}, max {max(drawn):.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
