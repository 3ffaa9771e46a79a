"""The demo driven like a person would: headless Debian chromium through Playwright.

Needs /usr/bin/chromium (installed by scripts/setup.sh); skipped only when it is missing. One server and one
browser for the whole file, a fresh browser context (a new session) per test. Screenshots go to a temporary
folder printed in the output (`-s`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from vggtkit.app.controller import PROMPT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium (scripts/setup.sh)"
    ),
    pytest.mark.filterwarnings("ignore::Warning:gradio.queueing"),
]

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # a dev dependency: missing it is a failure, not a skip

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots in {folder}")
    return folder


def _open(browser, url):
    context = browser.new_context(viewport={"width": 1280, "height": 1400}, accept_downloads=True)
    page = context.new_page()
    page.goto(url)
    page.locator("#reconstruct-btn").wait_for(state="visible", timeout=TIMEOUT_MS)
    return context, page


@pytest.fixture
def page(browser, demo_server):
    context, page = _open(browser, demo_server[0])
    yield page
    context.close()


def _log(page) -> str:
    return page.locator("#log textarea").input_value()


def _wait_log(page, pattern: str) -> str:
    from playwright.sync_api import expect

    expect(page.locator("#log textarea")).to_have_value(re.compile(pattern), timeout=TIMEOUT_MS)
    return _log(page)


def _glb_href(page) -> str:
    link = page.locator("#viewer a[href]").first
    link.wait_for(timeout=TIMEOUT_MS)
    return link.get_attribute("href")


def _wait_new_glb(page, old: str) -> str:
    page.wait_for_function(
        "old => { const a = document.querySelector('#viewer a[href]'); return a && a.href !== old; }",
        arg=old,
        timeout=TIMEOUT_MS,
    )
    return _glb_href(page)


def _upload_images(page, paths, count: int) -> None:
    page.locator("#input-images input[type=file]").set_input_files([str(p) for p in paths])
    _wait_log(page, rf"^Upload complete: {count} frame\(s\)")


def test_three_images_reconstruct_explore_download_clear(page, demo_server, media, shots, tmp_path):
    from playwright.sync_api import expect

    runner = demo_server[1].vggtkit.runner
    _upload_images(page, media["three"], 3)
    expect(page.locator("#preview img")).to_have_count(3)
    runs = runner.model_runs

    page.locator("#reconstruct-btn").click()
    message = _wait_log(page, r"^Reconstructed 3 frame\(s\) at 56x42 ")
    assert "peak process RSS" in message and "Showing " in message
    expect(page.locator("#viewer canvas")).to_have_count(1)
    first = _glb_href(page)
    assert first.endswith("/scene.glb")
    assert runner.model_runs == runs + 1
    expect(page.locator("#depth-previews img")).to_have_count(6)
    for button in ("#download-glb", "#download-ply", "#download-npz", "#download-colmap"):
        expect(page.locator(button)).to_be_enabled(timeout=TIMEOUT_MS)
    time.sleep(1.0)  # let Babylon draw the points before the picture
    page.screenshot(path=str(shots / "reconstructed.png"), full_page=True)

    with page.expect_download() as download:
        page.locator("#download-glb").click()
    glb = tmp_path / "scene.glb"
    download.value.save_as(glb)
    assert download.value.suggested_filename == "scene.glb" and glb.read_bytes()[:4] == b"glTF"
    with page.expect_download() as download:
        page.locator("#download-colmap").click()
    assert download.value.suggested_filename == "colmap.zip"

    number = page.locator("#conf-thres input[type=number]")  # the slider's number box; release on blur
    number.fill("80")
    number.blur()
    second = _wait_new_glb(page, first)
    assert "80th percentile" in _wait_log(page, "80th percentile")

    page.locator("#frame-filter input").click()
    page.get_by_role("option", name="1: img1.png").click()
    third = _wait_new_glb(page, second)
    assert "of frame 1 (img1.png)" in _wait_log(page, r"of frame 1 \(img1\.png\)")
    page.locator("#prediction-mode label", has_text="Pointmap Branch").click()
    fourth = _wait_new_glb(page, third)
    assert "point map branch" in _wait_log(page, "point map branch")
    page.locator("#show-cam input").uncheck()
    fifth = _wait_new_glb(page, fourth)
    assert "cameras)" not in _wait_log(page, r"point map branch(?!.*cameras\))")
    assert len({first, second, third, fourth, fifth}) == 5
    assert runner.model_runs == runs + 1  # the view changes never ran the model
    page.screenshot(path=str(shots / "frame1_conf80.png"), full_page=True)

    page.locator("#clear-btn").click()
    _wait_log(page, f"^{re.escape(PROMPT)}$")
    expect(page.locator("#preview img")).to_have_count(0)
    expect(page.locator("#viewer canvas")).to_have_count(0)
    expect(page.locator("#depth-previews img")).to_have_count(0)
    expect(page.locator("#download-glb")).to_be_disabled()
    expect(page.locator("#input-images a[href]")).to_have_count(0)


def test_video_upload_goes_through(page, media):
    from playwright.sync_api import expect

    page.locator("#input-video input[type=file]").set_input_files(str(media["video"]))
    _wait_log(page, r"^Upload complete: 3 frame\(s\)")  # 3 s of video at 1 frame per second
    expect(page.locator("#preview img")).to_have_count(3)
    fps = page.locator("#video-fps input")
    fps.fill("2")
    fps.press("Enter")
    _wait_log(page, r"^Upload complete: 6 frame\(s\)")  # the video again at 2 frames per second
    expect(page.locator("#preview img")).to_have_count(6)
    page.locator("#reconstruct-btn").click()
    _wait_log(page, r"^Reconstructed 6 frame\(s\)")


def test_text_file_gets_a_clear_message(page, media):
    from playwright.sync_api import expect

    page.locator("#input-images input[type=file]").set_input_files(str(media["text"]))
    message = _wait_log(page, r"^Upload problem: ")
    assert "'notes.txt' is not an image" in message
    expect(page.locator("#preview img")).to_have_count(0)
    assert "Traceback" not in page.content()
    page.locator("#reconstruct-btn").click()
    _wait_log(page, r"^Nothing to reconstruct")


def test_two_sessions_reconstruct_concurrently(browser, demo_server, media):
    from playwright.sync_api import expect

    url, demo = demo_server
    (ctx_a, a), (ctx_b, b) = _open(browser, url), _open(browser, url)
    try:
        _upload_images(a, media["three"], 3)
        _upload_images(b, media["two"], 2)
        runs = demo.vggtkit.runner.model_runs
        a.locator("#reconstruct-btn").click()
        b.locator("#reconstruct-btn").click()
        _wait_log(a, r"^Reconstructed 3 frame\(s\)")
        _wait_log(b, r"^Reconstructed 2 frame\(s\)")
        expect(a.locator("#depth-previews img")).to_have_count(6)
        expect(b.locator("#depth-previews img")).to_have_count(4)
        assert _glb_href(a) != _glb_href(b)
        assert demo.vggtkit.runner.model_runs == runs + 2
    finally:
        ctx_a.close()
        ctx_b.close()


def test_example_row_loads_and_reconstructs(page):
    from playwright.sync_api import expect

    page.locator("#examples tbody tr").first.click()
    _wait_log(page, r"^Reconstructed 2 frame\(s\)")
    expect(page.locator("#preview img")).to_have_count(2)
    expect(page.locator("#viewer canvas")).to_have_count(1)


def test_preloaded_example_is_reconstructed_when_the_page_opens(
    browser, demo_server, media, tmp_path, free_port
):
    """What `vggtkit demo --example FOLDER` serves: the folder is loaded and reconstructed on page load."""
    from playwright.sync_api import expect

    from vggtkit.app import build_demo, launch_demo

    runner = demo_server[1].vggtkit.runner
    demo = build_demo(runner.model, device="cpu", workdir_root=tmp_path, resolution=runner.resolution,
                      examples=None, preload=media["two"][0].parent)  # fmt: skip
    url = launch_demo(demo, port=free_port, prevent_thread_lock=True, quiet=True)
    try:
        context, page = _open(browser, url)
        _wait_log(page, r"^Reconstructed 2 frame\(s\)")
        expect(page.locator("#preview img")).to_have_count(2)
        expect(page.locator("#viewer canvas")).to_have_count(1)
        context.close()
    finally:
        demo.close()
