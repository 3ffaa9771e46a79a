"""The served app over HTTP, without a browser: bound to localhost, no sharing, every file refused unless it is
public or the requesting browser's own, safe headers, the upload limit, and a battery of traversal and route
probes.

Two HTTP clients with their own cookie jars stand for two browsers (A and B); each upload goes through gradio's
upload route as a browser's would.
"""

from __future__ import annotations

import http.client
import os
import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from vggtkit.app.access import COOKIE
from vggtkit.app.guard import FILE_CSP, PAGE_CSP
from vggtkit.app.settings import ViewSettings

REPO_FILE = Path(__file__).resolve().parents[2] / "pyproject.toml"
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def _client(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    assert client.get("/").status_code == 200  # the page sets the browser cookie
    assert client.cookies.get(COOKIE)
    return client


def _upload(client: httpx.Client, paths: list[Path]) -> list[str]:
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    response = client.post("/gradio_api/upload", files=files)
    assert response.status_code == 200, response.text
    return response.json()


def _owner(demo, client: httpx.Client) -> str:
    return demo.vggtkit_serving.keys.key(client.cookies.get(COOKIE))


def _file_url(path: str | Path) -> str:
    return f"/gradio_api/file={quote(str(path))}"


@pytest.fixture(scope="module")
def browsers(demo_server, media):
    """Browsers A and B; B uploaded two images and reconstructed them. Returns (a, b, b's upload paths, b's
    reconstruction outcome)."""
    url, demo = demo_server
    a, b = _client(url), _client(url)
    uploaded = _upload(b, media["two"])
    ctl = demo.vggtkit
    state = ctl.upload(None, None, uploaded, 1.0, owner=_owner(demo, b)).state
    outcome = ctl.reconstruct(state, 0, "crop", ViewSettings())
    assert outcome.ok, outcome.message
    yield a, b, uploaded, outcome
    a.close()
    b.close()


def test_served_on_localhost_without_share(demo_server):
    url, demo = demo_server
    assert url.startswith("http://127.0.0.1:")
    assert not demo.share
    assert httpx.get(url).status_code == 200


def test_every_response_carries_the_security_headers(demo_server):
    url, demo = demo_server
    page = httpx.get(url)
    csp = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([A-Za-z0-9_-]+)'", csp).group(1)
    assert csp == PAGE_CSP.format(nonce=nonce) and "unsafe-inline' 'strict" not in csp
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert nonce not in httpx.get(url).headers["content-security-policy"]  # a new nonce per page
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    example = demo.vggtkit.examples[0].frames[0]
    served = httpx.get(url.rstrip("/") + _file_url(example))
    assert served.status_code == 200 and served.content == example.read_bytes()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["content-disposition"].startswith("attachment")
    assert served.headers["content-security-policy"] == FILE_CSP
    assert served.headers["x-content-type-options"] == "nosniff"


def test_results_are_served_only_to_the_browser_that_made_them(demo_server, browsers):
    url, _ = demo_server
    a, b, uploaded, outcome = browsers
    for path in (outcome.view.glb, outcome.view.ply, outcome.npz, uploaded[0]):
        own = b.get(_file_url(path))
        assert own.status_code == 200 and own.content == Path(path).read_bytes()
        assert own.headers["content-disposition"].startswith("attachment")
        assert a.get(_file_url(path)).status_code == 404  # another browser with the exact address
        assert httpx.get(url.rstrip("/") + _file_url(path)).status_code == 404  # no cookie at all
        forged = httpx.get(url.rstrip("/") + _file_url(path), cookies={COOKIE: "x" * 43})
        assert forged.status_code == 404  # a made-up cookie


def test_an_upload_from_another_browser_cannot_be_used(demo_server, browsers):
    _, demo = demo_server
    a, _, uploaded, _ = browsers
    out = demo.vggtkit.upload(None, None, uploaded, 1.0, owner=_owner(demo, a))
    assert not out.ok and "was not uploaded from this browser" in out.message
    assert all(Path(p).is_file() for p in uploaded)  # and A could not delete B's files either


def test_a_refused_upload_is_deleted(demo_server, media):
    url, demo = demo_server
    client = _client(url)
    [text] = _upload(client, [media["text"]])
    assert client.get(_file_url(text)).status_code == 200  # served to its uploader (as an attachment)
    out = demo.vggtkit.upload(None, None, [text], 1.0, owner=_owner(demo, client))
    assert not out.ok and "is not an image" in out.message
    assert not Path(text).exists() and client.get(_file_url(text)).status_code == 404


def test_the_upload_limit_holds_for_a_direct_post(demo_server, tmp_path):
    url, demo = demo_server
    limit = demo.vggtkit.settings.max_upload_bytes
    client = _client(url)
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + os.urandom(limit + 1024))
    response = client.post("/gradio_api/upload", files=[("files", (big.name, big.read_bytes(), "image/png"))])
    assert response.status_code == 413
    small = tmp_path / "small.png"
    small.write_bytes(os.urandom(1024))
    assert len(_upload(client, [small])) == 1


def _raw(url: str, method: str, path: str, cookie: str | None = None) -> tuple[int, bytes]:
    """A request sent exactly as written (no client-side normalisation of '..' or escapes)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def _probes(
    url: str, demo, uploaded: list[str], result: Path, link: Path, dotfile: Path
) -> list[tuple[str, str]]:
    sessions = demo.vggtkit.settings.sessions_dir
    examples = demo.vggtkit.settings.examples_dir
    upload_dir = Path(uploaded[0]).parent.parent
    port = urlsplit(url).port
    f = "/gradio_api/file="
    return [
        ("GET", f + "/etc/passwd"),
        ("GET", f + str(REPO_FILE)),
        ("GET", f + "../../../../../../etc/passwd"),
        ("GET", f + f"{sessions}/../../../../../../etc/passwd"),
        ("GET", f + f"{examples}/../../../../../../etc/passwd"),
        ("GET", f + f"{upload_dir}/../../../../../../etc/passwd"),
        ("GET", f + "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        ("GET", f + "..%2f..%2f..%2f..%2f..%2fetc%2fpasswd"),
        ("GET", f + "%252e%252e%252f%252e%252e%252fetc%252fpasswd"),
        ("GET", f + "/proc/self/environ"),
        ("GET", f + "~/.bashrc"),
        ("GET", f + str(link)),
        ("GET", f + str(dotfile)),
        ("GET", f + str(sessions)),
        ("GET", f + str(demo.vggtkit.settings.root)),
        ("GET", f + str(result)),
        ("GET", f + uploaded[0]),
        ("HEAD", f + str(result)),
        ("GET", "/gradio_api/file/etc/passwd"),
        ("GET", "/file=/etc/passwd"),
        ("GET", "/file/etc/passwd"),
        ("GET", f + f"http://127.0.0.1:{port}/"),
        ("GET", f + "file:///etc/passwd"),
        ("GET", f"/gradio_api/proxy=http://127.0.0.1:{port}/gradio_api/file=/etc/passwd"),
        ("GET", "/static/../../../../../../etc/passwd"),
        ("GET", "/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        ("GET", "/svelte/..%2f..%2f..%2f..%2fetc%2fpasswd"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/monitoring"),
        ("GET", "/gradio_api/mcp/sse"),
        ("GET", "/gradio_api/vibe-code"),
        ("GET", "/gradio_api/upload"),
    ]


def test_traversal_and_route_probes_are_refused(demo_server, browsers):
    """Every probe answers 4xx without a byte of what it aims at; the owner (A here) gets nothing either for
    B's files, and its own hidden temporary files are not served."""
    url, demo = demo_server
    a, _, uploaded, outcome = browsers
    dotfile = demo.vggtkit.store.create_session(_owner(demo, a)) / ".scene.tmp.glb"
    dotfile.write_bytes(b"glTF partial")  # A's own file, but a hidden temporary
    link = demo.vggtkit.settings.examples_dir / "two" / "passwd.png"  # in a public folder, to a file outside
    link.symlink_to("/etc/passwd")
    probes = _probes(url, demo, uploaded, outcome.view.glb, link, dotfile)
    assert len(probes) == 33
    secrets = (b"root:", b"[project]", b"glTF", b"PATH=", b'"openapi"')
    answers = {path: _raw(url, method, path, cookie=a.cookies.get(COOKIE)) for method, path in probes}
    leaks = {
        p: s for p, (s, body) in answers.items() if not 400 <= s < 500 or any(x in body for x in secrets)
    }
    link.unlink()
    assert not leaks


def test_every_interactive_component_has_an_elem_id(demo_server):
    import gradio as gr

    _, demo = demo_server
    kinds = (
        gr.Button,
        gr.File,
        gr.Video,
        gr.Number,
        gr.Slider,
        gr.Dropdown,
        gr.Radio,
        gr.Checkbox,
        gr.DownloadButton,
        gr.Model3D,
        gr.Gallery,
        gr.Textbox,
        gr.Dataset,
    )
    missing = [type(b).__name__ for b in demo.blocks.values() if isinstance(b, kinds) and not b.elem_id]
    assert not missing
