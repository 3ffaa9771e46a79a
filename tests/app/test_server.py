"""The served app without a browser: bound to localhost, no sharing, files only from the app's folders."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_FILE = Path(__file__).resolve().parents[2] / "pyproject.toml"
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_served_on_localhost_without_share(demo_server):
    url, demo = demo_server
    assert url.startswith("http://127.0.0.1:")
    assert not demo.share
    assert _status(url) == 200


@pytest.mark.parametrize("path", ["/etc/passwd", str(REPO_FILE)])
def test_files_outside_the_app_folders_are_refused(demo_server, path):
    url, _ = demo_server
    assert _status(f"{url}gradio_api/file={path}") == 403


def test_files_of_the_app_are_served(demo_server):
    url, demo = demo_server
    example = demo.vggtkit.examples[0].frames[0]
    assert _status(f"{url}gradio_api/file={example}") == 200


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
