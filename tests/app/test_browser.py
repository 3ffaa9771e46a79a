"""The demo driven like a person, and attacked like an intruder would: headless Debian chromium through Playwright.

Needs /usr/bin/chromium (installed by scripts/setup.sh); skipped only when it is missing. One server and one
browser for the whole file, a fresh browser context (a new browser, with its own cookie) per test. Screenshots go
to a temporary folder printed in the output (`-s`).

The attacks: uploads that carry a script (an HTML page, an SVG, PNG and GIF files that are also HTML) are opened
as pages, framed and loaded as scripts on the app's origin, and must never run; the exact addresses of one
browser's results must be refused to another.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from _browser import CHROMIUM, CHROMIUM_ARGS
from vggtkit.app.controller import PROMPT

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
    source = page.locator("#input-video video").first.get_attribute("src")  # the player's file, as served
    served = page.context.request.get(source)
    assert served.status == 200 and served.headers["content-type"] == "video/mp4"
    assert served.headers["content-disposition"].startswith("attachment")


def _upload_and_capture(page, paths) -> list[str]:
    """Upload through the image box; returns where gradio stored the files (from its upload answer)."""
    with page.expect_response(
        lambda r: "/gradio_api/upload" in r.url and r.request.method == "POST"
    ) as answer:
        page.locator("#input-images input[type=file]").set_input_files([str(p) for p in paths])
    return answer.value.json()


def test_text_file_gets_a_clear_message_and_is_deleted(page, media, tmp_path):
    from playwright.sync_api import expect

    [stored] = _upload_and_capture(page, [media["text"]])
    message = _wait_log(page, r"^Upload problem: ")
    assert "'notes.txt' is not an image" in message
    expect(page.locator("#preview img")).to_have_count(0)
    expect(page.locator("#input-images a[href]")).to_have_count(0)  # not listed, not linked
    assert not Path(stored).exists()
    assert "Traceback" not in page.content()
    page.locator("#reconstruct-btn").click()
    _wait_log(page, r"^Nothing to reconstruct")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    page.locator("#input-images input[type=file]").set_input_files(str(empty))
    _wait_log(page, r"^Upload problem: 'empty\.png' is empty \(0 bytes\)")


def test_a_file_over_the_limit_is_refused_with_a_message(page, demo_server, tmp_path):
    """The browser refuses it before uploading (gradio's check); the log says which file and the limit."""
    limit_mb = demo_server[1].vggtkit.settings.max_upload_mb
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG" + bytes(int((limit_mb + 1) * 2**20)))
    uploads = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST" and "/upload" in r.url else None)
    page.locator("#input-images input[type=file]").set_input_files(str(huge))
    message = _wait_log(page, r"^Upload problem: 'huge\.png' \(\d+\.\d MB\) is over")
    assert f"limit of {limit_mb:.0f} MB per file" in message
    assert not uploads


def _addresses(page) -> list[str]:
    """Every file address the page shows: the 3-D view, uploads, frames, previews and predictions.npz."""
    with page.expect_download() as download:
        page.locator("#download-npz").click()
    links = page.eval_on_selector_all(
        "#viewer a[href], #input-images a[href], #preview img, #depth-previews img",
        "els => els.map(e => e.href || e.src)",
    )
    return [*links, download.value.url]


def test_two_sessions_reconstruct_concurrently_and_never_see_each_other(browser, demo_server, media):
    """Each browser's exact result addresses (GLB, npz, uploads, frames, previews) answer only that browser."""
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
        for owner, intruder, page in ((ctx_b, ctx_a, b), (ctx_a, ctx_b, a)):
            addresses = _addresses(page)
            assert len(addresses) >= 8 and any(a.endswith("/scene.glb") for a in addresses)
            assert all(owner.request.get(address).status == 200 for address in addresses)
            assert [intruder.request.get(address).status for address in addresses] == [404] * len(addresses)
            tab = intruder.new_page()
            assert tab.goto(addresses[0]).status == 404  # typed into the address bar
            tab.close()
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


# ------------------------------------------------------------------------------------------------- attacks
PROBE = "/xss-probe"
_SCRIPT = f"document.title='PWNED';fetch('{PROBE}');alert(1)"
_HTML = f"<!doctype html><html><body><h1>portfolio</h1><script>{_SCRIPT}</script></body></html>"


@pytest.fixture(scope="module")
def attacks(tmp_path_factory) -> dict[str, Path]:
    """Files that run a script if a browser ever treats them as a page or a script; the polyglots are also valid
    images (so the demo accepts them)."""
    import io

    from PIL import Image

    folder = tmp_path_factory.mktemp("attacks")
    files = {
        "html": folder / "portfolio.html",
        "svg": folder / "drawing.svg",
        "disguised.mp4": folder / "disguised.mp4",
    }
    files["html"].write_text(_HTML)
    files["disguised.mp4"].write_text(_HTML)  # an HTML page named like a video
    files["svg"].write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="80" height="60" onload="{_SCRIPT}">'
        f"<rect width='80' height='60' fill='red'/><script>{_SCRIPT}</script></svg>"
    )
    picture = Image.linear_gradient("L").resize((80, 60)).convert("RGB")
    for name, fmt in (("polyglot.png", "PNG"), ("polyglot.gif", "GIF"), ("polyglot-png.html", "PNG")):
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt, **({"comment": _HTML.encode()} if fmt == "GIF" else {}))
        (folder / name).write_bytes(buffer.getvalue() + _HTML.encode())  # HTML after the image's end
        with Image.open(folder / name) as check:
            check.load()  # still a valid image
        files[name] = folder / name
    return files


def _alarms(context, page) -> list[str]:
    """A list that fills with every sign of a script having run: a request to the probe, a dialog."""
    seen: list[str] = []
    context.on("request", lambda r: seen.append(f"request {r.url}") if PROBE in r.url else None)
    page.on("dialog", lambda d: (seen.append(f"dialog on {page.url}"), d.dismiss()))
    return seen


def _open_as_page(context, address: str, seen: list[str]) -> None:
    tab = context.new_page()
    tab.on("dialog", lambda d: (seen.append(f"dialog on {address}"), d.dismiss()))
    try:
        tab.goto(address, wait_until="load", timeout=10_000)
    except Exception as exc:  # an attachment is downloaded, not opened: "Download is starting"
        assert "Download is starting" in str(exc), exc
    tab.wait_for_timeout(300)
    tab.close()


def _inject(page, addresses: list[str]) -> None:
    """As if an attacker could add markup to the app's page: frame, embed and load every address as a script,
    and add an inline event handler (which the page's CSP must block)."""
    page.evaluate(
        """([addresses, probe]) => {
            for (const a of addresses) {
                for (const tag of ["iframe", "object", "embed", "script"]) {
                    const el = document.createElement(tag);
                    if (tag === "object") el.data = a; else el.src = a;
                    document.body.appendChild(el);
                }
            }
            document.body.insertAdjacentHTML("beforeend", `<img src="/none.png" onerror="fetch('${probe}')">`);
        }""",
        [addresses, PROBE],
    )
    page.wait_for_timeout(1500)


def test_the_detector_sees_a_script_that_runs(browser, demo_server):
    """The control for the attack test: the same HTML, served as a page on the app's origin, is caught."""
    context, page = _open(browser, demo_server[0])
    try:
        seen = _alarms(context, page)
        control = demo_server[0] + "control-page"
        context.route(control, lambda route: route.fulfill(body=_HTML, content_type="text/html"))
        _open_as_page(context, control, seen)
        assert any(PROBE in s for s in seen)
    finally:
        context.close()


def test_uploads_never_run_script_on_the_app_origin(browser, demo_server, attacks):
    """HTML and SVG uploads (and an HTML page named .mp4, through the video box) are refused, deleted and never
    linked; PNG and GIF polyglots are accepted, and every address of them is served as an attachment with a safe
    type, nosniff and a sandboxing CSP. Opened as pages, framed, embedded or loaded as scripts on the app's page,
    none runs; nor does an inline event handler injected into the page."""
    from playwright.sync_api import expect

    context, page = _open(browser, demo_server[0])
    try:
        seen = _alarms(context, page)
        refused = []
        for key, name in (("html", "portfolio.html"), ("svg", "drawing.svg")):
            [stored] = _upload_and_capture(page, [attacks[key]])
            _wait_log(page, rf"^Upload problem: '{re.escape(name)}' is not an image")
            expect(page.locator("#input-images a[href]")).to_have_count(0)
            assert not Path(stored).exists()
            refused.append(f"{demo_server[0]}gradio_api/file={stored}")
        with page.expect_response(
            lambda r: "/gradio_api/upload" in r.url and r.request.method == "POST"
        ) as answer:
            page.locator("#input-video input[type=file]").set_input_files(str(attacks["disguised.mp4"]))
        [stored] = answer.value.json()
        _wait_log(page, r"^Upload problem: the video 'disguised\.mp4' cannot be read")
        expect(page.locator("#input-video video")).to_have_count(0)
        assert not Path(stored).exists()
        refused.append(f"{demo_server[0]}gradio_api/file={stored}")
        polyglots = [attacks["polyglot.png"], attacks["polyglot.gif"], attacks["polyglot-png.html"]]
        _upload_and_capture(page, polyglots)
        _wait_log(page, r"^Upload complete: 3 frame\(s\)")
        expect(page.locator("#preview img")).to_have_count(3)
        served = page.eval_on_selector_all(
            "#input-images a[href], #preview img", "els => els.map(e => e.href || e.src)"
        )
        assert len(served) == 6
        for address in served:
            response = context.request.get(address)
            assert response.status == 200, address
            headers = response.headers
            assert headers["content-disposition"].startswith("attachment"), address
            assert headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in headers["content-security-policy"]
            assert headers["content-type"] in ("image/png", "image/gif", "application/octet-stream"), address
        for address in refused:
            assert context.request.get(address).status == 404
        for address in [*served, *refused]:
            _open_as_page(context, address, seen)
        _inject(page, [*served, *refused])
        assert page.title() != "PWNED"
        assert not seen
    finally:
        context.close()
