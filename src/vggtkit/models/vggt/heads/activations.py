"""Output activations of the camera and DPT heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def inverse_log_transform(y: Tensor) -> Tensor:
    """sign(y) * (exp(|y|) - 1): undoes a signed log1p."""
    return torch.sign(y) * torch.expm1(torch.abs(y))


def apply_activation(x: Tensor, name: str) -> Tensor:
    """Element-wise activations shared by the heads ("linear", "relu", "exp", "inv_log", "sigmoid")."""
    if name == "linear":
        return x
    if name == "relu":
        return F.relu(x)
    if name == "exp":
        return torch.exp(x)
    if name == "inv_log":
        return inverse_log_transform(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    raise ValueError(f"unknown activation {name!r}")


def apply_point_activation(xyz: Tensor, name: str) -> Tensor:
    """Activation of the DPT regression channels (..., C)."""
    if name == "norm_exp":
        d = xyz.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        return xyz / d * torch.expm1(d)
    if name == "norm":
        return xyz / xyz.norm(dim=-1, keepdim=True)
    if name == "xy_inv_log":
        z = inverse_log_transform(xyz[..., 2:3])
        return torch.cat([xyz[..., :2] * z, z], dim=-1)
    return apply_activation(xyz, name)


def apply_conf_activation(conf: Tensor, name: str) -> Tensor:
    """Confidence activation: "expp1" (1 + exp, so conf > 1), "expp0" (exp) or "sigmoid"."""
    if name == "expp1":
        return 1 + conf.exp()
    if name == "expp0":
        return conf.exp()
    if name == "sigmoid":
        return torch.sigmoid(conf)
    raise ValueError(f"unknown confidence activation {name!r}")


def activate_pose(
    raw: Tensor, trans_act: str = "linear", quat_act: str = "linear", fl_act: str = "relu"
) -> Tensor:
    """raw (..., 9) pre-activation pose encoding -> activated [t (3), quat_xyzw (4), fov_h, fov_w]."""
    t = apply_activation(raw[..., :3], trans_act)
    quat = apply_activation(raw[..., 3:7], quat_act)
    fov = apply_activation(raw[..., 7:], fl_act)
    return torch.cat([t, quat, fov], dim=-1)
