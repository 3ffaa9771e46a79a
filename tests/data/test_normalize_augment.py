"""Ground-truth normalisation and the geometric/colour augmentations."""

from __future__ import annotations

import pytest
import torch

from vggtkit.data.augment import ColorJitter, crop_around_principal_point, random_zoom, resize_with_intrinsics
from vggtkit.data.batches import BatchOptions, BatchStream, add_point_maps
from vggtkit.data.normalize import normalize_batch
from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.geometry import project_points
from vggtkit.metrics.pose import relative_pose_errors

CFG = SyntheticSceneConfig(num_frames=3, image_size=(28, 42), supersample=1, num_tracks=16)


@pytest.fixture(scope="module")
def sample():
    return render_scene(CFG, seed=11)


def _batched(sample):
    keys = ("extrinsics", "world_points", "point_masks", "depths", "cam_points")
    return {k: sample[k][None] for k in keys}


def test_normalisation_makes_frame0_identity_and_mean_distance_one(sample):
    out, scale = normalize_batch(_batched(sample))
    torch.testing.assert_close(out["extrinsics"][0, 0], torch.eye(4)[:3], atol=1e-5, rtol=0)
    dist = out["world_points"][0].norm(dim=-1)[sample["point_masks"]].mean()
    assert abs(float(dist) - 1.0) < 2e-3  # the +1e-3 in the denominator
    # scale-free quantities survive: relative rotations and translation directions
    rot, trans = relative_pose_errors(out["extrinsics"][0], sample["extrinsics"])
    assert rot.max() < 0.2 and trans.max() < 0.2  # degrees; float32 round-off
    torch.testing.assert_close(out["depths"][0] * scale[0], sample["depths"], rtol=1e-4, atol=1e-4)
    # the world points of frame 0 now equal its camera points
    torch.testing.assert_close(out["world_points"][0, 0], out["cam_points"][0, 0], atol=1e-4, rtol=1e-4)


def test_normalisation_rejects_missing_keys_and_fixes_non_finite(sample):
    with pytest.raises(ValueError, match="point_masks"):
        normalize_batch(
            {"extrinsics": sample["extrinsics"][None], "world_points": sample["world_points"][None]}
        )
    batch = _batched(sample)
    batch["world_points"] = batch["world_points"].clone()
    batch["world_points"][0, 1, 0, 0] = float("nan")
    out, _ = normalize_batch(batch)
    assert torch.isfinite(out["world_points"]).all()


def test_crop_and_resize_keep_projections_consistent(sample):
    images, depths, K = sample["images"], sample["depths"], sample["intrinsics"]
    point = sample["world_points"][0, 10, 20]
    uv0, _ = project_points(point[None], sample["extrinsics"][0], K[0])
    crop_img, crop_depth, crop_k = crop_around_principal_point(images, depths, K, (20, 30))
    uv1, _ = project_points(point[None], sample["extrinsics"][0], crop_k[0])
    # the crop shifts pixels by its offset: the same pixel content sits at the shifted position
    shift = K[0, :2, 2] - crop_k[0, :2, 2]
    torch.testing.assert_close(uv1, uv0 - shift)
    assert crop_depth[0, 10 - int(shift[1]), 20 - int(shift[0])] == depths[0, 10, 20]
    big_img, big_depth, big_k = resize_with_intrinsics(images, depths, K, (56, 84))
    assert big_img.shape[-2:] == (56, 84) and big_depth.shape[-2:] == (56, 84)
    # pixel-centre-aware scaling: u' + 0.5 = 2 (u + 0.5)
    uv2, _ = project_points(point[None], sample["extrinsics"][0], big_k[0])
    torch.testing.assert_close(uv2 + 0.5, 2 * (uv0 + 0.5))


def test_zoom_and_jitter_are_deterministic_and_valid(sample):
    gen = torch.Generator().manual_seed(0)
    a = random_zoom(sample["images"], sample["depths"], sample["intrinsics"], gen)
    gen = torch.Generator().manual_seed(0)
    b = random_zoom(sample["images"], sample["depths"], sample["intrinsics"], gen)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert a[0].shape == sample["images"].shape
    jitter = ColorJitter(p=1.0, grayscale_p=0.0)
    out = jitter(sample["images"], torch.Generator().manual_seed(1))
    assert out.shape == sample["images"].shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, sample["images"])
    grey = ColorJitter(p=0.0, grayscale_p=1.0)(sample["images"], torch.Generator().manual_seed(1))
    torch.testing.assert_close(grey[:, 0], grey[:, 1])
    with pytest.raises(ValueError, match="hue"):
        ColorJitter(hue=0.7)


def test_batch_stream_depends_only_on_seed_step_and_rank(sample):
    class One:
        def __len__(self):
            return 1

        def scene(self, index):
            return {k: v for k, v in sample.items() if k not in ("cam_points", "world_points")}

    opts = BatchOptions(batch_size=2, min_frames=2, max_frames=3)
    a, b = BatchStream(One(), opts, seed=3).batch(5), BatchStream(One(), opts, seed=3).batch(5)
    assert torch.equal(a["images"], b["images"])
    other_rank = BatchStream(One(), opts, seed=3, rank=1, world_size=2).batch(5)
    assert other_rank["images"].shape == a["images"].shape  # same S on every rank
    assert a["images"].shape[:2] in ((2, 2), (2, 3))
    # point maps agree with the augmented depth and cameras
    again = add_point_maps({k: a[k][0] for k in ("depths", "intrinsics", "extrinsics")})
    torch.testing.assert_close(again["world_points"], a["world_points"][0])
