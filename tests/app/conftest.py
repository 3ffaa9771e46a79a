"""Fixtures of the web-demo tests: small images, a short video, a text file, the golden tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _demo_helpers import RESOLUTION, free_port
from PIL import Image

from _golden import golden_model


@pytest.fixture(scope="session")
def resolution() -> int:
    """Model input width used by the demo tests."""
    return RESOLUTION


def write_images(folder: Path, count: int, size: tuple[int, int] = (80, 60), seed: int = 0) -> list[Path]:
    """``count`` smooth colourful PNGs (w x h = ``size``) named img0.png, img1.png, ..."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    paths = []
    for i in range(count):
        phase = rng.random(3) * 6
        rgb = np.stack([0.5 + 0.4 * np.sin(6 * x + 3 * y + phase[c] + i) for c in range(3)], axis=-1)
        path = folder / f"img{i}.png"
        Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def write_video(path: Path, seconds: float = 3.0, fps: int = 5, size: tuple[int, int] = (64, 48)) -> Path:
    """An mp4v video of a moving gradient (``seconds`` long)."""
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    y, x = np.mgrid[0:h, 0:w]
    for k in range(int(seconds * fps)):
        frame = np.stack([(x * 4 + k * 9) % 256, (y * 5 + k * 3) % 256, np.full_like(x, 128)], axis=-1)
        writer.write(frame.astype(np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, object]:
    """Uploadable files: 3 images, 2 other images, a 3 s video, a text file, a corrupt PNG, an empty video."""
    root = tmp_path_factory.mktemp("media")
    corrupt = root / "broken.png"
    good = write_images(root / "three", 3)
    corrupt.write_bytes(good[0].read_bytes()[:120])
    text = root / "notes.txt"
    text.write_text("this is not an image\n")
    empty_video = root / "empty.mp4"
    empty_video.write_bytes(b"")
    return {
        "three": good,
        "two": write_images(root / "two", 2, size=(70, 70), seed=1),
        "video": write_video(root / "clip.mp4"),
        "text": text,
        "corrupt": corrupt,
        "empty_video": empty_video,
    }


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The golden tiny model (random weights) saved as a checkpoint folder."""
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    golden_model().save_pretrained(folder)
    return folder


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return free_port()


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory, tiny_checkpoint, media):
    """One demo served in-process (like `vggtkit demo`): the tiny checkpoint, 2 concurrent runs, one example.

    Yields ``(url, demo)``; ``demo.vggtkit`` is the controller (``runner.model_runs`` counts forward passes).
    """
    import os

    root = tmp_path_factory.mktemp("demo_workdir")
    saved = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")  # as the CLI does: uploads inside the work folder
    from vggtkit.app import build_demo, launch_demo, shutdown_demo
    from vggtkit.app.settings import DemoSettings

    demo = build_demo(
        str(tiny_checkpoint),
        device="cpu",
        resolution=RESOLUTION,
        examples=[media["two"][0].parent],
        settings=DemoSettings(workdir_root=root, max_frames=8, max_upload_mb=5, concurrency=2),
    )
    url = launch_demo(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield url, demo
    finally:
        shutdown_demo(demo)
        if saved is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = saved
