"""VGGT-Omega's image preprocessing reproduces the official loader (balanced and max_size modes, aspect crop,
RGBA over white, grayscale, white padding of mixed sizes), and maps model pixels back to the original photos."""

from __future__ import annotations

import numpy as np
import pytest
from _omega_golden import OMEGA_DIR, load_omega_golden
from PIL import Image

from _golden import assert_golden
from vggtkit.io import load_and_preprocess_omega_images, load_rgb_image
from vggtkit.io.omega_images import omega_layout, omega_original_from_model, preprocess_omega_image


def files() -> list[str]:
    return [str(OMEGA_DIR / "images" / name) for name in load_omega_golden()["pre_files"]]


@pytest.mark.parametrize("mode", ["balanced", "max_size"])
def test_each_file_alone_and_all_together(mode):
    g = load_omega_golden()
    resolution = int(g["pre_resolution"])
    for i, path in enumerate(files()):
        assert_golden(f"pre_{mode}_{i}", load_and_preprocess_omega_images([path], mode, resolution),
                      g[f"pre_{mode}_{i}"])  # fmt: skip
    assert_golden(
        f"pre_{mode}_all", load_and_preprocess_omega_images(files(), mode, resolution), g[f"pre_{mode}_all"]
    )


@pytest.mark.parametrize("mode", ["balanced", "max_size"])
@pytest.mark.parametrize("resolution", [256, 512])
def test_sizes_at_the_released_resolutions(mode, resolution):
    expected = load_omega_golden()[f"pre_shape_{mode}_{resolution}"]
    for path, (h, w) in zip(files(), expected, strict=True):
        img = load_rgb_image(path)
        layout = omega_layout(img.width, img.height, mode, resolution)
        assert (layout.out_h, layout.out_w) == (h, w), path


def test_another_patch_size():
    g = load_omega_golden()
    out = load_and_preprocess_omega_images(files(), "balanced", 112, 14)
    assert_golden("pre_balanced_r112_p14_all", out, g["pre_balanced_r112_p14_all"])


def test_documented_examples():
    assert omega_layout(320, 180, "balanced", 512)[-2:] == (688, 384)
    assert omega_layout(320, 180, "balanced", 256)[-2:] == (336, 192)
    assert omega_layout(320, 180, "max_size", 512)[-2:] == (512, 288)
    assert omega_layout(200, 200, "balanced", 512)[-2:] == (512, 512)
    assert omega_layout(3000, 2000, "balanced", 512)[-2:] == (624, 416)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_path_list": []}, "empty"),
        ({"mode": "crop"}, "mode must be one of balanced, max_size"),
        ({"image_resolution": 0}, "image_resolution must be a positive integer"),
        ({"patch_size": -16}, "patch_size must be a positive integer"),
        ({"image_resolution": 500}, "multiple of patch_size=16"),
        ({"image_path_list": "a.png"}, "list of paths"),
        ({"image_path_list": ["missing.png"]}, "not found"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = {"image_path_list": files()[:1], **kwargs}
    with pytest.raises(ValueError, match=message):
        load_and_preprocess_omega_images(**args)


@pytest.mark.parametrize(
    ("size", "mode"), [((301, 100), "balanced"), ((90, 250), "max_size"), ((640, 480), "balanced")]
)
def test_model_pixels_map_back_to_the_original(size, mode):
    """A model pixel's colour is the original's at the mapped position (a smooth gradient image)."""
    w0, h0 = size
    yy, xx = np.mgrid[0:h0, 0:w0].astype(np.float64)
    rgb = np.stack([xx / w0 * 255, yy / h0 * 255, np.full_like(xx, 128)], axis=-1).round().astype(np.uint8)
    img = Image.fromarray(rgb)
    layout = omega_layout(w0, h0, mode, 64)
    out = preprocess_omega_image(img, mode, 64)
    assert out.shape == (3, layout.out_h, layout.out_w)
    M = omega_original_from_model(w0, h0, layout)
    for v, u in [(1, 1), (layout.out_h // 2, layout.out_w // 3), (layout.out_h - 2, layout.out_w - 2)]:
        x0, y0, _ = M @ np.array([u, v, 1.0])
        assert 0 <= x0 < w0 and 0 <= y0 < h0
        np.testing.assert_allclose(out[0, v, u] * 255, x0 / w0 * 255, atol=2.5)
        np.testing.assert_allclose(out[1, v, u] * 255, y0 / h0 * 255, atol=2.5)
