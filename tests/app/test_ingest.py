"""Uploads: images and videos become frames; every bad upload gets one clear sentence and leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from vggtkit.app.ingest import UploadError, UploadLimits, ingest_uploads, list_frames

LIMITS = UploadLimits(max_frames=8, max_bytes=10 * 2**20)


def _no_leftovers(parent: Path) -> None:
    assert not any(parent.iterdir()), f"left behind: {list(parent.iterdir())}"


def test_images_are_copied_in_natural_order(tmp_path, media):
    names = ingest_uploads(
        tmp_path / "run" / "images", [str(p) for p in reversed(media["three"])], None, 1.0, LIMITS
    )
    assert names == ["img0.png", "img1.png", "img2.png"]
    assert list_frames(tmp_path / "run" / "images") == names
    assert (tmp_path / "run" / "images" / "img1.png").read_bytes() == media["three"][1].read_bytes()


def test_duplicate_names_are_made_unique(tmp_path, media):
    other = tmp_path / "other"
    other.mkdir()
    twin = other / "img0.png"
    twin.write_bytes(media["two"][0].read_bytes())
    names = ingest_uploads(tmp_path / "run" / "images", [media["three"][0], twin], None, 1.0, LIMITS)
    assert sorted(names) == ["img0.png", "img0_1.png"]


def test_video_is_sampled_at_the_chosen_rate(tmp_path, media):
    names = ingest_uploads(tmp_path / "a", None, media["video"], 1.0, LIMITS)
    assert names == ["clip_000000.png", "clip_000005.png", "clip_000010.png"]  # 3 s at 5 fps -> t = 0, 1, 2 s
    names = ingest_uploads(tmp_path / "b", None, media["video"], 2.0, LIMITS)
    assert len(names) == 6
    with Image.open(tmp_path / "a" / names[0]) as img:
        assert img.size == (64, 48)


def test_video_among_image_uploads_is_sampled_too(tmp_path, media):
    names = ingest_uploads(tmp_path / "run", [media["three"][0], media["video"]], None, 1.0, LIMITS)
    assert len(names) == 4


def test_nothing_uploaded_gives_no_frames(tmp_path):
    assert ingest_uploads(tmp_path / "run", [], None, 1.0, LIMITS) == []
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("text", "'notes.txt' is not an image"),
        ("corrupt", "'broken.png' could not be decoded"),
    ],
)
def test_bad_images_get_a_clear_message(tmp_path, media, key, expected):
    with pytest.raises(UploadError, match=expected):
        ingest_uploads(tmp_path / "run" / "images", [media["three"][0], media[key]], None, 1.0, LIMITS)
    _no_leftovers(tmp_path)


def test_tiny_image_is_refused(tmp_path):
    small = tmp_path / "small.png"
    Image.new("RGB", (10, 40)).save(small)
    with pytest.raises(UploadError, match="smaller than 14 pixels"):
        ingest_uploads(tmp_path / "run", [small], None, 1.0, LIMITS)


@pytest.mark.parametrize("name", ["empty.png", "empty.jpg", "empty.mp4"])
def test_empty_file_is_called_empty(tmp_path, media, name):
    empty = tmp_path / name
    empty.write_bytes(b"")
    video, images = (empty, None) if name.endswith(".mp4") else (None, [media["three"][0], empty])
    with pytest.raises(UploadError, match=rf"'{name}' is empty \(0 bytes\)"):
        ingest_uploads(tmp_path / "out" / "images", images, video, 1.0, LIMITS)
    assert not (tmp_path / "out").exists()


def test_video_without_frames_is_refused(tmp_path):
    garbage = tmp_path / "noise.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(UploadError, match="the video 'noise.mp4' cannot be read .it has no frames"):
        ingest_uploads(tmp_path / "out" / "images", None, garbage, 1.0, LIMITS)
    assert not (tmp_path / "out").exists()


def test_too_many_frames_names_the_limit_and_the_fixes(tmp_path, media):
    with pytest.raises(UploadError, match=r"3 frames \(3 image\(s\)\) exceed this demo's limit of 2 frames"):
        ingest_uploads(tmp_path / "run", media["three"], None, 1.0, UploadLimits(2, 2**30))
    with pytest.raises(UploadError, match=r"lower the video frame rate to .* fps or less"):
        ingest_uploads(tmp_path / "run", None, media["video"], 5.0, UploadLimits(4, 2**30))
    assert not (tmp_path / "run").exists()


def test_upload_size_is_bounded(tmp_path, media):
    with pytest.raises(UploadError, match="over this demo's limit of 0 MB; upload fewer or smaller files$"):
        ingest_uploads(tmp_path / "run", media["three"], None, 1.0, UploadLimits(8, 100))


def test_an_existing_folder_is_replaced_only_by_a_complete_upload(tmp_path, media):
    target = tmp_path / "run" / "images"
    ingest_uploads(target, media["two"], None, 1.0, LIMITS)
    with pytest.raises(UploadError):
        ingest_uploads(target, [media["three"][0], media["text"]], None, 1.0, LIMITS)
    assert sorted(p.name for p in target.iterdir()) == ["img0.png", "img1.png"]  # the old frames, untouched
    assert ingest_uploads(target, media["three"], None, 1.0, LIMITS) == ["img0.png", "img1.png", "img2.png"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["images"]  # no temporary left


def test_bad_frame_rate_is_refused(tmp_path, media):
    with pytest.raises(UploadError, match="frame rate must be a number above 0"):
        ingest_uploads(tmp_path / "run", None, media["video"], 0.0, LIMITS)
