"""Every execution plan computes the same function: lean plans against the plain reference plan and the golden
fixture; reduced precision within the official code's own drift; plan resolution and its errors."""

from __future__ import annotations

import pytest
import torch

from _golden import GOLDEN_TOL, assert_golden, golden_config_dict, golden_model, load_golden
from vggtkit import VGGT, VGGTConfig, tiny_config
from vggtkit.inference import ExecutionPlan, InferenceOptions, infer, plan_inference, weights_nbytes
from vggtkit.models.vggt import aggregator as aggregator_module
from vggtkit.models.vggt.heads import dpt as dpt_module

DENSE = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
# Official code under bfloat16 autocast on the CPU, against its float32 outputs.
OFFICIAL_BF16_DEPTH_MEDIAN_REL = 0.005
OFFICIAL_BF16_POSE_ABS = 0.1


@pytest.fixture(scope="module")
def golden_vggt(device):
    """The golden model on the device under test ($VGGTKIT_TEST_DEVICE)."""
    return golden_model().to(device)


def golden_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = load_golden()
    return torch.from_numpy(g["images"]), torch.from_numpy(g["query_points"])


def run(model: VGGT, images: torch.Tensor, queries: torch.Tensor | None = None, **kwargs) -> dict:
    """The model on (images, queries) moved to its device, without autograd."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(images.to(device), None if queries is None else queries.to(device), **kwargs)


def assert_matches(ours: dict, ref: dict, tol: float = 1e-5, track_px: float = 1e-2) -> None:
    for key in DENSE:
        if key in ref:
            torch.testing.assert_close(ours[key], ref[key], rtol=tol, atol=tol, msg=key)
    for a, b in zip(ours.get("pose_enc_list", []), ref.get("pose_enc_list", []), strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    if "track" in ref:
        assert (ours["track"] - ref["track"]).abs().max() <= track_px
        torch.testing.assert_close(ours["vis"], ref["vis"], rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(ours["conf"], ref["conf"], rtol=1e-3, atol=1e-3)
    assert set(ours) == set(ref)
    for key in DENSE:
        if key in ours:
            assert ours[key].dtype == torch.float32, key


@pytest.fixture(scope="module")
def golden_reference(golden_vggt):
    images, queries = golden_inputs()
    return run(golden_vggt, images, queries, options=ExecutionPlan.reference())


# ----------------------------------------------------------------------------- golden fixture
def test_reference_plan_keeps_every_layer_and_matches_golden(golden_vggt, golden_reference):
    g = load_golden()
    for key in DENSE:
        assert_golden(key, golden_reference[key], g[key])
    images, queries = golden_inputs()
    same = run(golden_vggt, images, queries, options=InferenceOptions.reference())
    for key in DENSE:
        assert torch.equal(same[key], golden_reference[key]), key  # the options spelling is the same plan


def test_lean_plan_is_the_default_and_matches_reference_and_golden(golden_vggt, golden_reference, device):
    images, queries = golden_inputs()
    out = run(golden_vggt, images, queries)
    assert_matches(out, golden_reference)
    g = load_golden()
    for key in DENSE:
        assert_golden(key, out[key], g[key])
    assert (out["track"].cpu().numpy() - g["track"]).__abs__().max() <= 0.1
    with torch.no_grad():
        plan = golden_vggt.plan(images.to(device))
    assert plan.in_place and not plan.keep_all_layers
    # CPUs attend in chunks of queries; GPUs over all queries at once when memory allows.
    assert (plan.token_chunk is not None) == (device.type == "cpu")


def test_lean_plan_keeps_all_layers_on_request(golden_vggt):
    images, queries = golden_inputs()
    ref = run(golden_vggt, images, queries, return_all_layers=True, options=ExecutionPlan.reference())
    lean = run(
        golden_vggt, images, queries, return_all_layers=True, options=InferenceOptions(frame_chunk_size=2)
    )
    assert (
        len(lean["aggregated_tokens_list"]) == len(ref["aggregated_tokens_list"]) == golden_vggt.config.depth
    )
    g = load_golden()
    for i, (a, b) in enumerate(
        zip(lean["aggregated_tokens_list"], ref["aggregated_tokens_list"], strict=True)
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert_golden(f"aggregated_{i}", a, g[f"aggregated_{i}"])


def test_only_head_layers_are_stored(golden_vggt, device):
    images = torch.rand(1, 3, 3, 28, 42, device=device)
    with torch.no_grad():
        tokens, _ = golden_vggt.aggregator(images, golden_vggt.plan(images))
    assert [i for i, t in enumerate(tokens) if t is not None] == list(golden_vggt.config.head_layers)
    with torch.no_grad():
        tokens, _ = golden_vggt.aggregator(images, ExecutionPlan())
    assert [i for i, t in enumerate(tokens) if t is not None] == list(golden_vggt.config.head_layers)


# ----------------------------------------------------------------------------- chunking and shapes
@pytest.mark.parametrize(
    ("batch", "frames", "hw", "options"),
    [
        (2, 5, (42, 70), InferenceOptions(frame_chunk_size=3, query_chunk_size=13)),  # chunks divide nothing
        (1, 4, (70, 28), InferenceOptions(frame_chunk_size=1, query_chunk_size=7)),  # portrait, tiny chunks
        (2, 1, (28, 28), InferenceOptions()),  # one frame per sequence
        (1, 3, (42, 56), InferenceOptions(channels_last=True)),
    ],
)
def test_lean_float32_matches_reference(golden_vggt, batch, frames, hw, options):
    gen = torch.Generator().manual_seed(frames)
    images = torch.rand(batch, frames, 3, *hw, generator=gen)
    queries = torch.rand(batch, 4, 2, generator=gen) * torch.tensor([hw[1] - 1, hw[0] - 1])
    ref = run(golden_vggt, images, queries, options=ExecutionPlan.reference())
    lean = run(golden_vggt, images, queries, options=options)
    assert_matches(lean, ref, tol=2e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        {"patch_embed": "conv", "enable_track": False},
        {"aa_block_size": 2, "aa_order": ("global", "frame")},
        {"num_register_tokens": 0, "enable_point": False, "enable_camera": False},
        {"dpt_layers": (0, 0, 1, 2), "depth": 4, "enable_depth": False},
    ],
)
def test_model_variants_match_reference(overrides, device):
    torch.manual_seed(0)
    model = VGGT(tiny_config(**overrides)).to(device).eval()
    images = torch.rand(1, 3, 3, 28, 42)
    queries = torch.tensor([[3.0, 5.0], [30.0, 20.0]])
    ref = run(model, images, queries, options=ExecutionPlan.reference())
    lean = run(model, images, queries, options=InferenceOptions(frame_chunk_size=2, query_chunk_size=11))
    assert_matches(lean, ref, tol=2e-5)


def test_an_explicit_plan_is_followed(golden_vggt, golden_reference):
    images, queries = golden_inputs()
    plan = ExecutionPlan(
        frame_chunk=1, sequence_chunk=1, token_chunk=9, head_chunk=1, head_rows=5, in_place=True
    )
    assert_matches(run(golden_vggt, images, queries, options=plan), golden_reference)


# ----------------------------------------------------------------------------- reduced precision
@pytest.mark.parametrize(
    "options",
    [
        InferenceOptions(dtype="bfloat16"),
        InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16"),
        InferenceOptions(dtype=torch.bfloat16, store_layers_dtype="float32", frame_chunk_size=1),
    ],
)
def test_bfloat16_drift_is_within_the_official_codes(golden_vggt, golden_reference, options):
    images, queries = golden_inputs()
    out = run(golden_vggt, images, queries, options=options)
    rel = (out["depth"] - golden_reference["depth"]).abs() / golden_reference["depth"].abs()
    assert rel.median() <= OFFICIAL_BF16_DEPTH_MEDIAN_REL
    assert (out["pose_enc"] - golden_reference["pose_enc"]).abs().max() <= OFFICIAL_BF16_POSE_ABS
    assert rel.median() > 1e-6  # really computed in reduced precision
    for key in DENSE:
        assert out[key].dtype == torch.float32 and torch.isfinite(out[key]).all(), key


def test_bfloat16_weights_through_infer_helper(golden_reference, device):
    model = golden_model().to(device)
    images, queries = golden_inputs()
    options = InferenceOptions(dtype="bfloat16", weights_dtype="bfloat16")
    out = infer(model, images[0], queries[0], options=options)
    assert model.aggregator.frame_blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert model.depth_head.projects[0].weight.dtype == torch.float32  # heads stay float32
    rel = (out["depth"].to(device) - golden_reference["depth"]).abs() / golden_reference["depth"].abs()
    assert rel.median() <= OFFICIAL_BF16_DEPTH_MEDIAN_REL
    # The reference plan computes in float32 from the converted (rounded) weights.
    ref_from_bf16 = run(model, images, options=ExecutionPlan.reference())
    assert ref_from_bf16["depth"].dtype == torch.float32


def test_ambient_autocast_selects_its_dtype(golden_vggt, golden_reference, device):
    images, _ = golden_inputs()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = run(golden_vggt, images)
    assert out["depth"].dtype == torch.float32
    assert not torch.equal(out["depth"], golden_reference["depth"])
    torch.testing.assert_close(out["depth"], golden_reference["depth"], rtol=0.05, atol=0.05)


def test_dtype_string_shorthand(golden_vggt):
    images = torch.rand(2, 3, 28, 28)
    a = run(golden_vggt, images, options="bfloat16")
    b = run(golden_vggt, images, options=InferenceOptions(dtype=torch.bfloat16))
    torch.testing.assert_close(a["depth"], b["depth"], rtol=0, atol=0)


# ----------------------------------------------------------------------------- autograd, errors
def test_in_place_plans_refuse_autograd(golden_vggt, device):
    plan = ExecutionPlan(in_place=True)
    with pytest.raises(ValueError, match="no_grad"):
        golden_vggt(torch.rand(2, 3, 28, 28, device=device), options=plan)


@pytest.mark.parametrize("options", [None, InferenceOptions(frame_chunk_size=1, query_chunk_size=7)])
def test_gradients_flow_through_every_plan_that_autograd_allows(options, device):
    torch.manual_seed(0)
    config = VGGTConfig(**{**golden_config_dict(), "enable_track": False})
    model = VGGT(config).to(device).train()
    images = torch.rand(1, 2, 3, 28, 28, device=device, requires_grad=True)
    out = model(images, options=options)
    plan = model.plan(images.detach(), options)
    assert not plan.in_place and not plan.release_memory
    sum(out[key].mean() for key in DENSE).backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()
    for name, p in model.named_parameters():
        if p.requires_grad and "mask_token" not in name:
            assert p.grad is not None, name


def test_chunked_autograd_equals_unchunked_gradients():
    torch.manual_seed(0)
    model = VGGT(tiny_config(enable_track=False, enable_point=False)).train()
    images = torch.rand(1, 3, 3, 28, 42)

    def grads(options):
        model.zero_grad()
        model(images, options=options)["depth"].mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, chunked = grads(None), grads(InferenceOptions(frame_chunk_size=1, query_chunk_size=5))
    assert plain.keys() == chunked.keys()
    for name in plain:
        torch.testing.assert_close(chunked[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = VGGT(tiny_config(enable_track=False)).train()
    images = torch.rand(1, 2, 3, 28, 28)

    def grads(plan):
        model.zero_grad()
        model(images, options=plan)["depth"].mean().backward()
        return [p.grad.clone() for p in model.aggregator.parameters() if p.grad is not None]

    for a, b in zip(grads(ExecutionPlan()), grads(ExecutionPlan(gradient_checkpointing=True)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_float16_is_refused_on_cpu(golden_vggt, device):
    if device.type != "cpu":
        pytest.skip("float16 is a GPU precision")
    with pytest.raises(ValueError, match="use bfloat16 on CPU"):
        run(golden_vggt, torch.rand(2, 3, 28, 28), options="float16")


def test_memory_budget_picks_chunks_and_keeps_results(golden_vggt, device):
    if device.type != "cpu":
        pytest.skip("the numbers below are the CPU plan's")
    images = torch.rand(1, 6, 3, 56, 42)
    shape, weights = tuple(images.shape), weights_nbytes(golden_vggt)
    dims = golden_vggt.dims()
    roomy = plan_inference(dims, shape, InferenceOptions(max_memory="1GB"), images.device, weights)
    options = InferenceOptions(max_memory=weights + 2_000_000)
    tight = plan_inference(dims, shape, options, images.device, weights)
    assert (
        roomy.frame_chunk == 6 and roomy.head_chunk == 1 and roomy.token_chunk == 2048
    )  # 1 frame per head pass
    assert tight.token_chunk < 2048 and tight.estimated_bytes <= weights + 2_000_000
    assert_matches(
        run(golden_vggt, images, options=options), run(golden_vggt, images, options="float32"), tol=1e-6
    )


def test_too_small_memory_budget_names_the_minimum(golden_vggt):
    with pytest.raises(ValueError, match=r"too small .* raise it to"):
        run(golden_vggt, torch.rand(2, 3, 28, 28), options=InferenceOptions(max_memory=1000))


def test_progress_reports_every_step(golden_vggt):
    calls: list[tuple[int, int]] = []
    for options in (InferenceOptions(), ExecutionPlan.reference()):
        calls.clear()
        run(
            golden_vggt, torch.rand(2, 3, 28, 28), options=options, progress=lambda d, t: calls.append((d, t))
        )
        total = 1 + 2 * golden_vggt.config.depth + 3
        assert calls == [(i, total) for i in range(1, total + 1)]


def test_release_memory_trims_before_the_last_layer_and_each_dense_pass(
    golden_vggt, golden_reference, monkeypatch, device
):
    if device.type != "cpu":
        pytest.skip("heap pages are given back on CPUs only")
    calls: list[str] = []
    monkeypatch.setattr(aggregator_module, "release_free_memory", lambda: calls.append("aggregator"))
    monkeypatch.setattr(dpt_module, "release_free_memory", lambda: calls.append("dpt"))
    images, queries = golden_inputs()
    ours = run(golden_vggt, images, queries, options=InferenceOptions(frame_chunk_size=1))
    assert_matches(ours, golden_reference)
    frames, dpt_passes = images.shape[-4], 3  # depth, points, track features; 28-row images: one band each
    assert calls.count("aggregator") == 2  # the last layer's frame and global blocks
    assert calls.count("dpt") == dpt_passes * frames * 2  # before each frame's pass and its band
    calls.clear()
    run(golden_vggt, images, queries, options=InferenceOptions(release_memory=False))
    assert calls == []


def test_golden_tolerance_constant_unchanged():
    assert GOLDEN_TOL == 1e-4
