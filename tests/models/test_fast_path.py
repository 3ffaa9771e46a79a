"""The fast inference path against its oracle, the reference path, and against the golden fixture."""

from __future__ import annotations

import pytest
import torch

from _golden import GOLDEN_TOL, assert_golden, golden_config_dict, golden_model, load_golden
from vggtkit import VGGT, VGGTConfig, tiny_config
from vggtkit.inference import InferenceOptions, infer
from vggtkit.layers import Block, RotaryPositionEmbedding2D, patch_positions
from vggtkit.layers.fast_block import block_forward_
from vggtkit.layers.rope import apply_rope_, rope_tables
from vggtkit.models.vggt import aggregator as aggregator_module
from vggtkit.models.vggt.heads import dpt_fast as dpt_fast_module
from vggtkit.models.vggt.heads.dpt import DPTHead, add_uv_position_embedding_
from vggtkit.models.vggt.heads.dpt_fast import dpt_forward_fast

DENSE = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
# Official code under bfloat16 autocast on the CPU, against its float32 outputs (the numbers).
OFFICIAL_BF16_DEPTH_MEDIAN_REL = 0.005
OFFICIAL_BF16_POSE_ABS = 0.1


def golden_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = load_golden()
    return torch.from_numpy(g["images"]), torch.from_numpy(g["query_points"])


def run(model: VGGT, images: torch.Tensor, queries: torch.Tensor | None = None, **kwargs) -> dict:
    with torch.no_grad():
        return model(images, queries, **kwargs)


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
    return run(golden_vggt, images, queries, options=InferenceOptions.reference())


# ----------------------------------------------------------------------------- golden fixture
def test_reference_path_keeps_every_layer_and_matches_golden(golden_reference):
    g = load_golden()
    for key in DENSE:
        assert_golden(key, golden_reference[key], g[key])


def test_fast_path_is_the_default_and_matches_reference_and_golden(golden_vggt, golden_reference):
    images, queries = golden_inputs()
    out = run(golden_vggt, images, queries)
    assert_matches(out, golden_reference)
    g = load_golden()
    for key in DENSE:
        assert_golden(key, out[key], g[key])
    assert (out["track"].numpy() - g["track"]).__abs__().max() <= 0.1


def test_fast_path_keeps_all_layers_on_request(golden_vggt):
    images, queries = golden_inputs()
    ref = run(golden_vggt, images, queries, return_all_layers=True, options=InferenceOptions.reference())
    fast = run(
        golden_vggt, images, queries, return_all_layers=True, options=InferenceOptions(frame_chunk_size=2)
    )
    assert (
        len(fast["aggregated_tokens_list"]) == len(ref["aggregated_tokens_list"]) == golden_vggt.config.depth
    )
    for a, b in zip(fast["aggregated_tokens_list"], ref["aggregated_tokens_list"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    g = load_golden()
    for i, tokens in enumerate(fast["aggregated_tokens_list"]):
        assert_golden(f"aggregated_{i}", tokens, g[f"aggregated_{i}"])


def test_only_head_layers_are_stored(golden_vggt):
    from vggtkit.inference import plan_inference

    images = torch.rand(1, 3, 3, 28, 42)
    plan = plan_inference(golden_vggt.config, tuple(images.shape), InferenceOptions(), images.device)
    with torch.no_grad():
        tokens, _ = golden_vggt.aggregator.forward_fast(images, golden_vggt.config.head_layers, plan)
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
def test_fast_float32_matches_reference(golden_vggt, batch, frames, hw, options):
    gen = torch.Generator().manual_seed(frames)
    images = torch.rand(batch, frames, 3, *hw, generator=gen)
    queries = torch.rand(batch, 4, 2, generator=gen) * torch.tensor([hw[1] - 1, hw[0] - 1])
    ref = run(golden_vggt, images, queries, options=InferenceOptions.reference())
    fast = run(golden_vggt, images, queries, options=options)
    assert_matches(fast, ref, tol=2e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        {"patch_embed": "conv", "enable_track": False},
        {"aa_block_size": 2, "aa_order": ("global", "frame")},
        {"num_register_tokens": 0, "enable_point": False, "enable_camera": False},
        {"dpt_layers": (0, 0, 1, 2), "depth": 4, "enable_depth": False},
    ],
)
def test_model_variants_match_reference(overrides):
    torch.manual_seed(0)
    model = VGGT(tiny_config(**overrides)).eval()
    images = torch.rand(1, 3, 3, 28, 42)
    queries = torch.tensor([[3.0, 5.0], [30.0, 20.0]])
    ref = run(model, images, queries, options=InferenceOptions.reference())
    fast = run(model, images, queries, options=InferenceOptions(frame_chunk_size=2, query_chunk_size=11))
    assert_matches(fast, ref, tol=2e-5)


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


def test_bfloat16_weights_through_infer_helper(golden_reference):
    model = golden_model()
    images, queries = golden_inputs()
    options = InferenceOptions(dtype="bfloat16", weights_dtype="bfloat16")
    out = infer(model, images[0], queries[0], options=options)
    assert model.aggregator.frame_blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert model.depth_head.projects[0].weight.dtype == torch.float32  # heads stay float32
    rel = (out["depth"] - golden_reference["depth"]).abs() / golden_reference["depth"].abs()
    assert rel.median() <= OFFICIAL_BF16_DEPTH_MEDIAN_REL
    with pytest.raises(ValueError, match="reference path needs float32 weights"):
        run(model, images, options=InferenceOptions.reference())


def test_ambient_autocast_selects_its_dtype(golden_vggt, golden_reference):
    images, _ = golden_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(golden_vggt, images)
    assert out["depth"].dtype == torch.float32
    assert not torch.equal(out["depth"], golden_reference["depth"])
    torch.testing.assert_close(out["depth"], golden_reference["depth"], rtol=0.05, atol=0.05)


def test_dtype_string_shorthand(golden_vggt):
    images = torch.rand(2, 3, 28, 28)
    a = run(golden_vggt, images, options="bfloat16")
    b = run(golden_vggt, images, options=InferenceOptions(dtype=torch.bfloat16))
    torch.testing.assert_close(a["depth"], b["depth"], rtol=0, atol=0)


# ----------------------------------------------------------------------------- errors and modes
def test_fast_path_options_need_no_grad(golden_vggt):
    with pytest.raises(ValueError, match="no_grad"):
        golden_vggt(torch.rand(2, 3, 28, 28), options=InferenceOptions())


def test_grad_mode_without_options_uses_the_reference_path():
    model = VGGT(VGGTConfig(**{**golden_config_dict(), "enable_track": False})).eval()
    images = torch.rand(1, 2, 3, 28, 28, requires_grad=True)
    out = model(images)
    out["depth"].mean().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()


def test_float16_is_refused_on_cpu(golden_vggt):
    with pytest.raises(ValueError, match="use bfloat16 on CPU"):
        run(golden_vggt, torch.rand(2, 3, 28, 28), options="float16")


def test_memory_budget_picks_chunks_and_keeps_results(golden_vggt):
    from vggtkit.inference import plan_inference, weights_nbytes

    images = torch.rand(1, 6, 3, 56, 42)
    shape, weights = tuple(images.shape), weights_nbytes(golden_vggt)
    roomy = plan_inference(
        golden_vggt.config, shape, InferenceOptions(max_memory="1GB"), images.device, weights
    )
    options = InferenceOptions(max_memory=weights + 2_000_000)
    tight = plan_inference(golden_vggt.config, shape, options, images.device, weights)
    assert (
        roomy.frame_chunk == 6 and roomy.head_chunk == 1 and roomy.token_chunk == 2048
    )  # DPT: 1 frame on CPU
    assert tight.token_chunk < 2048 and tight.estimated_bytes <= weights + 2_000_000
    assert_matches(
        run(golden_vggt, images, options=options), run(golden_vggt, images, options="float32"), tol=1e-6
    )


def test_too_small_memory_budget_names_the_minimum(golden_vggt):
    with pytest.raises(ValueError, match=r"too small .* raise it to"):
        run(golden_vggt, torch.rand(2, 3, 28, 28), options=InferenceOptions(max_memory=1000))


def test_progress_reports_every_step(golden_vggt):
    calls: list[tuple[int, int]] = []
    run(
        golden_vggt,
        torch.rand(2, 3, 28, 28),
        options=InferenceOptions(),
        progress=lambda d, t: calls.append((d, t)),
    )
    total = 1 + 2 * golden_vggt.config.depth + 3
    assert calls == [(i, total) for i in range(1, total + 1)]
    calls.clear()
    run(
        golden_vggt,
        torch.rand(2, 3, 28, 28),
        options=InferenceOptions.reference(),
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[-1] == (total, total)


def test_release_memory_trims_before_the_last_layer_and_each_dpt_pass(
    golden_vggt, golden_reference, monkeypatch
):
    calls: list[str] = []
    monkeypatch.setattr(aggregator_module, "release_free_memory", lambda: calls.append("aggregator"))
    monkeypatch.setattr(dpt_fast_module, "release_free_memory", lambda: calls.append("dpt"))
    images, queries = golden_inputs()
    ours = run(golden_vggt, images, queries, options=InferenceOptions(frame_chunk_size=1))
    assert_matches(ours, golden_reference)
    frames, dpt_passes = images.shape[-4], 3  # depth, points, track features; 28-row images: one band each
    assert calls.count("aggregator") == 2  # the last layer's frame and global blocks
    assert calls.count("dpt") == dpt_passes * frames * 2  # before each frame's pass and its band
    calls.clear()
    run(golden_vggt, images, queries, options=InferenceOptions(release_memory=False))
    assert calls == []


# ----------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize(
    ("token_chunk", "mlp_chunk"), [(17, None), (17, 7), (17, 1), (1000, None), (1000, 13)]
)  # chunked and one-pass attention; MLP passes that do not divide the 60 tokens (or the 2 sequences)
def test_fast_block_equals_block_forward(token_chunk, mlp_chunk):
    torch.manual_seed(0)
    rope = RotaryPositionEmbedding2D(100)
    block = Block(64, 4, 4.0, 0.01, qk_norm=True, rope=rope).eval()
    pos = patch_positions(1, 3, 5, 5)
    x = torch.randn(2, 3 * 20, 64)
    with torch.no_grad():
        ref = block(x, pos=pos.repeat(2, 3, 1))
        tables = rope_tables(rope, pos[0], 16, torch.float32).repeat(3)
        fast = block_forward_(block, x.clone(), tables, token_chunk=token_chunk, mlp_chunk=mlp_chunk)
        whole_mlp = block_forward_(block, x.clone(), tables, token_chunk=token_chunk, mlp_chunk=10_000)
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fast, whole_mlp, rtol=1e-6, atol=1e-7)  # every token on its own: same numbers


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("feature_only", [False, True])
@pytest.mark.parametrize("hw", [(70, 98), (84, 42)])
def test_banded_dpt_equals_whole_maps_and_the_reference(channels_last, feature_only, hw):
    torch.manual_seed(0)
    H, W = hw
    extra = {"feature_only": True, "down_ratio": 2} if feature_only else {}
    head = DPTHead(32, patch_size=14, features=16, out_channels=(8, 16, 24, 24),
                   intermediate_layer_idx=(0, 1, 2, 3), **extra).eval()  # fmt: skip
    with torch.no_grad():
        for p in head.parameters():  # away from the initialisation, so that every layer matters
            p.add_(torch.randn_like(p) * 0.05)
    tokens = [torch.randn(1, 3, 5 + (H // 14) * (W // 14), 32) for _ in range(4)]

    def fast(band_rows):
        with torch.no_grad():
            out = dpt_forward_fast(
                head, tokens, (1, 3, 3, H, W), 5, 2, torch.float32, channels_last, band_rows
            )
        return out if isinstance(out, tuple) else (out,)

    with torch.no_grad():
        ref = head(tokens, torch.zeros(1, 3, 3, H, W), 5, frames_chunk_size=8)
    whole = fast(None)
    for a, b in zip(whole, ref if isinstance(ref, tuple) else (ref,), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for band_rows in (
        1,
        3,
        7,
        11,
    ):  # bands of one row, and bands that do not divide the 70, 84, 35 or 42 rows
        for a, b in zip(fast(band_rows), whole, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_position_embedding_of_a_band_is_the_band_of_the_embedding():
    x = torch.randn(2, 8, 9, 10)
    whole = add_uv_position_embedding_(x.clone(), 1.5)
    band = add_uv_position_embedding_(x[:, :, 3:7].clone(), 1.5, rows=(3, 9))
    assert torch.equal(band, whole[:, :, 3:7])


def test_rope_tables_reproduce_the_rotation_exactly():
    rope = RotaryPositionEmbedding2D(100)
    pos = patch_positions(1, 4, 6, 5)
    q = torch.randn(1, 3, pos.shape[1], 16)  # (B, heads, N, D)
    ref = rope(q, pos)
    fast = apply_rope_(q.transpose(1, 2).clone(), rope_tables(rope, pos[0], 16, torch.float32)).transpose(
        1, 2
    )
    assert torch.equal(fast, ref)


def test_separable_position_embedding_is_exact():
    head = DPTHead(32, patch_size=14, features=16, out_channels=(8, 8, 8, 8))
    x = torch.randn(2, 8, 6, 10)
    assert torch.equal(add_uv_position_embedding_(x.clone(), 140 / 84), head._add_pos_embed(x, (84, 140)))


def test_golden_tolerance_constant_unchanged():
    assert GOLDEN_TOL == 1e-4
