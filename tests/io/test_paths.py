"""Which files are images or videos, and natural name order."""

from __future__ import annotations

from vggtkit.io.paths import (
    BROWSER_IMAGE_SUFFIXES,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    is_image_path,
    is_video_path,
    natural_key,
)


def test_suffix_lists() -> None:
    assert set(BROWSER_IMAGE_SUFFIXES) < set(IMAGE_SUFFIXES)
    assert not set(IMAGE_SUFFIXES) & set(VIDEO_SUFFIXES)
    assert all(s.startswith(".") and s == s.lower() for s in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES))


def test_is_image_or_video_by_suffix_in_any_case() -> None:
    assert is_image_path("a/B.JPG") and is_image_path("scan.tiff") and not is_image_path("clip.mp4")
    assert is_video_path("clip.MOV") and not is_video_path("notes.txt") and not is_video_path("a.png")


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["img10.png", "Img2.png", "img1.png", "img2b.png"]
    assert sorted(names, key=natural_key) == ["img1.png", "Img2.png", "img2b.png", "img10.png"]
