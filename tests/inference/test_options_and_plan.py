"""InferenceOptions, the planner and the `infer` helper (the numbers of every plan are checked in
tests/models/test_execution_plans.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vggtkit import VGGT, VGGTConfig, tiny_config
from vggtkit.inference import ExecutionPlan, InferenceOptions, ModelDims, as_options, infer, plan_inference
from vggtkit.utils.dtypes import parse_dtype
from vggtkit.utils.memory import format_bytes, parse_memory

CPU = torch.device("cpu")
DIMS_1B = ModelDims(patch_size=14, special_tokens=5, embed_dim=1024, kept_layers=4, dense_features=256)


@pytest.mark.parametrize(
    ("text", "dtype"),
    [
        ("float32", torch.float32),
        ("bf16", torch.bfloat16),
        ("torch.float16", torch.float16),
        (torch.bfloat16, torch.bfloat16),
    ],
)
def test_parse_dtype(text, dtype):
    assert parse_dtype(text) == dtype


@pytest.mark.parametrize("bad", ["float64", "int8", "", torch.float64, 3])
def test_parse_dtype_rejects(bad):
    with pytest.raises(ValueError, match="float32, bfloat16"):
        parse_dtype(bad)


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("8GB", 8_000_000_000),
        ("6 GiB", 6 * 2**30),
        ("512mb", 512_000_000),
        (1234, 1234),
        ("2.5e3", 2500),
        (1.5e9, 1_500_000_000),
    ],
)
def test_parse_memory(text, n):
    assert parse_memory(text) == n


@pytest.mark.parametrize("bad", ["lots", "8 parsecs", "-1GB", 0, -5, True, "GB"])
def test_parse_memory_rejects(bad):
    with pytest.raises(ValueError, match="max_memory|memory size"):
        parse_memory(bad)


def test_options_normalise_and_validate():
    o = InferenceOptions(dtype="bf16", heads_dtype="float32", max_memory="1GB", weights_dtype="float32")
    assert o.dtype == torch.bfloat16 and o.heads_dtype == torch.float32 and o.max_memory == 1_000_000_000
    assert o.weights_dtype is None  # float32 weights are no conversion
    assert o.effective_store_dtype == torch.bfloat16
    assert InferenceOptions().effective_store_dtype == torch.float32
    assert InferenceOptions().effective_heads_dtype == torch.float32
    assert o.to_dict()["dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="frame_chunk_size"):
        InferenceOptions(frame_chunk_size=0)
    with pytest.raises(ValueError, match="query_chunk_size"):
        InferenceOptions(query_chunk_size=2.5)
    with pytest.raises(ValueError, match="heads_dtype"):
        InferenceOptions(heads_dtype="int8")
    with pytest.raises(ValueError, match="reference plan"):
        InferenceOptions(reference_path=True, dtype="bfloat16")
    with pytest.raises(ValueError, match="reference plan"):
        InferenceOptions(reference_path=True, frame_chunk_size=2)
    assert InferenceOptions.reference().reference_path


def test_as_options():
    assert as_options(None) is None
    assert as_options("bfloat16") == InferenceOptions(dtype=torch.bfloat16)
    assert as_options(torch.float32) == InferenceOptions()
    assert as_options(ExecutionPlan.reference()) == ExecutionPlan(keep_all_layers=True)
    with pytest.raises(ValueError, match="options must be"):
        as_options(3)


def test_format_bytes():
    assert format_bytes(1.5e9) == "1.50 GB"
    assert format_bytes(2_345_678) == "2.35 MB"
    assert format_bytes(2_341_000, up=True) == "2.35 MB"


def test_default_plan_for_vggt_1b_keeps_chunks_small():
    plan = plan_inference(DIMS_1B, (1, 8, 3, 392, 518), InferenceOptions(), CPU, weights_bytes=5_000_000_000)
    assert plan.head_chunk == 1  # one 518x392 DPT pass is ~0.3 GB
    assert 1 <= plan.frame_chunk <= 8 and plan.token_chunk == 2048
    assert 32 <= plan.head_rows < 392  # the full-resolution DPT stages run in bands
    assert plan.store_dtype == torch.float32 and plan.channels_last  # faster on CPUs
    assert plan.release_memory  # on CPUs unless turned off; never on GPUs
    off = InferenceOptions(release_memory=False)
    assert not plan_inference(DIMS_1B, (1, 8, 3, 392, 518), off, CPU).release_memory
    gpu = plan_inference(DIMS_1B, (1, 8, 3, 392, 518), InferenceOptions(), torch.device("cuda"))
    assert not gpu.release_memory
    bf16_heads = InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16")
    assert not plan_inference(DIMS_1B, (1, 8, 3, 392, 518), bf16_heads, CPU).release_memory
    forced = dataclasses.replace(bf16_heads, release_memory=True)
    assert plan_inference(DIMS_1B, (1, 8, 3, 392, 518), forced, CPU).release_memory
    bf16 = plan_inference(DIMS_1B, (1, 8, 3, 392, 518), InferenceOptions(dtype="bfloat16"), CPU)
    assert bf16.store_dtype == torch.bfloat16 and bf16.estimated_bytes < plan.estimated_bytes - 5_000_000_000


def test_plan_grows_chunks_with_the_budget_and_fixed_chunks_win():
    config, shape = DIMS_1B, (2, 10, 3, 392, 518)
    gpu = torch.device("cuda")  # planning only: no GPU needed
    small = plan_inference(config, shape, InferenceOptions(max_memory="8GB"), gpu, 5_000_000_000)
    large = plan_inference(config, shape, InferenceOptions(max_memory="40GB"), gpu, 5_000_000_000)
    assert small.head_chunk < large.head_chunk <= 8
    on_cpu = plan_inference(config, shape, InferenceOptions(max_memory="40GB"), CPU, 5_000_000_000)
    assert on_cpu.head_chunk == 1  # larger DPT passes are slower on CPUs
    assert small.estimated_bytes <= 8e9
    fixed = plan_inference(config, shape, InferenceOptions(frame_chunk_size=3, query_chunk_size=100), CPU)
    assert (fixed.frame_chunk, fixed.head_chunk, fixed.token_chunk) == (3, 3, 100)


def test_plan_refuses_a_budget_below_the_weights():
    with pytest.raises(ValueError, match=r"weights take 5.00 GB"):
        plan_inference(DIMS_1B, (1, 4, 3, 392, 518), InferenceOptions(max_memory="4GB"), CPU, 5_000_000_000)


def test_infer_runs_in_inference_mode_and_restores_training_mode():
    torch.manual_seed(0)
    from vggtkit import VGGT

    model = VGGT(tiny_config(enable_track=False)).train()
    out = infer(model, torch.rand(2, 3, 28, 28), options="float32")
    assert model.training
    assert out["depth"].shape == (1, 2, 28, 28, 1) and out["depth"].is_inference()


def test_convert_weights_converts_only_what_runs_in_that_dtype():
    model = VGGT(tiny_config())
    model.convert_weights(InferenceOptions(dtype="bfloat16", weights_dtype="bfloat16"))
    assert model.aggregator.global_blocks[0].mlp.fc1.weight.dtype == torch.bfloat16
    assert model.camera_head.trunk[0].attn.qkv.weight.dtype == torch.float32
    model.convert_weights(
        InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16", weights_dtype="bfloat16")
    )
    assert model.camera_head.trunk[0].attn.qkv.weight.dtype == torch.bfloat16
    assert model.track_head.feature_extractor.norm.weight.dtype == torch.bfloat16
    assert model.track_head.tracker.corr_mlp.fc1.weight.dtype == torch.float32  # the tracker stays float32


def test_vggt_1b_dims_for_the_planner():
    with torch.device("meta"):
        model = VGGT(VGGTConfig())
    assert model.dims() == DIMS_1B
    assert model.dims(keep_all_layers=True).kept_layers == 24


def test_gpu_plans_attend_over_all_queries_when_memory_allows():
    gpu = torch.device("cuda")  # planning only: no GPU needed
    shape = (1, 200, 3, 392, 518)
    roomy = plan_inference(DIMS_1B, shape, InferenceOptions(dtype="bfloat16"), gpu, 2_500_000_000,
                           available_bytes=100_000_000_000)  # fmt: skip
    assert roomy.token_chunk is None and roomy.frame_chunk > 1 and roomy.head_chunk == 8
    assert not roomy.release_memory and not roomy.channels_last  # float32 heads
    bf16_heads = InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16")
    assert plan_inference(DIMS_1B, shape, bf16_heads, gpu, available_bytes=100_000_000_000).channels_last
    tight = plan_inference(
        DIMS_1B, shape, InferenceOptions(dtype="bfloat16", max_memory="12GB"), gpu, 2_500_000_000
    )
    assert tight.token_chunk is not None and tight.estimated_bytes <= 12e9


def test_autograd_plans_run_out_of_place_without_chunks():
    plan = plan_inference(DIMS_1B, (1, 4, 3, 392, 518), InferenceOptions(), CPU, autograd=True)
    assert not plan.in_place and plan.token_chunk is None and plan.frame_chunk is None
    assert not plan.release_memory and plan.head_chunk == 8
    asked = plan_inference(
        DIMS_1B, (1, 4, 3, 392, 518), InferenceOptions(query_chunk_size=64), CPU, autograd=True
    )
    assert asked.token_chunk == 64 and not asked.in_place


def test_plans_validate_themselves():
    with pytest.raises(ValueError, match="token_chunk"):
        ExecutionPlan(token_chunk=0)
    with pytest.raises(ValueError, match="checkpointing"):
        ExecutionPlan(in_place=True, gradient_checkpointing=True)
