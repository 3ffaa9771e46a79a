"""Refinement never fails the run: what cannot be refined keeps its feed-forward result, with a clear report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _refine_scenes import make_reconstruction

from vggtkit.refine import BundleOptions, RefineOptions, refine


def _with_images(rec, images: list[np.ndarray]):
    return dataclasses.replace(
        rec, source_frames=images, names=list(rec.names), image_paths=list(rec.image_paths)
    )


def test_textureless_frame_keeps_its_camera(perturbed) -> None:
    images = list(perturbed.source_frames)
    images[3] = np.full_like(images[3], 128)
    result = refine(_with_images(perturbed, images))
    frames = {f.name: f for f in result.report.frames}
    assert result.report.status == "partial"
    assert frames["view_3.png"].status == "kept" and frames["view_3.png"].observations == 0
    assert "correspondences" in frames["view_3.png"].reason
    assert result.report.kept_frames == ["view_3.png"]
    assert any("view_3.png" in w for w in result.report.warnings)
    assert not result.refined[3] and result.refined[[0, 1, 2, 4]].all()
    np.testing.assert_array_equal(result.reconstruction.extrinsic[3], perturbed.extrinsic[3])
    np.testing.assert_array_equal(result.reconstruction.depth[3], perturbed.depth[3])
    assert not (result.tracks.frame == 3).any()


def test_nothing_to_match_returns_the_feed_forward_result(perturbed) -> None:
    rng = np.random.default_rng(0)
    flat = [
        np.full_like(im, int(v))
        for im, v in zip(perturbed.source_frames, rng.integers(0, 255, 5), strict=True)
    ]
    result = refine(_with_images(perturbed, flat))
    assert result.report.status == "feed-forward"
    assert "nothing to match" in result.report.warnings[0]
    assert all(f.status == "kept" and f.reason for f in result.report.frames)
    assert result.reconstruction is not None and len(result.tracks) == 0 and not result.refined.any()
    np.testing.assert_array_equal(result.reconstruction.extrinsic, perturbed.extrinsic)


def test_single_frame(scene, truth) -> None:
    poses, K, depth = truth
    result = refine(make_reconstruction({"images": scene["images"][:1]}, poses[:1], K[:1], depth[:1]))
    assert result.report.status == "feed-forward" and "single frame" in result.report.warnings[0]


def test_internal_failure_is_reported_not_raised(perturbed, monkeypatch) -> None:
    import vggtkit.refine.pipeline as pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(pipeline, "adjust", broken)
    result = refine(perturbed)
    assert result.report.status == "feed-forward"
    assert result.report.warnings == ["refinement failed: solver exploded"]
    np.testing.assert_array_equal(result.reconstruction.extrinsic, perturbed.extrinsic)


def test_bad_options_raise_before_any_work(perturbed) -> None:
    with pytest.raises(ValueError, match="camera_model"):
        BundleOptions(camera_model="FISHEYE")
    with pytest.raises(ValueError, match="max_reproj_error"):
        BundleOptions(max_reproj_error=0)
    with pytest.raises(ValueError, match="options must be a RefineOptions"):
        refine(perturbed, options={"bundle": {}})
    sizes = perturbed.original_hw.copy()
    sizes[1] = (200, 224)
    mixed = dataclasses.replace(perturbed, original_hw=sizes, names=list(perturbed.names))
    with pytest.raises(ValueError, match="shared camera needs images of one size"):
        refine(mixed, RefineOptions(bundle=BundleOptions(shared_camera=True)))
