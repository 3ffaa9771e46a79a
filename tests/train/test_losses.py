"""Losses on hand-made cases: values computed by hand, variants, masks and edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from vggtkit.geometry import extri_intri_to_pose_encoding
from vggtkit.train.losses import (
    LossConfig,
    MultitaskLoss,
    camera_loss,
    check_and_fix_inf_nan,
    filter_by_quantile,
    gradient_loss,
    normal_loss,
    regression_loss,
    track_loss,
)


def _cameras(b: int = 1, s: int = 2):
    ext = torch.eye(4)[:3].repeat(b, s, 1, 1)
    ext[..., 0, 3] = torch.arange(s, dtype=torch.float32)  # translations along x
    K = torch.tensor([[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]]).repeat(b, s, 1, 1)
    return ext, K


def test_check_and_fix_inf_nan():
    t = torch.tensor([float("nan"), float("inf"), -float("inf"), 150.0, -3.0])
    torch.testing.assert_close(check_and_fix_inf_nan(t), torch.tensor([0.0, 0, 0, 100, -3]))
    assert check_and_fix_inf_nan(torch.tensor([500.0]), hard_max=None).item() == 500


def test_camera_loss_l1_weights_iterations_by_gamma_powers():
    ext, K = _cameras()
    gt = extri_intri_to_pose_encoding(ext, K, (30, 40))
    masks = torch.ones(1, 2, 30, 40, dtype=torch.bool)
    # 4 iterations; translation x of every frame off by 1.0 only in iteration k
    preds = [gt.clone() for _ in range(4)]
    preds[0][..., 0] += 1.0
    out = camera_loss(preds, ext, K, (30, 40), masks, LossConfig())
    # iteration 0 weight 0.6^3 = 0.216; L_T = mean |dt| over 3 components = 1/3; divided by 4 stages
    assert out["loss_T"].item() == pytest.approx(0.216 * (1 / 3) / 4, rel=1e-5)
    assert out["loss_R"].item() == pytest.approx(0, abs=1e-7)
    preds = [gt.clone() for _ in range(4)]
    preds[3][..., 7:] += 0.2  # FoV error in the last iteration (weight 1.0), w_FL = 0.5
    out = camera_loss(preds, ext, K, (30, 40), masks, LossConfig())
    assert out["loss_FL"].item() == pytest.approx(0.2 / 4, rel=1e-5)
    assert out["loss_camera"].item() == pytest.approx(0.5 * 0.2 / 4, rel=1e-5)


def test_camera_loss_huber_variant_and_invalid_sequences():
    ext, K = _cameras()
    gt = extri_intri_to_pose_encoding(ext, K, (30, 40))
    pred = gt.clone()
    pred[..., 0] += 3.0
    masks = torch.ones(1, 2, 30, 40, dtype=torch.bool)
    paper = camera_loss([pred], ext, K, (30, 40), masks, LossConfig(variant="paper"))
    # Huber(delta 1) of an error 3: 3 - 0.5 = 2.5, on 1 of 3 translation components
    assert paper["loss_T"].item() == pytest.approx(2.5 / 3, rel=1e-5)
    l1 = camera_loss([pred], ext, K, (30, 40), masks, LossConfig())
    assert l1["loss_T"].item() == pytest.approx(1.0, rel=1e-5)
    # frame 0 with <= 100 valid pixels: the sequence does not count, the loss is 0 but differentiable
    few = torch.zeros_like(masks)
    few[:, 0, :5, :20] = True
    pred.requires_grad_(True)
    none = camera_loss([pred], ext, K, (30, 40), few, LossConfig())
    assert none["loss_camera"].item() == 0
    none["loss_camera"].backward()
    assert pred.grad is not None


def test_camera_loss_uses_the_w_positive_quaternion():
    ext, K = _cameras()
    gt = extri_intri_to_pose_encoding(ext, K, (30, 40))
    masks = torch.ones(1, 2, 30, 40, dtype=torch.bool)
    flipped = gt.clone()
    flipped[..., 3:7] *= -1  # the same rotation, w < 0
    out = camera_loss([flipped], ext, K, (30, 40), masks, LossConfig())
    # no sign-ambiguity handling (as released): |(-q) - q| = 2|q| -> mean over 4 comps of 2|q_i| = 2*1/4 = 0.5
    assert out["loss_R"].item() == pytest.approx(0.5, rel=1e-5)


def test_filter_by_quantile_drops_the_top_two_percent():
    loss = torch.arange(2000, dtype=torch.float32) / 100  # 0 .. 19.99
    kept = filter_by_quantile(loss, 0.98)
    # k = round(0.98 * 1999) + 1 = 1960 -> threshold value 19.59; keep values < 19.59
    assert kept.numel() == 1959
    small = torch.arange(500, dtype=torch.float32)
    assert filter_by_quantile(small, 0.98).numel() == 500  # under 1000 elements: untouched
    big = torch.full((2000,), 500.0)
    assert filter_by_quantile(big, 0.98).max().item() == 100  # clamped at hard_max; nothing < thr, keep all


def test_gradient_loss_ignores_constant_offsets_and_sees_edges():
    gt = torch.rand(2, 8, 8, 1)
    mask = torch.ones(2, 8, 8, dtype=torch.bool)
    assert gradient_loss(gt + 0.7, gt, mask).item() == pytest.approx(0, abs=1e-6)
    pred = gt.clone()
    pred[:, :, 4:] += 1.0  # a step of 1 between columns 3 and 4 in every row
    # x term: 2 images * 8 rows of |1|; normalised by mask sum 2*8*8*1
    assert gradient_loss(pred, gt, mask).item() == pytest.approx(16 / 128, rel=1e-5)
    assert gradient_loss(pred, gt, torch.zeros_like(mask)).item() == 0


def test_gradient_loss_with_confidence_adds_the_log_term():
    gt = torch.zeros(1, 4, 4, 1)
    mask = torch.ones(1, 4, 4, dtype=torch.bool)
    conf = torch.full((1, 4, 4), math.e)
    value = gradient_loss(gt, gt, mask, conf, gamma=1.0, alpha=0.2).item()
    # zero error; -alpha log(e) = -0.2 at each of the 12 x and 12 y neighbour slots; / 16
    assert value == pytest.approx(-0.2 * 24 / 16, rel=1e-5)


def test_normal_loss_zero_for_same_surface_up_to_translation_and_positive_for_a_bend():
    v, u = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    plane = torch.stack((u, v, torch.zeros_like(u)), -1)[None]
    mask = torch.ones(1, 6, 6, dtype=torch.bool)
    assert normal_loss(plane + 3.0, plane, mask).item() == pytest.approx(0, abs=1e-5)
    tilted = torch.stack((u, v, 0.8 * u), -1)[None]
    expected = 1 - 1 / math.sqrt(1 + 0.8**2)
    assert normal_loss(tilted, plane, mask).item() == pytest.approx(expected, rel=1e-3)
    assert normal_loss(tilted, plane, torch.zeros_like(mask)).item() == 0


def _depth_case(err: float = 0.5):
    gt = torch.ones(1, 1, 12, 12, 1) * 2
    pred = gt + err
    mask = torch.ones(1, 1, 12, 12, dtype=torch.bool)
    conf = torch.full((1, 1, 12, 12), 2.0)
    return pred, gt, mask, conf


def test_regression_loss_released_terms():
    pred, gt, mask, conf = _depth_case()
    out = regression_loss(pred, gt, mask, conf, LossConfig(), "grad")
    assert out["reg"].item() == pytest.approx(0.5, rel=1e-5)
    assert out["conf"].item() == pytest.approx(1.0 * 0.5 * 2 - 0.2 * math.log(2), rel=1e-5)
    assert out["grad"].item() == pytest.approx(0, abs=1e-6)  # constant error has no gradient
    few = torch.zeros_like(mask)
    few[..., :5, :5] = True  # 25 < 100 valid pixels
    assert all(v.item() == 0 for v in regression_loss(pred, gt, few, conf, LossConfig(), "grad").values())


def test_regression_loss_paper_variant_weights_the_gradient_and_drops_the_plain_term():
    pred, gt, mask, conf = _depth_case()
    pred = pred.clone()
    pred[..., 6:, :] += 1.0
    released = regression_loss(pred, gt, mask, conf, LossConfig(), "grad")
    paper = regression_loss(pred, gt, mask, conf, LossConfig(variant="paper"), "grad")
    assert paper["reg"].item() == 0 and released["reg"].item() > 0
    assert paper["grad"].item() != pytest.approx(released["grad"].item())
    with pytest.raises(ValueError, match="shape"):
        regression_loss(pred[..., :6, :], gt, mask, conf, LossConfig(), "grad")


def test_track_loss_hand_case():
    gt = torch.zeros(1, 2, 3, 2)
    gt_vis = torch.tensor([[[True, True, False], [True, False, True]]])
    pred_last = gt.clone()
    pred_last[0, 1, 0] = torch.tensor([3.0, 4.0])  # L1 error 7 on the one track visible in both frames
    pred_first = gt + 1.0  # L1 error 2 everywhere
    vis = torch.full((1, 2, 3), 0.5)
    conf = torch.full((1, 2, 3), 0.5)
    out = track_loss([pred_first, pred_last], vis, conf, gt, gt_vis, LossConfig())
    # valid: (f0,t0), (f0,t1), (f1,t0). iteration 0 (weight 0.8): mean 2; iteration 1 (weight 1): mean 7/3
    assert out["loss_track_pos"].item() == pytest.approx((0.8 * 2 + 7 / 3) / 2, rel=1e-5)
    assert out["loss_track_vis"].item() == pytest.approx(math.log(2), rel=1e-5)
    assert out["loss_track_conf"].item() == pytest.approx(math.log(2), rel=1e-5)


def test_multitask_objective_is_the_weighted_sum_and_checks_heads():
    ext, K = _cameras(b=1, s=2)
    gt_enc = extri_intri_to_pose_encoding(ext, K, (12, 12))
    pred, gt, mask, conf = _depth_case()
    pred, gt, mask, conf = (x.expand(1, 2, *x.shape[2:]) for x in (pred, gt, mask, conf))
    batch = {
        "images": torch.zeros(1, 2, 3, 12, 12),
        "extrinsics": ext,
        "intrinsics": K,
        "depths": gt[..., 0],
        "point_masks": mask,
    }
    predictions = {"pose_enc_list": [gt_enc + 0.1], "depth": pred, "depth_conf": conf}
    out = MultitaskLoss(LossConfig())(predictions, batch)
    expected = (
        5 * out["loss_camera"] + out["loss_conf_depth"] + out["loss_reg_depth"] + out["loss_grad_depth"]
    )
    torch.testing.assert_close(out["objective"], expected)
    with pytest.raises(ValueError, match="point head"):
        MultitaskLoss(LossConfig(point_weight=1.0))(predictions, batch)
    with pytest.raises(ValueError, match="nothing to train"):
        MultitaskLoss(LossConfig(camera_weight=0, depth_weight=0))(predictions, batch)


def test_loss_config_validation():
    with pytest.raises(ValueError, match="variant"):
        LossConfig(variant="nope")
    with pytest.raises(ValueError, match="depth_gradient_loss"):
        LossConfig(depth_gradient_loss="sobel")
    with pytest.raises(ValueError, match="unknown"):
        LossConfig.from_dict({"camera_wieght": 1})
    assert LossConfig(variant="paper").resolved_camera_distance == "huber"


def test_log_depth_space_scores_relative_errors():
    ext, K = _cameras(b=1, s=2)
    mask = torch.ones(1, 2, 12, 12, dtype=torch.bool)
    conf = torch.full((1, 2, 12, 12), 1.0)
    values = []
    for scale in (1.0, 10.0):
        gt = torch.full((1, 2, 12, 12), 2.0 * scale)
        batch = {"images": torch.zeros(1, 2, 3, 12, 12), "extrinsics": ext, "intrinsics": K, "depths": gt}
        batch["point_masks"] = mask
        predictions = {"depth": (gt * 1.1)[..., None], "depth_conf": conf}
        config = LossConfig(camera_weight=0, depth_space="log")
        values.append(MultitaskLoss(config)(predictions, batch)["loss_reg_depth"].item())
    assert values[0] == pytest.approx(math.log(1.1), rel=1e-4)
    assert values[1] == pytest.approx(values[0], rel=1e-4)  # the same relative error costs the same
    with pytest.raises(ValueError, match="depth_space"):
        LossConfig(depth_space="inverse")
