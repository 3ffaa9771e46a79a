"""Inputs for command-line tests: a checkpoint on disk, photos of mixed formats and sizes, an mp4 video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from _golden import golden_model


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """The golden tiny weights saved in the Hugging Face layout: a valid official-format checkpoint folder."""
    return golden_model().save_pretrained(tmp_path_factory.mktemp("ckpt") / "golden-tiny")


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([40 + 150 * xx / w, 40 + 150 * yy / h, 100 + 50 * np.sin(xx / 5.0)], axis=-1)
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """img2.jpg: 80x60 stored, EXIF-rotated to 60x80; img10.png: 70x70 RGBA; img1.png: 16-bit grey 96x54."""
    folder = tmp_path_factory.mktemp("photos")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    Image.fromarray(_texture(60, 80, 0)).save(folder / "img2.jpg", exif=exif.tobytes(), quality=95)
    rgba = np.dstack([_texture(70, 70, 1), np.full((70, 70), 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba, "RGBA").save(folder / "img10.png")
    grey16 = _texture(54, 96, 2)[..., 0].astype(np.uint16) * 257
    Image.fromarray(grey16).save(folder / "img1.png")
    return folder


@pytest.fixture(scope="session")
def video(tmp_path_factory) -> Path:
    """clip.mp4 (mp4v): 20 frames of 64x48 at 10 fps, a bright square moving right."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for k in range(20):
        frame = cv2.cvtColor(_texture(48, 64, 3), cv2.COLOR_RGB2BGR)
        cv2.rectangle(frame, (2 * k, 10), (2 * k + 12, 30), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def planar_model(monkeypatch):
    """Replace the model call with exact predictions of a wall 2 units in front of cameras spaced 0.1 apart along
    x: consistent geometry, so COLMAP tracks form (random weights never agree across views)."""
    import torch

    def run_model(model, images, device, dtype):
        s, _, h, w = images.shape
        f = 0.9 * w
        centres = torch.tensor([[0.1 * i, 0.0, 0.0] for i in range(s)])
        fov = torch.tensor([2 * np.arctan(h / 2 / f), 2 * np.arctan(w / 2 / f)]).float()
        pose_enc = torch.cat(
            [-centres, torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(s, 4), fov.expand(s, 2)], -1
        )
        depth = torch.full((s, h, w, 1), 2.0)
        v, u = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        cam = torch.stack([(u - w / 2) / f * 2.0, (v - h / 2) / f * 2.0, torch.full_like(u, 2.0)], -1)
        points = cam[None] + centres[:, None, None, :]
        conf = 1.0 + torch.rand(s, h, w, generator=torch.Generator().manual_seed(0))
        return {
            "pose_enc": pose_enc[None],
            "depth": depth[None],
            "depth_conf": conf[None],
            "world_points": points[None],
            "world_points_conf": conf[None],
            "images": images[None],
        }

    monkeypatch.setattr("vggtkit.pipeline.run._run_model", run_model)
