"""The forward benchmark runs VGGT-Omega: its FLOP count, random-weight models, cases and the command's checks."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vggtkit import VGGTOmega
from vggtkit.bench import Case, bench_config, forward_flops, random_model, run_case
from vggtkit.bench.measure import stage_times
from vggtkit.cli import main
from vggtkit.inference import ExecutionPlan
from vggtkit.models.omega import omega_preset_config


def _sdpa_flops(query_shape, key_shape, *args, **kwargs) -> int:
    """torch's counter has no formula for the CPU attention kernel: 2 matrix products of Lq x Lk x D."""
    B, H, Lq, D = query_shape
    return 4 * B * H * Lq * key_shape[-2] * D


SDPA_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}


@pytest.mark.parametrize(
    ("overrides", "shape"),
    [({}, (1, 3, 48, 80)), ({"enable_alignment": False, "patch_size": 8}, (2, 2, 37, 29))],
)
def test_flop_estimate_matches_torch_flop_counter(overrides, shape):
    config = omega_preset_config("tiny", **overrides)
    model = VGGTOmega(config).eval()
    B, S, H, W = shape
    counter = FlopCounterMode(display=False, custom_mapping=SDPA_FLOPS)
    with counter, torch.no_grad():
        model(torch.rand(B, S, 3, H, W), options=ExecutionPlan())
    flops = forward_flops(config, B, S, H, W)
    assert sum(flops.values()) == counter.get_total_flops()
    assert ("text_head" in flops) == config.enable_alignment


def test_random_omega_model_is_finite_and_deterministic():
    config = bench_config("omega-tiny")
    a, b = random_model(config, seed=3), random_model(config, seed=3)
    assert isinstance(a, VGGTOmega)
    assert all(
        torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert torch.equal(a.aggregator.rope_embed.periods, VGGTOmega(config).aggregator.rope_embed.periods)
    with torch.no_grad():
        out = a(torch.rand(2, 3, 32, 48))
    assert all(torch.isfinite(out[k]).all() for k in ("pose_enc", "depth", "text_alignment_embedding"))


def test_omega_1b_preset_is_the_released_model():
    with torch.device("meta"):
        model = VGGTOmega(bench_config("omega-1b"))
    assert sum(t.numel() for t in model.state_dict().values()) == 1_144_059_977


def test_run_case_in_process():
    rows = run_case(Case("omega-tiny", "cpu", 2, 40, 56, ("reference", "float32", "bfloat16")))
    ref, fast, bf16 = rows
    assert fast["max_rel_diff"] <= 1e-5 and 0 < bf16["max_rel_diff"] < 0.2
    assert fast["text_head_s"] > 0 and fast["depth_head_s"] > 0 and fast["gflop"] > 0
    assert ref["config"] == "omega-tiny"


def test_stage_times_follow_the_heads():
    config = bench_config("omega-tiny")
    steps = [1.0] + [0.5] * (2 * config.depth) + [2.0, 3.0, 4.0]
    assert stage_times(steps, config) == {
        "patch_embed": 1.0, "aggregator": config.depth * 1.0, "camera_head": 2.0, "depth_head": 3.0, "text_head": 4.0
    }  # fmt: skip


def test_bench_command_runs_omega_and_checks_its_sizes(tmp_path, capsys):
    code = main(["bench", "--config", "omega-tiny", "--frames", "1", "--size", "53x37", "--paths", "float32",
                 "--no-isolate", "--out", str(tmp_path), "--name", "t"])  # fmt: skip
    assert code == 0
    assert "| omega-tiny | 1 | 53x37 | float32 |" in capsys.readouterr().out
    for args, message in [(["--config", "omega-2b"], "unknown benchmark configuration"),
                          (["--config", "omega-tiny", "--size", "64x8"], "no whole 16x16 patch"),
                          (["--config", "1b", "--size", "500x392"], "multiple of the patch size 14")]:  # fmt: skip
        assert main(["bench", "--out", str(tmp_path), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_omega_gpu_check_command_runs_quick_on_cpu(tmp_path, capsys):
    from vggtkit.bench.omega_gpu_check import main as gpu_check

    assert gpu_check(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| lean plan float32 | 0 | 0 |" in printed  # bit-identical tokens and poses on the golden fixture
    assert "| omega-tiny | 48x32 | 2 |" in printed and "| tiny | 42x28 | 2 |" in printed
    assert (tmp_path / "gpu_check.md").is_file() and (tmp_path / "gpu_check.json").is_file()
