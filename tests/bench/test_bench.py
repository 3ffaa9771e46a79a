"""The benchmark's FLOP count, comparisons, reports and the `vggtkit bench` command (tiny models only)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vggtkit import VGGT, tiny_config
from vggtkit.bench import (
    Case,
    PathSpec,
    forward_flops,
    markdown_table,
    memory_growth,
    parse_size,
    random_model,
    run_case,
)
from vggtkit.bench.measure import compare_outputs
from vggtkit.cli import main
from vggtkit.inference import ExecutionPlan


def _sdpa_flops(query_shape, key_shape, *args, **kwargs) -> int:
    """torch's counter has no formula for the CPU attention kernel: 2 matrix products of Lq x Lk x D."""
    B, H, Lq, D = query_shape
    return 4 * B * H * Lq * key_shape[-2] * D


SDPA_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}


@pytest.mark.parametrize(
    ("overrides", "shape"),
    [({}, (1, 3, 42, 70)), ({"patch_embed": "conv", "enable_point": False}, (2, 2, 56, 28))],
)
def test_flop_estimate_matches_torch_flop_counter(overrides, shape):
    config = tiny_config(enable_track=False, **overrides)
    model = VGGT(config).eval()
    B, S, H, W = shape
    counter = FlopCounterMode(display=False, custom_mapping=SDPA_FLOPS)
    with counter:
        model(torch.rand(B, S, 3, H, W), options=ExecutionPlan())
    assert sum(forward_flops(config, B, S, H, W).values()) == counter.get_total_flops()


def test_random_model_is_finite_and_deterministic():
    a, b = random_model(tiny_config(), seed=3), random_model(tiny_config(), seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert all(torch.isfinite(p).all() for p in a.parameters())
    with torch.no_grad():
        out = a(torch.rand(2, 3, 28, 28))
    assert torch.isfinite(out["depth"]).all()


def test_path_spec_parse():
    assert PathSpec.parse("reference").options.reference_path
    spec = PathSpec.parse("bfloat16+heads+store")
    assert spec.options.heads_dtype == torch.bfloat16 and spec.options.store_layers_dtype == torch.bfloat16
    assert PathSpec.parse("bf16+weights").options.weights_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown path flag"):
        PathSpec.parse("float32+turbo")
    with pytest.raises(ValueError, match="float32, bfloat16"):
        PathSpec.parse("int8")


def test_parse_size():
    assert parse_size("518x392") == (392, 518)
    for bad in ("518", "axb", "0x14"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_compare_outputs():
    ref = {"depth": torch.ones(1, 2, 3, 3, 1) * 2, "pose_enc": torch.zeros(1, 2, 9)}
    ours = {"depth": ref["depth"] * 1.01, "pose_enc": ref["pose_enc"] + 0.5}
    err = compare_outputs(ours, ref)
    assert err["max_abs_diff"] == pytest.approx(0.5)
    assert err["depth_median_rel_err"] == pytest.approx(0.01, rel=1e-4)
    assert err["pose_max_abs_err"] == pytest.approx(0.5)
    bad = {"depth": ref["depth"].clone(), "pose_enc": ref["pose_enc"]}
    bad["depth"][0, 0, 0, 0] = float("nan")
    assert compare_outputs(bad, ref)["max_abs_diff"] == math.inf


def test_run_case_in_process_and_reports():
    rows = run_case(Case("tiny", "cpu", 2, 28, 42, ("reference", "float32", "bfloat16")))
    assert [r["path"] for r in rows] == ["reference", "float32", "bfloat16"]
    ref, fast, bf16 = rows
    assert fast["max_rel_diff"] <= 1e-5 and 0 < bf16["max_rel_diff"] < 0.1
    assert ref["speedup_vs_reference"] == 1 and fast["total_s"] > 0 and fast["gflop"] > 0
    assert all(r["peak_delta_mb"] >= 0 for r in rows)
    table = markdown_table(rows)
    assert table.count("\n") == 4 and "| tiny | 2 | 42x28 | bfloat16 |" in table
    more = [
        {**r, "frames": 4, "peak_delta_mb": r["peak_delta_mb"] + (10 if r["path"] == "reference" else 2)}
        for r in rows
    ]
    growth = {g["path"]: g for g in memory_growth(rows + more)}
    assert growth["reference"]["mb_per_frame"] == pytest.approx(5)
    assert growth["float32"]["growth_ratio_vs_reference"] == pytest.approx(5)


def test_bench_command_writes_results(tmp_path, capsys):
    code = main(["bench", "--config", "tiny", "--frames", "1", "2", "--size", "42x28", "--paths", "reference",
                 "float32", "--no-isolate", "--out", str(tmp_path), "--name", "t"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "| tiny | 2 | 42x28 | float32 |" in printed and "memory growth per extra frame" in printed
    payload = json.loads((tmp_path / "t.json").read_text())
    assert len(payload["rows"]) == 4 and payload["machine"]["torch"] == torch.__version__
    assert (tmp_path / "t.csv").read_text().startswith("config,")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "500x392"], "multiple of the patch size"),
        (["--paths", "float64"], "float32, bfloat16"),
        (["--frames", "0"], "positive"),
        (["--max-memory", "lots"], "memory size"),
    ],
)
def test_bench_command_rejects_bad_arguments(tmp_path, capsys, args, message):
    assert main(["bench", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
