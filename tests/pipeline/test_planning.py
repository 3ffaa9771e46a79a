"""Chunk spans, which chunk each frame comes from, and the choice between one pass and chunks for a budget."""

from __future__ import annotations

import logging

import pytest
import torch

from vggtkit.pipeline.planning import (
    PIPELINE_BYTES_PER_PIXEL,
    _estimate,
    chunk_spans,
    default_overlap,
    owned_ranges,
    plan_run,
)

HW = (42, 56)


@pytest.mark.parametrize(("frames", "size", "overlap"), [(48, 12, 3), (50, 12, 3), (13, 12, 11), (100, 7, 1)])
def test_spans_cover_the_sequence_with_the_overlap(frames: int, size: int, overlap: int) -> None:
    spans = chunk_spans(frames, size, overlap)
    assert spans[0].start == 0 and spans[-1].stop == frames
    assert all(len(s) == size for s in spans)  # the last chunk too: it ends at the last frame
    for before, after in zip(spans, spans[1:], strict=False):
        assert overlap <= before.stop - after.start < size  # shared frames, and new ones
    owned = owned_ranges(spans)
    assert [a for a, _ in owned[1:]] == [b for _, b in owned[:-1]]  # a partition of 0..frames
    assert owned[0][0] == 0 and owned[-1][1] == frames
    for span, (first, stop) in zip(spans, owned, strict=True):
        assert span.start <= first < stop <= span.stop


def test_spans_reject_an_overlap_as_long_as_a_chunk() -> None:
    with pytest.raises(ValueError, match="overlap must lie in 1..chunk_size-1"):
        chunk_spans(10, 4, 4)
    assert default_overlap(48) == 12 and default_overlap(2) == 1


def _fits(model, frames: int, budget: int, overlap: int = 0) -> bool:
    held = (frames + overlap) * HW[0] * HW[1] * PIPELINE_BYTES_PER_PIXEL
    return _estimate(model, frames, HW, torch.float32, budget, held) is not None


def test_one_pass_when_it_fits(golden_vggt, caplog) -> None:
    assert not plan_run(golden_vggt, 40, HW, torch.float32, None, None, None).chunked  # nothing asked
    with caplog.at_level(logging.INFO, logger="vggtkit.pipeline.planning"):
        plan = plan_run(golden_vggt, 40, HW, torch.float32, None, None, 10**12)
    assert not plan.chunked and plan.model_budget is not None
    assert len(caplog.messages) == 1 and plan.reason.startswith(
        "one pass fits: 40 frames of 56x42 need about"
    )


def test_the_largest_fitting_chunk_when_one_pass_does_not_fit(golden_vggt, caplog) -> None:
    # A budget between what chunks of 10 frames (with their overlap) and what 40 frames need.
    budget = next(b for b in range(10**6, 10**9, 10**5) if _fits(golden_vggt, 10, b, default_overlap(10)))
    assert not _fits(golden_vggt, 40, budget)
    with caplog.at_level(logging.INFO, logger="vggtkit.pipeline.planning"):
        plan = plan_run(golden_vggt, 40, HW, torch.float32, None, None, budget)
    size = plan.chunk_size
    assert plan.chunked and 10 <= size < 40 and plan.overlap == default_overlap(size)
    assert _fits(golden_vggt, size, budget, plan.overlap) and not _fits(
        golden_vggt, size + 1, budget, default_overlap(size + 1)
    )
    assert plan.spans == chunk_spans(40, size, plan.overlap) and 0 < plan.model_budget < budget
    assert len(caplog.messages) == 1  # the decision, in one line (the command line shows its flags in it)
    assert plan.reason.startswith("one pass over 40 frames of 56x42 does not fit in max_memory=")
    assert f"running {len(plan.spans)} chunks of {size} frames overlapping by {plan.overlap}" in plan.reason


def test_budgets_too_small(golden_vggt) -> None:
    with pytest.raises(ValueError, match="too small even for chunks of 2 frames of 56x42; raise it"):
        plan_run(golden_vggt, 40, HW, torch.float32, None, None, 10**5)
    budget = next(b for b in range(10**6, 10**9, 10**5) if _fits(golden_vggt, 10, b, 2))
    with pytest.raises(
        ValueError, match=r"chunks of 30 frames of 56x42 do not fit in max_memory=.*; use chunk_size="
    ):
        plan_run(golden_vggt, 40, HW, torch.float32, 30, None, budget)


def test_given_chunks(golden_vggt) -> None:
    plan = plan_run(golden_vggt, 40, HW, torch.float32, 16, 6, None)
    assert plan.chunked and plan.spans == chunk_spans(40, 16, 6) and plan.model_budget is None
    assert not plan_run(golden_vggt, 40, HW, torch.float32, 40, None, None).chunked  # one chunk is one pass


def test_one_chunk_over_every_frame_is_checked_against_the_budget(golden_vggt) -> None:
    budget = next(b for b in range(10**6, 10**9, 10**5) if _fits(golden_vggt, 10, b, default_overlap(10)))
    with pytest.raises(
        ValueError, match=r"chunks of 40 frames of 56x42 do not fit in max_memory=.*; use chunk_size="
    ):
        plan_run(golden_vggt, 40, HW, torch.float32, 64, None, budget)
    plan = plan_run(golden_vggt, 40, HW, torch.float32, 64, None, 10**12)
    assert not plan.chunked and plan.model_budget is not None
