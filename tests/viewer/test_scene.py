"""The viewer's scene without a browser: which points and frusta each control setting gives."""

from __future__ import annotations

import numpy as np
import pytest
from _viewer_scenes import POINTMAP_SHIFT, make_reconstruction, without_pointmap

from vggtkit.viewer import (
    PREDICTED,
    REFINED,
    SceneBuilder,
    SceneSource,
    ViewSettings,
    budget_mask,
    camera_frusta,
    pixel_priority,
)

ALL = 144  # 3 frames x 6 x 8 pixels


@pytest.fixture
def builder(rec) -> SceneBuilder:
    return SceneBuilder(SceneSource.from_reconstruction(rec))


def _count(builder: SceneBuilder, **settings) -> int:
    return len(builder.build(ViewSettings(max_points=None, **settings)).points)


def test_confidence_percentile_frame_and_background_masks_give_the_exports_counts(builder):
    # Confidence is each pixel's rank 1..144: the 50th percentile is 72.5, so ranks 73..144 remain.
    assert _count(builder, conf_threshold=0) == ALL
    assert _count(builder, conf_threshold=50) == 72
    assert _count(builder, conf_threshold=75) == 36
    # Frame 1 holds ranks 49..96; its own median is 72.5.
    assert _count(builder, conf_threshold=0, frame=1) == 48
    assert _count(builder, conf_threshold=50, frame=1) == 24
    # 8 black pixels in frame 0, 8 white ones in frame 2.
    assert _count(builder, conf_threshold=0, mask_black=True) == ALL - 8
    assert _count(builder, conf_threshold=0, mask_black=True, mask_white=True) == ALL - 16
    assert _count(builder, conf_threshold=0, frame=1, mask_black=True, mask_white=True) == 48


def test_points_carry_their_pixel_colour_and_branch(builder, rec):
    depth = builder.build(ViewSettings(conf_threshold=0, max_points=None)).points
    pointmap = builder.build(ViewSettings(conf_threshold=0, max_points=None, branch="pointmap")).points
    f, u, v = depth.frame, depth.pixel[:, 0], depth.pixel[:, 1]
    np.testing.assert_array_equal(depth.xyz, rec.world_points_from_depth[f, v, u])
    np.testing.assert_allclose(pointmap.xyz, depth.xyz + POINTMAP_SHIFT, atol=1e-6)
    np.testing.assert_array_equal(depth.rgb, rec.colors()[f, v, u])
    np.testing.assert_array_equal(depth.conf, rec.depth_conf[f, v, u])


def test_the_budget_keeps_a_random_subset_that_is_stable_when_a_filter_tightens(builder):
    loose = builder.build(ViewSettings(conf_threshold=0, max_points=50))
    tight = builder.build(ViewSettings(conf_threshold=50, max_points=50))
    assert (len(loose.points), loose.selected) == (50, ALL)
    assert (len(tight.points), tight.selected) == (50, 72)
    pixels = {(f, *p) for f, p in zip(loose.points.frame, loose.points.pixel.tolist(), strict=True)}
    kept = {(f, *p) for f, p in zip(tight.points.frame, tight.points.pixel.tolist(), strict=True)}
    survivors = {p for p in pixels if 1 + p[0] * 48 + p[2] * 8 + p[1] > 72.5}  # conf = rank of (frame, v, u)
    assert survivors and survivors <= kept  # a point shown before and still selected is still shown
    assert len(set(loose.points.frame.tolist())) == 3  # sampled from every frame, not the first pixels
    # A budget at least the selection sends everything.
    assert len(builder.build(ViewSettings(conf_threshold=50, max_points=72)).points) == 72


def test_budget_mask_picks_the_smallest_keys():
    mask = np.zeros((2, 3, 4), dtype=bool)
    mask[0, 1:, :] = True  # 8 pixels
    priority = pixel_priority(mask.shape, seed=3)
    out = budget_mask(mask, 5, priority)
    assert out.sum() == 5 and not (out & ~mask).any()
    assert priority[out].max() < priority[mask & ~out].min()
    assert budget_mask(mask, 8, priority) is mask and budget_mask(mask, None, priority) is mask
    assert np.unique(pixel_priority((3, 5, 7))).size == 105  # distinct keys: budgets are exact


def test_frusta_per_setting(builder):
    def names(**settings):
        return [f.name for f in builder.build(ViewSettings(**settings)).frusta]

    assert names() == [f"/cameras/predicted/{i:04d}" for i in range(3)]
    assert names(frame=2) == ["/cameras/predicted/0002"]
    assert names(show_cameras=False) == []
    assert names(compare_cameras=True) == names()  # nothing to compare with: one camera set


def test_frustum_geometry_follows_the_camera(rec):
    (frustum,) = camera_frusta(rec, [1], "/cameras/predicted")
    world_from_cam = rec.world_from_cam()[1]
    np.testing.assert_allclose(frustum.position, world_from_cam[:3, 3], atol=1e-12)
    w, x, y, z = frustum.wxyz
    R = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    np.testing.assert_allclose(R, world_from_cam[:3, :3], atol=1e-9)
    assert frustum.fov == pytest.approx(2 * np.arctan(3 / 7.2)) and frustum.aspect == pytest.approx(8 / 6)
    assert frustum.with_image and frustum.color != (150, 150, 150)


def test_refined_cameras_move_points_and_frusta_and_can_be_compared(refined_folder):
    source = SceneSource.from_path(refined_folder)
    assert source.names == [PREDICTED, REFINED]
    builder = SceneBuilder(source)
    predicted = builder.build(ViewSettings(conf_threshold=0, max_points=None))
    refined = builder.build(ViewSettings(conf_threshold=0, max_points=None, cameras=REFINED))
    np.testing.assert_allclose(refined.points.xyz - predicted.points.xyz, [[0.05, 0, 0]] * ALL, atol=1e-5)
    assert [f.name for f in refined.frusta] == [f"/cameras/refined/{i:04d}" for i in range(3)]
    compared = builder.build(ViewSettings(cameras=REFINED, compare_cameras=True, frame=0)).frusta
    assert [f.name for f in compared] == ["/cameras/refined/0000", "/compare/predicted/0000"]
    grey = compared[1]
    assert grey.color == (150, 150, 150) and not grey.with_image
    assert grey.position[0] == pytest.approx(compared[0].position[0] - 0.05)


def test_sky_mask_uses_the_given_model_once_and_is_refused_without_one(rec):
    calls = []

    def no_sky_in_frame_0_row_5(r):
        calls.append(r.num_frames)
        keep = np.ones(r.depth_conf.shape, dtype=bool)
        keep[0, 5, :] = False
        return keep

    builder = SceneBuilder(SceneSource.from_reconstruction(rec), sky_masks=no_sky_in_frame_0_row_5)
    assert _count(builder, conf_threshold=0, mask_sky=True) == ALL - 8
    assert _count(builder, conf_threshold=0, mask_sky=True, frame=1) == 48
    assert calls == [3]
    with pytest.raises(ValueError, match="sky-segmentation model"):
        SceneBuilder(SceneSource.from_reconstruction(rec)).build(ViewSettings(mask_sky=True))


def test_a_reconstruction_without_point_map_refuses_that_branch():
    builder = SceneBuilder(SceneSource.from_reconstruction(without_pointmap(make_reconstruction())))
    assert _count(builder, conf_threshold=0) == ALL
    with pytest.raises(ValueError, match="no point map"):
        builder.build(ViewSettings(branch="pointmap"))


def test_layout_sizes_points_and_frusta_to_the_scene(builder):
    layout = builder.layout
    assert 1.0 < layout.extent < 10.0  # the wall is 3 units away, a few units wide
    assert layout.frustum_scale == pytest.approx(0.05 * layout.extent)
    depths = builder.source.get().depth
    assert layout.pixel_size == pytest.approx(np.median(depths) / 7.2, rel=0.2)  # focal length 7.2 px
    full = builder.build(ViewSettings(point_size=2.0, conf_threshold=0, max_points=None))
    assert full.point_size == pytest.approx(2.0 * layout.pixel_size)
    quarter = builder.build(ViewSettings(point_size=2.0, conf_threshold=0, max_points=36))
    assert quarter.point_size == pytest.approx(
        2.0 * full.point_size
    )  # a quarter of the points, twice as wide


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("conf_threshold", 101.0, "percentile"),
        ("frame", -1, "frame"),
        ("branch", "normals", "branch"),
        ("point_size", 0.0, "point_size"),
        ("max_points", 0, "max_points"),
        ("cameras", "other", "cameras"),
    ],
)
def test_settings_check_themselves(field, value, message):
    with pytest.raises(ValueError, match=message):
        ViewSettings(**{field: value})
