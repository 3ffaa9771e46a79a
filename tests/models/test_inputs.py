"""Bad model inputs raise ValueError naming the problem and the fix."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize(
    ("images", "queries", "message"),
    [
        (torch.rand(3, 28, 28), None, r"\(S, 3, H, W\) or \(B, S, 3, H, W\)"),
        (torch.rand(1, 1, 1, 2, 3, 28, 28), None, r"\(S, 3, H, W\)"),
        (torch.rand(2, 4, 28, 28), None, "3 colour channels"),
        (torch.rand(2, 3, 30, 28), None, "multiples of the patch size 14"),
        (torch.rand(2, 3, 28, 28) * 255, None, r"\[0, 1\]"),
        (torch.rand(2, 3, 28, 28) - 0.5, None, r"\[0, 1\]"),
        (torch.randint(0, 255, (2, 3, 28, 28), dtype=torch.uint8), None, "floating point"),
        (torch.rand(2, 3, 28, 28), torch.rand(5, 3), r"\(N, 2\) or \(B, N, 2\)"),
        (torch.rand(2, 3, 28, 28), torch.rand(2, 5, 2), "batch 2 does not match"),
        (torch.rand(2, 3, 28, 28), torch.rand(0, 2), "empty"),
        ([1, 2, 3], None, "torch.Tensor"),
    ],
)
def test_bad_inputs(golden_vggt, images, queries, message):
    with pytest.raises(ValueError, match=message):
        golden_vggt(images, queries)
