"""Two-layer perceptron with an exact GELU."""

from __future__ import annotations

from torch import Tensor, nn


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (keys ``fc1``, ``fc2``)."""

    def __init__(
        self, in_features: int, hidden_features: int, out_features: int | None = None, bias: bool = True
    ):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))
