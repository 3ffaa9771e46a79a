"""The viewer driven in headless Debian chromium through Playwright: the page loads, the browser's scene holds the
expected frusta, and a control changed in the page changes the scene on the server and in the page.

Needs /usr/bin/chromium (installed by scripts/setup.sh); skipped only when it is missing. Screenshots go to a
temporary folder printed in the output (`-s`).
"""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from _viewer_scenes import make_reconstruction

from _browser import CHROMIUM, CHROMIUM_ARGS
from vggtkit.viewer import ViewerOptions, serve

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium (scripts/setup.sh)"
    ),
]
TIMEOUT_MS = 30_000
FRAMES = 4


@pytest.fixture(scope="module")
def viewer():
    pytest.importorskip("viser")
    with serve(make_reconstruction(n_frames=FRAMES, h=42, w=56), ViewerOptions(port=0)) as viewer:
        yield viewer


@pytest.fixture(scope="module")
def page(viewer):
    from playwright.sync_api import sync_playwright  # a dev dependency: missing it is a failure, not a skip

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(viewer.url)
        page.get_by_label("Show cameras").wait_for(timeout=TIMEOUT_MS)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewer_screenshots")
    print(f"\nscreenshots in {folder}")
    return folder


def _scene_tree_frusta(page) -> tuple[int, int]:
    """(frusta, visible frusta) listed in the page's scene tree: what the browser's three.js scene holds."""
    page.locator("button:has(.tabler-icon-adjustments)").click()
    page.get_by_text("Scene tree").wait_for(timeout=TIMEOUT_MS)
    for node in ("/cameras", "/cameras/predicted"):
        row = page.locator(f'[data-scene-node="{node}"]')
        if row.locator(".tabler-icon-caret-right").count():  # collapsed
            row.click()
    rows = page.locator('[data-scene-node^="/cameras/predicted/"]')
    rows.first.wait_for(timeout=TIMEOUT_MS)
    counts = rows.count(), rows.locator(".tabler-icon-eye").count()
    page.locator("button:has(.tabler-icon-arrow-back)").click()
    page.get_by_label("Show cameras").wait_for(timeout=TIMEOUT_MS)
    return counts


def _canvas(page) -> np.ndarray:
    from PIL import Image

    png = page.locator("canvas").first.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def test_page_loads_with_the_scene_and_a_control_change_updates_it(page, viewer, shots):
    from playwright.sync_api import expect

    status = page.get_by_text(re.compile(r"points shown"))
    expect(status).to_have_text(f"{4704:,} of {4704:,} points shown, {FRAMES} cameras", timeout=TIMEOUT_MS)
    assert _scene_tree_frusta(page) == (FRAMES, FRAMES)
    page.mouse.move(600, 700)  # no tooltip over the panel
    time.sleep(1.0)  # let software WebGL draw before the picture
    page.screenshot(path=str(shots / "viewer.png"))
    before = _canvas(page)

    page.get_by_label("Frame").click()
    page.get_by_role("option", name="2: view_2.png").click()
    expect(status).to_have_text(f"{1176:,} of {1176:,} points shown, 1 camera", timeout=TIMEOUT_MS)
    assert viewer.wait_idle(30)
    assert viewer.settings.frame == 2
    assert viewer.visible_frusta() == ["/cameras/predicted/0002"] and viewer.shown_points == 1176
    assert _scene_tree_frusta(page) == (FRAMES, 1)  # the other frusta are hidden in the browser too
    page.mouse.move(600, 700)
    time.sleep(1.0)
    page.screenshot(path=str(shots / "viewer_frame2.png"))
    changed = (np.abs(_canvas(page) - before).sum(axis=-1) > 30).mean()
    assert changed > 0.01, changed  # the drawing changed, not only the text

    page.get_by_label("Show cameras").uncheck()
    expect(status).to_have_text(re.compile(r", 0 cameras$"), timeout=TIMEOUT_MS)
    assert viewer.wait_idle(30) and viewer.visible_frusta() == [] and not viewer.settings.show_cameras
