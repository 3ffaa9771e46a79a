"""Every execution plan computes the same VGGT-Omega function: lean plans against the plain reference plan on many
shapes and configurations; reduced precision within the official code's own drift; memory, progress, autograd."""

from __future__ import annotations

import pytest
import torch
from _omega_golden import golden_tensor, omega_golden_model

from vggtkit import VGGTOmega
from vggtkit.inference import ExecutionPlan, InferenceOptions, infer, plan_inference, weights_nbytes
from vggtkit.models.omega import aggregator as aggregator_module
from vggtkit.models.omega import omega_preset_config
from vggtkit.models.omega.heads import dense as dense_module

OUTPUTS = ("camera_and_register_tokens", "pose_enc", "depth", "depth_conf", "text_alignment_embedding",
           "text_alignment_token")  # fmt: skip
# The official code under bfloat16 autocast of its aggregator on this fixture, against its float32 outputs, in
# the golden measure max |a - b| / (1 + |b|) (specification, section 2): depth about 3e-2, pose about 6e-3.
OFFICIAL_BF16_DEPTH = 0.03
OFFICIAL_BF16_POSE = 0.006


def run(model: VGGTOmega, images: torch.Tensor, **kwargs) -> dict:
    with torch.no_grad():
        return model(images, **kwargs)


def assert_matches(ours: dict, ref: dict, tol: float = 2e-5) -> None:
    assert set(ours) == set(ref)
    for key in OUTPUTS:
        if key in ref:
            torch.testing.assert_close(ours[key], ref[key], rtol=tol, atol=tol, msg=key)
            assert ours[key].dtype == torch.float32, key


def golden_measure(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs() / (1 + ref.abs())).max().item()


def randomized(config_name: str = "tiny", seed: int = 0, **overrides) -> VGGTOmega:
    """A model whose every parameter and buffer is away from its initialisation, so that each one matters."""
    torch.manual_seed(seed)
    model = VGGTOmega(omega_preset_config(config_name, **overrides)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.2 if "gamma" in name or "norm" in name else 0.05))
        for name, b in model.named_buffers():
            if name.endswith("bias_mask"):
                b.uniform_()
    return model


@pytest.fixture(scope="module")
def golden_reference(omega_model):
    return run(omega_model, golden_tensor("images"), options=ExecutionPlan.reference())


# ----------------------------------------------------------------------------- float32 plans
@pytest.mark.parametrize(
    ("batch", "frames", "hw", "options"),
    [
        (2, 5, (48, 80), InferenceOptions(frame_chunk_size=3, query_chunk_size=13)),  # chunks divide nothing
        (1, 4, (80, 32), InferenceOptions(frame_chunk_size=1, query_chunk_size=7)),  # portrait, tiny chunks
        (2, 1, (32, 32), InferenceOptions()),  # one frame per sequence
        (1, 3, (37, 53), InferenceOptions(channels_last=True)),  # sizes that are not multiples of 16
        (
            2,
            2,
            (64, 48),
            ExecutionPlan(frame_chunk=1, sequence_chunk=1, token_chunk=5, head_chunk=1, in_place=True),
        ),
    ],
)
def test_lean_float32_matches_reference(omega_model, batch, frames, hw, options):
    images = torch.rand(batch, frames, 3, *hw, generator=torch.Generator().manual_seed(frames))
    ref = run(omega_model, images, options=ExecutionPlan.reference())
    assert_matches(run(omega_model, images, options=options), ref)
    p = omega_model.config.patch_size
    assert ref["depth"].shape == (batch, frames, hw[0] // p * p, hw[1] // p * p, 1)
    assert ref["text_alignment_embedding"].shape == (batch, 2 * omega_model.config.embed_dim)


@pytest.mark.parametrize(
    "overrides",
    [
        {"register_attention_block_indices": []},  # every inter-frame block global
        {"register_attention_block_indices": [0, 1, 2, 3, 4], "num_register_tokens": 0},  # camera token only
        {"patch_size": 8, "cached_layer_indices": [1, 2, 4], "dense_layers": [1, 1, 2, 4]},
        {
            "enable_camera": False,
            "enable_alignment": False,
            "depth": 3,
            "cached_layer_indices": [0, 2],
            "register_attention_block_indices": [2],
            "dense_layers": [0, 0, 2, 2],
        },  # fmt: skip
        {"enable_depth": False, "cached_layer_indices": [4], "patch_embed_n_storage_tokens": 0},
    ],
)
def test_configurations_match_reference(overrides):
    model = randomized(**overrides)
    images = torch.rand(2, 3, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    ref = run(model, images, options=ExecutionPlan.reference())
    assert_matches(run(model, images, options=InferenceOptions(frame_chunk_size=2, query_chunk_size=11)), ref)
    assert_matches(run(model, images), ref)


def test_register_blocks_leave_patch_tokens_unchanged():
    model = randomized()
    images = torch.rand(1, 3, 3, 32, 48)
    layers = run(model, images, return_all_layers=True, options=ExecutionPlan.reference())[
        "aggregated_tokens_list"
    ]
    C, psi = model.config.embed_dim, model.config.patch_token_start
    for idx, tokens in enumerate(layers):
        same = torch.equal(tokens[:, :, psi:, :C], tokens[:, :, psi:, C:])
        assert same == (idx in model.config.register_attention_block_indices), idx


def test_only_the_layers_the_heads_read_are_kept(omega_model):
    images = torch.rand(1, 3, 3, 32, 48)
    with torch.no_grad():
        for plan in (omega_model.plan(images), ExecutionPlan()):
            tokens, _ = omega_model.aggregator(images, plan)
            assert [i for i, t in enumerate(tokens) if t is not None] == list(omega_model.config.head_layers)
        tokens, _ = omega_model.aggregator(images, ExecutionPlan.reference())
    assert all(t is not None for t in tokens)


# ----------------------------------------------------------------------------- reduced precision
@pytest.mark.parametrize(
    "options",
    [
        InferenceOptions(dtype="bfloat16"),
        InferenceOptions(dtype="bfloat16", store_layers_dtype="float32", frame_chunk_size=1),
        InferenceOptions(dtype="bfloat16", query_chunk_size=9),
    ],
)
def test_bfloat16_drift_is_the_official_codes(omega_model, golden_reference, options):
    out = run(omega_model, golden_tensor("images"), options=options)
    depth = golden_measure(out["depth"], golden_reference["depth"])
    assert (
        1e-6 < depth <= 1.5 * OFFICIAL_BF16_DEPTH
    )  # really reduced precision, and no worse than the official
    assert golden_measure(out["pose_enc"], golden_reference["pose_enc"]) <= 1.5 * OFFICIAL_BF16_POSE
    for key in OUTPUTS:
        assert out[key].dtype == torch.float32, key
        assert torch.isfinite(out[key]).all(), key


def test_bfloat16_weights_through_the_infer_helper(omega_model):
    """The aggregator's matrices in bfloat16 give exactly the bfloat16 plan's results (it casts them at each use)."""
    model = omega_golden_model()
    images = golden_tensor("images")[0]
    out = infer(model, images, options=InferenceOptions(dtype="bfloat16", weights_dtype="bfloat16"))
    assert model.aggregator.frame_blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert model.aggregator.patch_embed.patch_embed.proj.weight.dtype == torch.bfloat16
    assert model.aggregator.rope_embed.periods.dtype == torch.float32  # buffers, norms, tokens stay float32
    assert model.aggregator.frame_blocks[0].attn.qkv.bias_mask.dtype == torch.float32
    assert model.aggregator.frame_blocks[0].attn.qkv.bias.dtype == torch.float32  # masked: multiplied first
    assert model.aggregator.frame_blocks[0].norm1.weight.dtype == torch.float32
    assert model.dense_head.projects[0].weight.dtype == torch.float32  # heads stay float32
    expected = run(omega_model, images, options="bfloat16")
    for key in OUTPUTS:
        assert torch.equal(out[key], expected[key]), key


def test_heads_in_bfloat16_with_their_weights():
    model = omega_golden_model()
    options = InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16", weights_dtype="bfloat16")
    out = infer(model, golden_tensor("images"), options=options)
    assert model.camera_head.trunk[0].attn.qkv.weight.dtype == torch.bfloat16
    for key in OUTPUTS[1:]:
        assert out[key].dtype == torch.float32 and torch.isfinite(out[key]).all(), key


def test_ambient_autocast_selects_its_dtype(omega_model, golden_reference):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(omega_model, golden_tensor("images"))
    assert out["depth"].dtype == torch.float32
    assert 0 < golden_measure(out["depth"], golden_reference["depth"]) <= 1.5 * OFFICIAL_BF16_DEPTH


def test_float16_is_refused_on_cpu(omega_model):
    with pytest.raises(ValueError, match="use bfloat16 on CPU"):
        run(omega_model, torch.rand(2, 3, 32, 32), options="float16")


# ----------------------------------------------------------------------------- memory and progress
def test_memory_budget_picks_chunks_and_keeps_results(omega_model):
    images = torch.rand(1, 6, 3, 64, 48)
    shape, weights = tuple(images.shape), weights_nbytes(omega_model)
    dims = omega_model.dims()
    assert (dims.patch_size, dims.special_tokens, dims.kept_layers) == (16, 4, 4)
    roomy = plan_inference(dims, shape, InferenceOptions(max_memory="1GB"), images.device, weights)
    tight_options = InferenceOptions(max_memory=weights + 2_500_000)
    tight = plan_inference(dims, shape, tight_options, images.device, weights)
    assert roomy.frame_chunk == 6 and tight.token_chunk < roomy.token_chunk
    assert tight.estimated_bytes <= weights + 2_500_000
    assert_matches(
        run(omega_model, images, options=tight_options), run(omega_model, images, options="float32"), 1e-6
    )
    with pytest.raises(ValueError, match=r"too small .* raise it to"):
        run(omega_model, images, options=InferenceOptions(max_memory=1000))


def test_progress_reports_every_step(omega_model):
    calls: list[tuple[int, int]] = []
    for options in (InferenceOptions(), ExecutionPlan.reference()):
        calls.clear()
        run(
            omega_model, torch.rand(2, 3, 32, 32), options=options, progress=lambda d, t: calls.append((d, t))
        )
        total = 1 + 2 * omega_model.config.depth + 3
        assert calls == [(i, total) for i in range(1, total + 1)]


def test_release_memory_trims_before_the_last_layer_and_each_dense_pass(omega_model, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(aggregator_module, "release_free_memory", lambda: calls.append("aggregator"))
    monkeypatch.setattr(dense_module, "release_free_memory", lambda: calls.append("dense"))
    images = golden_tensor("images")
    run(omega_model, images, options=InferenceOptions(frame_chunk_size=1))
    assert calls.count("aggregator") == 1 and calls.count("dense") == images.shape[1]
    calls.clear()
    run(omega_model, images, options=InferenceOptions(release_memory=False))
    assert calls == []


# ----------------------------------------------------------------------------- autograd and errors
def test_in_place_plans_refuse_autograd(omega_model):
    with pytest.raises(ValueError, match="no_grad"):
        omega_model(torch.rand(2, 3, 32, 32), options=ExecutionPlan(in_place=True))


@pytest.mark.parametrize("options", [None, InferenceOptions(frame_chunk_size=1, query_chunk_size=7)])
def test_gradients_flow_through_every_plan_that_autograd_allows(options):
    model = randomized().train()
    images = torch.rand(1, 2, 3, 32, 32, requires_grad=True)
    out = model(images, options=options)
    assert "images" not in out  # training mode
    assert not model.plan(images.detach(), options).in_place
    sum(out[key].float().mean() for key in OUTPUTS).backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None, name


def test_chunked_autograd_equals_unchunked_gradients():
    model = randomized().train()
    images = torch.rand(1, 3, 3, 32, 48)

    def grads(options):
        model.zero_grad()
        model(images, options=options)["depth"].mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, chunked = grads(None), grads(InferenceOptions(frame_chunk_size=1, query_chunk_size=5))
    assert plain.keys() == chunked.keys()
    for name in plain:
        torch.testing.assert_close(chunked[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(3, 32, 32), "shape \\(S, 3, H, W\\)"),
        (torch.rand(2, 4, 32, 32), "3 colour channels"),
        (torch.rand(2, 3, 12, 64), "no whole 16x16 patch"),
        (torch.randint(0, 255, (2, 3, 32, 32)), "floating point"),
        (torch.rand(2, 3, 32, 32) * 255, "\\[0, 1\\]"),
        (torch.rand(1, 0, 3, 32, 32), "no frame"),
    ],
)
def test_bad_images_are_named(omega_model, images, message):
    with pytest.raises(ValueError, match=message):
        run(omega_model, images)
