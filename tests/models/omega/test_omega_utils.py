"""The pose and geometry utilities VGGT-Omega uses reproduce its official ``utils`` on the golden cases."""

from __future__ import annotations

import numpy as np
import torch
from _omega_golden import golden_tensor, load_omega_golden, omega_config_json

from _golden import assert_golden
from vggtkit.geometry import (
    closed_form_inverse_se3,
    encoding_to_camera,
    extri_intri_to_pose_encoding,
    mat_to_quat,
    pose_encoding_to_extri_intri,
    quat_to_mat,
    unproject_depth_map_to_point_map,
)


def image_hw() -> tuple[int, int]:
    return tuple(int(v) for v in load_omega_golden()["util_image_hw"])


def test_pose_encoding_round_trip():
    g = load_omega_golden()
    encoding = extri_intri_to_pose_encoding(
        golden_tensor("util_extrinsic"), golden_tensor("util_intrinsic"), image_hw()
    )
    assert encoding.dtype == torch.float32
    assert_golden("util_pose_enc", encoding, g["util_pose_enc"])
    extrinsic, intrinsic = encoding_to_camera(golden_tensor("util_pose_enc"), image_hw())
    assert_golden("util_extrinsic_back", extrinsic, g["util_extrinsic_back"])
    assert_golden("util_intrinsic_back", intrinsic, g["util_intrinsic_back"])
    assert encoding_to_camera(golden_tensor("util_pose_enc"), image_hw(), build_intrinsics=False)[1] is None
    same = pose_encoding_to_extri_intri(golden_tensor("util_pose_enc"), image_hw())
    assert torch.equal(same[0], extrinsic) and torch.equal(same[1], intrinsic)


def test_predicted_pose_decodes_at_the_input_size():
    g = load_omega_golden()
    fixture = omega_config_json()["fixture"]
    extrinsic, intrinsic = encoding_to_camera(golden_tensor("pose_enc"), (fixture["H"], fixture["W"]))
    assert_golden("pose_enc_extrinsic", extrinsic, g["pose_enc_extrinsic"])
    assert_golden("pose_enc_intrinsic", intrinsic, g["pose_enc_intrinsic"])


def test_rotations_including_non_unit_quaternions_and_special_turns():
    g = load_omega_golden()
    assert_golden("util_rotmat", quat_to_mat(golden_tensor("util_quat")), g["util_rotmat"])
    assert_golden("util_mat_to_quat", mat_to_quat(golden_tensor("util_rotmat")), g["util_mat_to_quat"])
    assert_golden(
        "util_quat_nonunit_to_mat",
        quat_to_mat(golden_tensor("util_quat_nonunit")),
        g["util_quat_nonunit_to_mat"],
    )
    special = mat_to_quat(golden_tensor("util_special_rotmat"))
    assert_golden("util_special_mat_to_quat", special, g["util_special_mat_to_quat"])
    assert (special[..., 3] >= 0).all()


def test_se3_inverse_numpy_and_torch():
    g = load_omega_golden()
    inverse_np = closed_form_inverse_se3(g["util_extrinsic"][0])
    assert inverse_np.dtype == np.float64  # as the official code (built on np.eye)
    assert_golden("util_se3_inverse_np", inverse_np, g["util_se3_inverse_np"])
    inverse_torch = closed_form_inverse_se3(golden_tensor("util_se3_in_4x4"))
    assert inverse_torch.dtype == torch.float32
    assert_golden("util_se3_inverse_torch", inverse_torch, g["util_se3_inverse_torch"])


def test_points_from_depth_and_cameras(omega_model):
    """Omega has no point head: world points are the depth unprojected with the predicted cameras, and project back
    onto their pixels."""
    images = golden_tensor("images")
    with torch.no_grad():
        out = omega_model(images)
    H, W = out["depth"].shape[2:4]
    extrinsic, intrinsic = encoding_to_camera(out["pose_enc"], (H, W))
    points = unproject_depth_map_to_point_map(out["depth"][0], extrinsic[0], intrinsic[0])  # (S, H, W, 3)
    assert points.shape == (images.shape[1], H, W, 3)
    cam = np.einsum("sij,shwj->shwi", extrinsic[0, :, :, :3].double().numpy(), points)
    cam += extrinsic[0, :, None, None, :, 3].double().numpy()
    torch.testing.assert_close(
        torch.from_numpy(cam[..., 2]), out["depth"][0, ..., 0].double(), rtol=1e-5, atol=1e-5
    )
    pixels = np.einsum("sij,shwj->shwi", intrinsic[0].double().numpy(), cam)
    u = pixels[..., 0] / pixels[..., 2]
    # Camera points are rounded to float32 on the way (as upstream): a few hundredths of a pixel.
    np.testing.assert_allclose(u[:, 3], np.broadcast_to(np.arange(W), u[:, 3].shape), atol=0.05)
