"""Export-friendly stand-ins for four spots of the model code, in force only while a model is traced for export.

``torch.export`` traces with a symbolic frame count. Four spots of the model code read a size or a value as a
Python number, which makes the trace fail or fixes the frame count of the graph:

1. ``_check_inputs`` (``models/vggt/model.py``) reads the range of the images with ``.item()``;
2. ``_taps`` (``models/vggt/heads/dpt.py``) reads the first and last source rows of a resize with ``int()``;
3. ``Aggregator._initial_tokens`` and ``DPTHead.forward`` iterate ``range(0, frames, chunk)`` also when one pass
   covers every frame, and ``range`` needs a concrete frame count;
4. ``ConvRunner._conv2d`` (``layers/dpt.py``) picks its kernel by comparing the output pixels of all frames with
   the output channels, so the graph would depend on the frame count.

Each stand-in computes the same numbers as the code it replaces for the plan the exporter traces (no frame chunks,
whole maps); the golden parity tests run the exported graphs. When the model code handles these cases itself
(see docs/onnx.md), this module is no longer needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.inference.plan import ExecutionPlan
from vggtkit.layers.dpt import ConvRunner, DenseRun
from vggtkit.models.vggt import aggregator as aggregator_module
from vggtkit.models.vggt import model as model_module
from vggtkit.models.vggt.heads import dpt as dpt_module


def _inputs_as_given(
    images: Tensor, query_points: Tensor | None, patch_size: int
) -> tuple[Tensor, Tensor | None]:
    """``_check_inputs`` for the export wrapper, which passes (B, S, 3, H, W) images and (B, N, 2) float32 queries.
    The range check reads the values, which a trace has not; the ONNX runtime checks them instead."""
    return images, query_points


def _whole_map_taps(rows: tuple[int, int], n_in: int, n_out: int, device: torch.device) -> dpt_module._Taps:
    """``_taps`` of every row of a resize (the only band of an unbanded head): all source rows, a plain resize."""
    if rows != (0, n_out) or n_out < 2:
        raise ValueError(f"the exporter traces dense heads on whole maps, got rows {rows} of {n_out}")
    unused = torch.zeros(0, dtype=torch.long, device=device)  # a whole resize reads no taps
    return dpt_module._Taps(rows, (0, n_in), unused, unused, unused.float(), True)


def _initial_tokens_one_pass(
    self: aggregator_module.Aggregator, images: Tensor, plan: ExecutionPlan
) -> Tensor:
    """``Aggregator._initial_tokens`` for every frame in one pass: (B, S, P, C) float32 [camera, registers, patches],
    slot 0 of the learned special tokens for the first frame of a sequence and slot 1 for the others."""
    B, S = images.shape[:2]
    patches = self.embed_patches(images, plan).unflatten(0, (B, S))  # (B, S, g, C)
    special = torch.cat([self.camera_token, self.register_token], dim=2).float()  # (1, 2, 1 + R, C)
    first = special[:, :1].expand(B, 1, -1, -1)
    others = special[:, 1:].expand(B, S - 1, -1, -1)
    return torch.cat([torch.cat([first, others], dim=1), patches], dim=2)


def _dense_head_one_pass(
    self: dpt_module.DPTHead,
    aggregated_tokens_list: Sequence[Tensor | None],
    images: Tensor,
    patch_start_idx: int,
    run: DenseRun | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """``DPTHead.forward`` for every frame in one pass on the whole map (the same outputs)."""
    run = run or DenseRun()
    B, S, _, H, W = images.shape
    layers = [aggregated_tokens_list[i].flatten(0, 1) for i in self.intermediate_layer_idx]
    conv = ConvRunner(run.dtype, run.channels_last)
    out_hw = self.output_size((H, W))
    low = self.fuse(conv, layers, (H, W), patch_start_idx)
    out = self._tail_rows(conv, low, (0, out_hw[0]), out_hw, W / H).unflatten(0, (B, S))
    if self.feature_only:
        return out.float()
    return self.activate(out.float())


def _conv2d_one_kernel(self: ConvRunner, module: nn.Conv2d, x: Tensor) -> Tensor:
    """``ConvRunner._conv2d`` with the convolution kernel for every frame count."""
    weight, bias = self._params(module)
    return F.conv2d(x, weight, bias, module.stride, module.padding, module.dilation, module.groups)


_STAND_INS = (
    (model_module, "_check_inputs", _inputs_as_given),
    (dpt_module, "_taps", _whole_map_taps),
    (aggregator_module.Aggregator, "_initial_tokens", _initial_tokens_one_pass),
    (dpt_module.DPTHead, "forward", _dense_head_one_pass),
    (ConvRunner, "_conv2d", _conv2d_one_kernel),
)


@contextlib.contextmanager
def traceable_model_code() -> Iterator[None]:
    """Put the stand-ins in place for the duration of a trace (process-wide: trace while no other thread runs a
    model)."""
    with contextlib.ExitStack() as stack:
        for owner, name, stand_in in _STAND_INS:
            stack.enter_context(mock.patch.object(owner, name, stand_in))
        yield
