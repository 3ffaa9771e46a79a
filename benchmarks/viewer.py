"""Viewer latency for large scenes: how long a control change takes to reach the browser, per point budget.

Builds a synthetic reconstruction of FRAMES frames at 518x392 (203,056 points each: 10 frames are 2 million
points, 50 frames 10 million), serves it with `vggtkit.viewer.serve`, opens it in headless chromium and, for each
point budget, moves the confidence slider (as a browser does) three times, between the 1st and 2nd percentiles so
that about 99 % of the points pass and every budget is filled. For each move it records

* build: the server selecting the points and cutting them to the budget (`SceneBuilder.build`);
* to browser: from the slider move until the page shows the new scene (the point cloud and the status line are
  sent as one atomic update, so the status line changes when the points have arrived and been decoded);

and prints the minimum over the moves, with the payload (9 bytes a point: float16 positions, uint8 colours).
Headless chromium renders with software WebGL on the CPU, so "to browser" is a pessimistic bound for a desktop
browser with a GPU.

Examples:
    python benchmarks/viewer.py                       # 2 M and 10 M points, budgets 250 k .. 4 M
    python benchmarks/viewer.py --frames 10 --budgets 1000000
"""

from __future__ import annotations

import argparse
import logging
import re
import time

import numpy as np

from vggtkit.pipeline import Reconstruction

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]  # fmt: skip
HEIGHT, WIDTH = 392, 518


def synthetic_reconstruction(frames: int, seed: int = 0) -> Reconstruction:
    """``frames`` cameras along a line looking at a wavy wall 2 units away; random confidence and colours."""
    rng = np.random.default_rng(seed)
    h, w = HEIGHT, WIDTH
    K = np.array([[0.8 * w, 0, w / 2], [0, 0.8 * w, h / 2], [0, 0, 1.0]])
    extrinsic = np.zeros((frames, 3, 4))
    extrinsic[:, :3, :3] = np.eye(3)
    extrinsic[:, 0, 3] = -0.05 * np.arange(frames)  # camera centres at x = 0.05 i
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = (2.0 + 0.3 * np.sin(u / 40) * np.cos(v / 30)).astype(np.float32)
    x, y = (u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth
    points = np.empty((frames, h, w, 3), np.float32)
    for i in range(frames):
        points[i] = np.stack([x + 0.05 * i, y, depth], axis=-1)
    conf = (1.0 + 4.0 * rng.random((frames, h, w), dtype=np.float32)).astype(np.float32)
    images = rng.random((frames, 3, h, w), dtype=np.float32)
    return Reconstruction(
        pose_enc=np.zeros((frames, 9), np.float32),
        extrinsic=extrinsic,
        intrinsic=np.tile(K, (frames, 1, 1)),
        depth=np.broadcast_to(depth, (frames, h, w))[..., None].copy(),
        depth_conf=conf,
        world_points=points,
        world_points_conf=conf,
        world_points_from_depth=points,
        images=images,
        intrinsic_original=np.tile(K, (frames, 1, 1)),
        original_from_model=np.tile(np.eye(3), (frames, 1, 1)),
        original_hw=np.tile([h, w], (frames, 1)),
        names=[f"frame_{i:04d}.png" for i in range(frames)],
        image_paths=[""] * frames,
    )


class WireClient:
    """A websocket client speaking viser's protocol that only counts the bytes it receives (no decoding, no
    drawing): the server's side of an update, plus the transfer over the loopback."""

    def __init__(self, url: str) -> None:
        import threading

        import viser
        from websockets.sync.client import connect

        self._ws = connect(
            url.replace("http://", "ws://"), subprotocols=[f"viser-v{viser.__version__}"], max_size=None
        )
        self._cond = threading.Condition()
        self.received = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for message in self._ws:
                with self._cond:
                    self.received += len(message)
                    self._cond.notify_all()
        except ConnectionClosed:
            pass

    def wait_for(self, total: int, timeout: float = 300.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.received >= total, timeout):
                raise TimeoutError(f"received {self.received} of {total} bytes")

    def close(self) -> None:
        self._ws.close()


def _status_text(viewer) -> str:
    return viewer.controls.status.content.replace("**", "")


def _move_slider(viewer, client: WireClient, page, value: float) -> tuple[float, float, float | None]:
    """Seconds until the server has built the scene, until a client has received it, and until the page shows
    it (None without a page), for one confidence change."""
    before = client.received
    start = time.perf_counter()
    viewer.controls._inputs["conf_threshold"].value = value  # what viser does when a browser moves the slider
    viewer.wait_idle()
    built = time.perf_counter()
    client.wait_for(before + 9 * len(viewer.scene.points))  # float16 xyz + uint8 rgb
    received = time.perf_counter()
    shown = None
    if page is not None:
        page.wait_for_function(
            "text => document.body.innerText.includes(text)",
            arg=_status_text(viewer),
            polling=20,
            timeout=600_000,
        )
        shown = time.perf_counter() - start
    return built - start, received - start, shown


def _cold_build(rec: Reconstruction, budget: int) -> float:
    """Seconds of the first build of a fresh scene (colours and masks not cached yet)."""
    from vggtkit.viewer import SceneBuilder, SceneSource, ViewSettings

    builder = SceneBuilder(SceneSource.from_reconstruction(rec))
    start = time.perf_counter()
    builder.build(ViewSettings(max_points=budget))
    return time.perf_counter() - start


def _measure_scene(frames: int, budgets: list[int], page_factory, moves: int) -> None:
    from vggtkit.viewer import ViewerOptions, ViewSettings, serve

    rec = synthetic_reconstruction(frames)
    start = time.perf_counter()
    viewer = serve(rec, ViewerOptions(port=0, initial=ViewSettings(max_points=budgets[0])))
    ready = time.perf_counter() - start
    client = WireClient(viewer.url)
    page = page_factory(viewer.url) if page_factory is not None else None
    try:
        for budget in budgets:
            viewer.apply(ViewSettings(max_points=budget, conf_threshold=0.5))
            # low percentiles keep ~99 % of the points, so that every budget is filled
            timings = [_move_slider(viewer, client, page, 0.5 + 0.5 * (k + 1)) for k in range(moves)]
            shown = None if page is None else min(t[2] for t in timings)
            row = {
                "points": rec.depth_conf.size,
                "budget": budget,
                "sent": len(viewer.scene.points),
                "ready": ready,
                "cold": _cold_build(rec, budget),
                "build": min(t[0] for t in timings),
                "received": min(t[1] for t in timings),
                "shown": shown,
            }
            print(_row(row), flush=True)
    finally:
        client.close()
        if page is not None:
            page.close()
        viewer.stop()


def _row(r: dict) -> str:
    shown = "" if r["shown"] is None else f" {r['shown']:.2f} |"
    return (
        f"| {r['points'] / 1e6:.1f} M | {r['budget'] / 1e6:g} M | {r['sent']:,} | {r['sent'] * 9 / 1e6:.1f} | "
        f"{r['ready']:.2f} | {r['cold']:.2f} | {r['build']:.2f} | {r['received']:.2f} |{shown}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frames", type=int, nargs="+", default=[10, 50], help="frames per scene (203,056 points each)"
    )
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=[250_000, 500_000, 1_000_000, 2_000_000, 4_000_000]
    )
    parser.add_argument(
        "--moves", type=int, default=3, help="slider moves per budget (the minimum is printed)"
    )
    parser.add_argument(
        "--chromium", default=None, help="also time headless chromium at this path (software WebGL)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    header = "| scene | budget | points sent | payload (MB) | serve() (s) | cold build (s) | build (s) | to client (s) |"
    rule = "|---|---|---|---|---|---|---|---|"
    if args.chromium:
        header, rule = header + " shown in chromium (s) |", rule + "---|"
    print(header)
    print(rule)
    if not args.chromium:
        for frames in args.frames:
            _measure_scene(frames, args.budgets, None, args.moves)
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)

        def open_page(url: str):
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            page.get_by_text(re.compile("points shown")).wait_for(timeout=600_000)
            return page

        for frames in args.frames:
            _measure_scene(frames, args.budgets, open_page, args.moves)
        browser.close()


if __name__ == "__main__":
    main()
