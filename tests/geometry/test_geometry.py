"""Geometry utilities: golden parity with upstream VGGT and round-trip properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _golden import assert_golden, load_golden
from vggtkit.geometry import (
    closed_form_inverse_se3,
    depth_to_cam_points,
    extri_intri_to_pose_encoding,
    mat_to_quat,
    pose_encoding_to_extri_intri,
    project_points,
    quat_to_mat,
    transform_points,
    unproject_depth_map_to_point_map,
)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x)


def _random_quats(n: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=gen, dtype=dtype)
    return q / q.norm(dim=-1, keepdim=True)


def _random_se3(n: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 1)
    t = torch.randn(n, 3, 1, generator=gen, dtype=dtype)
    return torch.cat((quat_to_mat(_random_quats(n, seed, dtype)), t), dim=-1)


# ---------------------------------------------------------------------------------------------------------
# Golden parity


def test_golden_quat_to_mat() -> None:
    g = load_golden()
    assert_golden("util_rotmat", quat_to_mat(_t(g["util_quat"])), g["util_rotmat"])


def test_golden_mat_to_quat() -> None:
    g = load_golden()
    ours = mat_to_quat(_t(g["util_rotmat"]))
    assert_golden("util_mat_to_quat", ours, g["util_mat_to_quat"])
    assert (ours[..., 3] >= 0).all()


def test_golden_extri_intri_to_pose_encoding() -> None:
    g = load_golden()
    ours = extri_intri_to_pose_encoding(_t(g["util_extrinsic"]), _t(g["util_intrinsic"]), g["util_image_hw"])
    assert ours.dtype == torch.float32
    assert_golden("util_pose_enc", ours, g["util_pose_enc"])


def test_golden_pose_encoding_to_extri_intri() -> None:
    g = load_golden()
    hw = tuple(int(v) for v in g["util_image_hw"])
    extrinsics, intrinsics = pose_encoding_to_extri_intri(_t(g["util_pose_enc"]), hw)
    assert_golden("util_extrinsic_back", extrinsics, g["util_extrinsic_back"])
    assert_golden("util_intrinsic_back", intrinsics, g["util_intrinsic_back"])


@pytest.mark.parametrize("as_torch", [False, True])
def test_golden_unproject_depth_map_to_point_map(as_torch: bool) -> None:
    g = load_golden()
    args = [g["util_depth"], g["util_unproject_extrinsic"], g["util_unproject_intrinsic"]]
    if as_torch:
        args = [_t(a) for a in args]
    ours = unproject_depth_map_to_point_map(*args)
    assert isinstance(ours, np.ndarray)
    assert ours.dtype == g["util_world_points"].dtype == np.float64
    assert_golden("util_world_points", ours, g["util_world_points"])


def test_golden_unproject_accepts_depth_without_channel_axis() -> None:
    g = load_golden()
    ours = unproject_depth_map_to_point_map(
        g["util_depth"][..., 0], g["util_unproject_extrinsic"], g["util_unproject_intrinsic"]
    )
    assert_golden("util_world_points", ours, g["util_world_points"])


def test_golden_closed_form_inverse_se3() -> None:
    g = load_golden()
    ours = closed_form_inverse_se3(g["util_unproject_extrinsic"])
    assert ours.dtype == g["util_se3_inverse"].dtype == np.float64  # upstream builds on np.eye
    assert_golden("util_se3_inverse", ours, g["util_se3_inverse"])
    ours_torch = closed_form_inverse_se3(_t(g["util_unproject_extrinsic"]))
    assert ours_torch.dtype == torch.float32
    assert_golden("util_se3_inverse (torch)", ours_torch, g["util_se3_inverse"])


# ---------------------------------------------------------------------------------------------------------
# Rotations


def test_quat_mat_round_trip() -> None:
    q = _random_quats(256)
    rot = quat_to_mat(q)
    eye = torch.eye(3, dtype=rot.dtype).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(256, dtype=rot.dtype))
    back = mat_to_quat(rot)
    standard = torch.where(q[:, 3:] < 0, -q, q)
    torch.testing.assert_close(back, standard, atol=1e-12, rtol=0)
    torch.testing.assert_close(quat_to_mat(back), rot, atol=1e-12, rtol=0)


def test_quat_to_mat_normalises_implicitly() -> None:
    q = _random_quats(8)
    torch.testing.assert_close(quat_to_mat(3.5 * q), quat_to_mat(q))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mat_to_quat_half_turns(axis: int) -> None:
    """180-degree rotations have w = 0, where only the x/y/z candidates are well conditioned."""
    q = torch.zeros(4, dtype=torch.float64)
    q[axis] = 1.0
    back = mat_to_quat(quat_to_mat(q))
    assert torch.allclose(back.abs(), q, atol=1e-12)


def test_mat_to_quat_leading_dims_and_identity() -> None:
    rot = torch.eye(3).expand(2, 3, 4, 3, 3)
    quat = mat_to_quat(rot)
    assert quat.shape == (2, 3, 4, 4)
    torch.testing.assert_close(quat, torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(2, 3, 4, 4))


def test_mat_to_quat_gradient_is_finite_at_identity() -> None:
    rot = torch.eye(3, dtype=torch.float64, requires_grad=True)
    mat_to_quat(rot).sum().backward()
    assert torch.isfinite(rot.grad).all()


def test_mat_to_quat_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        mat_to_quat(torch.zeros(4, 4))


# ---------------------------------------------------------------------------------------------------------
# Pose encoding


@pytest.mark.parametrize("lead", [(5,), (2, 5), (2, 3, 4)])
def test_pose_encoding_round_trip(lead: tuple[int, ...]) -> None:
    n = math.prod(lead)
    extrinsics = _random_se3(n).reshape(*lead, 3, 4)
    gen = torch.Generator().manual_seed(3)
    focal = 200 + 300 * torch.rand(n, 2, generator=gen, dtype=torch.float64)
    hw = (294, 518)
    intrinsics = torch.zeros(n, 3, 3, dtype=torch.float64)
    intrinsics[:, 0, 0], intrinsics[:, 1, 1] = focal[:, 0], focal[:, 1]
    intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 2, 2] = hw[1] / 2, hw[0] / 2, 1.0
    intrinsics = intrinsics.reshape(*lead, 3, 3)

    enc = extri_intri_to_pose_encoding(extrinsics, intrinsics, hw)
    assert enc.shape == (*lead, 9) and enc.dtype == torch.float32
    ext_back, int_back = pose_encoding_to_extri_intri(enc, hw)
    assert ext_back.shape == (*lead, 3, 4) and int_back.shape == (*lead, 3, 3)
    assert int_back.dtype == enc.dtype
    torch.testing.assert_close(ext_back.double(), extrinsics, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(int_back.double(), intrinsics, atol=1e-3, rtol=1e-5)


def test_pose_encoding_to_extri_intri_keeps_dtype_and_skips_intrinsics() -> None:
    intrinsics = torch.eye(3).expand(3, 3, 3) * 300
    enc = extri_intri_to_pose_encoding(_random_se3(3), intrinsics, (100, 200)).double()
    _, intrinsics = pose_encoding_to_extri_intri(enc, (100, 200))
    assert intrinsics.dtype == torch.float64
    extrinsics, none = pose_encoding_to_extri_intri(enc, build_intrinsics=False)
    assert none is None and extrinsics.dtype == torch.float64


def test_pose_encoding_errors() -> None:
    enc = torch.zeros(2, 9)
    enc[:, 6] = 1.0
    with pytest.raises(ValueError, match="image_size_hw"):
        pose_encoding_to_extri_intri(enc)
    with pytest.raises(ValueError, match="pose_encoding_type"):
        pose_encoding_to_extri_intri(enc, (10, 10), pose_encoding_type="relT_quaR_FoV")
    with pytest.raises(ValueError, match="last dimension 9"):
        pose_encoding_to_extri_intri(torch.zeros(2, 8), (10, 10))
    with pytest.raises(ValueError, match="image_size_hw"):
        extri_intri_to_pose_encoding(torch.zeros(2, 3, 4), torch.eye(3).expand(2, 3, 3))
    with pytest.raises(ValueError, match="pose_encoding_type"):
        extri_intri_to_pose_encoding(torch.zeros(2, 3, 4), torch.eye(3).expand(2, 3, 3), (4, 4), "bad")


# ---------------------------------------------------------------------------------------------------------
# SE(3), projection and unprojection


@pytest.mark.parametrize("rows", [3, 4])
@pytest.mark.parametrize("as_numpy", [False, True])
def test_closed_form_inverse_se3_composes_to_identity(rows: int, as_numpy: bool) -> None:
    se3_34 = _random_se3(7)
    se3_44 = torch.cat((se3_34, torch.tensor([0.0, 0, 0, 1], dtype=se3_34.dtype).expand(7, 1, 4)), dim=1)
    se3_in = se3_44[:, :rows]
    if as_numpy:
        inv = closed_form_inverse_se3(se3_in.numpy())
        assert isinstance(inv, np.ndarray) and inv.shape == (7, 4, 4)
        np.testing.assert_allclose(inv @ se3_44.numpy(), np.broadcast_to(np.eye(4), (7, 4, 4)), atol=1e-12)
    else:
        inv = closed_form_inverse_se3(se3_in)
        assert inv.shape == (7, 4, 4) and inv.dtype == se3_in.dtype
        torch.testing.assert_close(inv @ se3_44, torch.eye(4, dtype=inv.dtype).expand(7, 4, 4))
        torch.testing.assert_close(closed_form_inverse_se3(inv), se3_44)


def test_closed_form_inverse_se3_explicit_r_t_and_bad_shape() -> None:
    se3 = _random_se3(3)  # N = 3: T of shape (3, 3) must still be read as (N, 3)
    inv = closed_form_inverse_se3(se3, R=se3[:, :, :3], T=se3[:, :, 3:])
    torch.testing.assert_close(inv, closed_form_inverse_se3(se3))
    torch.testing.assert_close(closed_form_inverse_se3(se3, T=se3[:, :, 3]), inv)
    with pytest.raises(ValueError, match="se3 must be"):
        closed_form_inverse_se3(torch.zeros(4, 3, 3))


def test_transform_points_matches_homogeneous_product() -> None:
    se3 = _random_se3(2)
    pts = torch.randn(2, 10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    homog = torch.cat((pts, torch.ones(2, 10, 1, dtype=pts.dtype)), dim=-1)
    expected = (homog @ se3.transpose(-1, -2))[..., :3]
    torch.testing.assert_close(transform_points(se3, pts), expected)
    np.testing.assert_allclose(transform_points(se3.numpy(), pts.numpy()), expected.numpy(), atol=1e-12)


@pytest.mark.parametrize("as_numpy", [False, True])
def test_project_inverts_unproject(as_numpy: bool) -> None:
    """Unprojected depth, mapped to the world and projected back, lands on the integer pixel grid."""
    n_frames, height, width = 2, 5, 7
    gen = torch.Generator().manual_seed(7)
    depth = 1 + torch.rand(n_frames, height, width, generator=gen, dtype=torch.float64)
    K = torch.tensor([[50.0, 0, 3.5], [0, 60.0, 2.5], [0, 0, 1]], dtype=torch.float64).expand(n_frames, 3, 3)
    cam_from_world = _random_se3(n_frames)
    if as_numpy:
        depth, K, cam_from_world = depth.numpy(), K.numpy(), cam_from_world.numpy()

    cam_points = depth_to_cam_points(depth, K)
    assert cam_points.shape == (n_frames, height, width, 3)
    world_from_cam = closed_form_inverse_se3(cam_from_world)
    world = transform_points(world_from_cam, cam_points.reshape(n_frames, -1, 3))
    for i in range(n_frames):
        uv, z = project_points(world[i], cam_from_world[i], K[i])
        grid_v, grid_u = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        expected = np.stack((grid_u, grid_v), axis=-1).reshape(-1, 2)
        np.testing.assert_allclose(np.asarray(uv), expected, atol=1e-9)
        np.testing.assert_allclose(np.asarray(z), np.asarray(depth[i]).reshape(-1), atol=1e-12)

    unprojected = unproject_depth_map_to_point_map(depth, cam_from_world, K)
    np.testing.assert_allclose(unprojected.reshape(n_frames, -1, 3), np.asarray(world), rtol=1e-6, atol=1e-6)


def test_unproject_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="depth_map"):
        unproject_depth_map_to_point_map(np.ones((4, 4)), np.zeros((1, 3, 4)), np.eye(3)[None])
    with pytest.raises(ValueError, match="extrinsics_cam"):
        unproject_depth_map_to_point_map(np.ones((2, 4, 4)), np.zeros((1, 3, 4)), np.eye(3)[None])
