"""Image loading and preprocessing: golden parity with upstream VGGT, options and input errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _golden import GOLDEN_DIR, assert_golden, load_golden
from vggtkit.io import load_and_preprocess_images, load_rgb_image
from vggtkit.io.images import original_from_model, preprocess_layout

IMAGES_DIR = GOLDEN_DIR / "images"


def _golden_paths() -> list[Path]:
    return [IMAGES_DIR / str(name) for name in load_golden()["pre_files"]]


# ---------------------------------------------------------------------------------------------------------
# Golden parity


@pytest.mark.parametrize("index", range(4))
def test_golden_crop_single(index: int) -> None:
    path = _golden_paths()[index]
    ours = load_and_preprocess_images([str(path)])
    assert ours.dtype == torch.float32
    assert_golden(f"pre_crop_{index} ({path.name})", ours, load_golden()[f"pre_crop_{index}"])


def test_golden_crop_all_pads_mixed_shapes_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vggtkit.io.images"):
        ours = load_and_preprocess_images(_golden_paths(), mode="crop")
    assert_golden("pre_crop_all", ours, load_golden()["pre_crop_all"])
    assert any("different shapes" in rec.getMessage() for rec in caplog.records)


def test_golden_pad_all() -> None:
    ours = load_and_preprocess_images(_golden_paths(), mode="pad")
    assert_golden("pre_pad_all", ours, load_golden()["pre_pad_all"])


# ---------------------------------------------------------------------------------------------------------
# Behaviour and options


def _save(path: Path, array: np.ndarray, **kwargs: object) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


def test_shapes_modes_and_target_size(tmp_path: Path) -> None:
    wide = _save(tmp_path / "wide.png", np.zeros((300, 400, 3), np.uint8))  # 4:3 landscape
    tall = _save(tmp_path / "tall.png", np.zeros((400, 300, 3), np.uint8))
    assert load_and_preprocess_images([wide]).shape == (1, 3, 392, 518)
    assert load_and_preprocess_images([tall]).shape == (1, 3, 518, 518)  # 690 rows centre-cropped
    assert load_and_preprocess_images([wide, tall], "pad").shape == (2, 3, 518, 518)
    assert load_and_preprocess_images([wide], target_size=224).shape == (1, 3, 168, 224)
    padded = load_and_preprocess_images([tall], "pad", target_size=224)
    assert padded.shape == (1, 3, 224, 224)
    # 168 columns of content centred in 224: 28 white columns on each side.
    assert (padded[..., :28] == 1).all() and (padded[..., -28:] == 1).all()
    assert (padded[..., 28:-28] == 0).all()


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[:, 14:] = (0, 0, 0, 255)
    out = load_and_preprocess_images([_save(tmp_path / "a.png", rgba)], target_size=28)[0]
    assert (out[:, :, :12] == 1).all() and (out[:, :, 16:] == 0).all()


def test_sixteen_bit_grayscale_is_scaled(tmp_path: Path) -> None:
    level = np.full((28, 28), 128 * 257, np.uint16)
    img16 = load_rgb_image(_save(tmp_path / "g16.png", level))
    assert img16.mode == "RGB" and np.asarray(img16).max() == np.asarray(img16).min() == 128
    img32 = load_rgb_image(_save(tmp_path / "g32.tif", level.astype(np.int32)))
    assert np.asarray(img32).min() == 128
    out = load_and_preprocess_images([tmp_path / "g16.png"], target_size=28)
    torch.testing.assert_close(out, torch.full((1, 3, 28, 28), 128 / 255))


def test_exif_orientation_is_opt_in(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rotated.png"
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(path, exif=exif)
    assert load_rgb_image(path).size == (200, 100)
    assert load_rgb_image(path, exif_transpose=True).size == (100, 200)
    assert load_and_preprocess_images([path], exif_transpose=True).shape == (1, 3, 518, 518)


# ---------------------------------------------------------------------------------------------------------
# Errors


def test_empty_list_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        load_and_preprocess_images([])


def test_single_path_instead_of_list_raises() -> None:
    with pytest.raises(ValueError, match="wrap it in a list"):
        load_and_preprocess_images(str(_golden_paths()[0]))


def test_bad_mode_raises() -> None:
    with pytest.raises(ValueError, match="'crop' or 'pad'.*'resize'"):
        load_and_preprocess_images(_golden_paths()[:1], mode="resize")


@pytest.mark.parametrize("size", [500, 0, -14, True, 518.0])
def test_bad_target_size_raises(size: object) -> None:
    with pytest.raises(ValueError, match="multiple of 14"):
        load_and_preprocess_images(_golden_paths()[:1], target_size=size)


def test_missing_file_raises_with_its_name(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ValueError, match="not found.*nope.png"):
        load_and_preprocess_images([_golden_paths()[0], missing])


def test_non_image_file_raises_with_its_name(tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image\n")
    with pytest.raises(ValueError, match="cannot read .*notes.png"):
        load_and_preprocess_images([fake])


def test_original_from_model_maps_pixel_edges() -> None:
    """A 90x180 portrait in crop mode at 56 px: resized to 56x112, rows 28..83 kept. The model image's edges
    (pixel centres at integers, so edges at -0.5 and 55.5) land on the original's columns and kept rows."""
    layout = preprocess_layout(90, 180, "crop", 56)
    assert (layout.resized_w, layout.resized_h, layout.top) == (56, 112, -28)
    corners = np.array([[-0.5, -0.5, 1.0], [55.5, 55.5, 1.0]])
    a = original_from_model(90, 180, layout)
    np.testing.assert_allclose((corners @ a.T)[:, :2], [[-0.5, 44.5], [89.5, 134.5]])
    # Padding added above the image in a batch moves the image down: the same original row is 7 rows lower.
    padded = original_from_model(90, 180, layout, pad=(7, 0))
    np.testing.assert_allclose(padded @ [10.0, 17.0, 1.0], a @ [10.0, 10.0, 1.0])
