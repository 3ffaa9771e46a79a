"""Two-layer perceptron: fc1 -> activation -> fc2."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MlpWeights(NamedTuple):
    """An MLP's parameters in one compute dtype (see :meth:`Mlp.weights`)."""

    fc1_w: Tensor
    fc1_b: Tensor | None
    act: nn.Module
    fc2_w: Tensor
    fc2_b: Tensor | None


class Mlp(nn.Module):
    """fc1 -> ``act`` (exact GELU by default) -> fc2 (keys ``fc1``, ``fc2``)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int | None = None,
        bias: bool = True,
        act: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features, bias=bias)

    def weights(self, dtype: torch.dtype) -> MlpWeights:
        """The parameters cast to ``dtype`` once, for callers that run many passes."""
        return MlpWeights(
            _cast(self.fc1.weight, dtype), _cast(self.fc1.bias, dtype), self.act,
            _cast(self.fc2.weight, dtype), _cast(self.fc2.bias, dtype),
        )  # fmt: skip

    def forward(
        self,
        x: Tensor,
        dtype: torch.dtype | None = None,
        weights: MlpWeights | None = None,
        in_place: bool = False,
    ) -> Tensor:
        """x: (..., in_features) -> (..., out_features), computed in ``dtype`` (default: x's).

        ``in_place`` lets an exact GELU overwrite the hidden layer (inference only).
        """
        return mlp(x, weights or self.weights(dtype or x.dtype), in_place)


def mlp(x: Tensor, w: MlpWeights, in_place: bool = False) -> Tensor:
    """The MLP of weights ``w`` on x (..., in_features), in the weights' dtype (see :meth:`Mlp.forward`)."""
    h = F.linear(x.to(w.fc1_w.dtype), w.fc1_w, w.fc1_b)
    if in_place and type(w.act) is nn.GELU:
        h = torch.ops.aten.gelu_(h, approximate=w.act.approximate)
    else:
        h = w.act(h)
    return F.linear(h, w.fc2_w, w.fc2_b)


def _cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype)
