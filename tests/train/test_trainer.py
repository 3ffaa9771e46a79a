"""The training loop on a tiny model: learning, checkpoints and resume, freezing, non-finite steps."""

from __future__ import annotations

import csv

import pytest
import torch

from vggtkit import VGGT
from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.train.config import TrainConfig, apply_overrides
from vggtkit.train.trainer import freeze_modules, learning_rate, parameter_groups, train, training_plan

BASE = [
    "model.preset=test-tiny",
    "data.image_size=[28,28]",
    "data.min_frames=2",
    "data.max_frames=2",
    "data.batch_size=2",
    "data.zoom=null",
    "data.color_jitter=false",
    "run.progress=false",
    "run.log_every=1",
    "run.num_threads=1",
    "optim.warmup_frac=0.0",
]


class _Scenes:
    """Two fixed synthetic scenes as a scene source (rendered once per module)."""

    def __init__(self) -> None:
        cfg = SyntheticSceneConfig(num_frames=2, image_size=(28, 28), supersample=1, num_tracks=0)
        self.samples = [render_scene(cfg, s) for s in (1, 2)]

    def __len__(self) -> int:
        return len(self.samples)

    def scene(self, index: int):
        return self.samples[index]


@pytest.fixture(scope="module")
def scenes():
    return _Scenes()


def _config(tmp_path, *extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), [*BASE, f"run.out_dir={tmp_path}", *extra])


def _objectives(path) -> list[float]:
    with open(path) as handle:
        return [float(row["objective"]) for row in csv.DictReader(handle)]


def test_training_reduces_the_loss_on_a_fixed_pair(tmp_path, scenes):
    config = _config(tmp_path, "optim.max_steps=30", "optim.lr=3e-3", "run.ckpt_every=100")
    result = train(config, source=scenes)
    losses = _objectives(tmp_path / "metrics.csv")
    assert len(losses) == 30 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert result.step == 30 and result.checkpoint is not None
    model = VGGT.from_pretrained(result.checkpoint)  # the checkpoint is a normal model folder
    assert model.config.embed_dim == 32


def test_resume_continues_exactly_where_it_stopped(tmp_path, scenes):
    straight = train(_config(tmp_path / "a", "optim.max_steps=4", "run.ckpt_every=2"), source=scenes)
    train(_config(tmp_path / "b", "optim.max_steps=4", "run.ckpt_every=2"), source=scenes)
    # run b again from its step-2 checkpoint: the last two steps must match run a bit for bit
    (tmp_path / "b" / "checkpoints" / "latest").write_text("step_0000002\n")
    resumed = train(
        _config(tmp_path / "b", "optim.max_steps=4", "run.ckpt_every=2", f"run.resume={tmp_path / 'b'}"),
        source=scenes,
    )
    assert resumed.step == 4
    a = VGGT.from_pretrained(straight.checkpoint).state_dict()
    b = VGGT.from_pretrained(resumed.checkpoint).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_freezing_the_aggregator_trains_only_the_heads(tmp_path, scenes):
    torch.manual_seed(0)
    config = _config(tmp_path, "optim.max_steps=2", "optim.freeze=[aggregator]", "run.ckpt_every=2")
    before = VGGT(config.model.build_config())
    torch.manual_seed(0)
    result = train(config, source=scenes)
    after = VGGT.from_pretrained(result.checkpoint)
    for name, value in before.state_dict().items():
        same = torch.equal(value, after.state_dict()[name])
        assert same == name.startswith("aggregator."), name
    with pytest.raises(ValueError, match="matches no module"):
        freeze_modules(before, ("encoder*",))


def test_non_finite_losses_are_skipped_then_abort(tmp_path, scenes, monkeypatch):
    from vggtkit.train import trainer as trainer_module

    original = trainer_module.MultitaskLoss.forward

    def poisoned(self, predictions, batch):
        out = original(self, predictions, batch)
        out["objective"] = out["objective"] * float("nan")
        return out

    monkeypatch.setattr(trainer_module.MultitaskLoss, "forward", poisoned)
    with pytest.raises(RuntimeError, match="consecutive non-finite"):
        train(_config(tmp_path, "optim.max_steps=5", "optim.max_bad_steps=3"), source=scenes)


def test_schedule_warms_up_then_decays():
    config = apply_overrides(TrainConfig(), ["optim.max_steps=100", "optim.lr=1e-3", "optim.min_lr=0"])
    lrs = [learning_rate(s, config) for s in range(100)]
    assert lrs[0] == 0 and lrs[5] == pytest.approx(1e-3)
    assert max(lrs) == pytest.approx(1e-3) and lrs[-1] < 1e-5
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:], strict=False))


def test_weight_decay_exempts_gammas_norms_biases_and_tokens_unless_decay_all():
    from vggtkit.models.vggt.config import PRESETS as MODEL_PRESETS
    from vggtkit.models.vggt.config import VGGTConfig

    model = VGGT(VGGTConfig(**MODEL_PRESETS["test-tiny"]))
    params = dict(model.named_parameters())
    (everything,) = parameter_groups(params, 0.05, decay_all=True)
    assert everything["weight_decay"] == 0.05 and len(everything["params"]) == len(params)
    decayed, exempt = parameter_groups(params, 0.05, decay_all=False)
    assert decayed["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    exempt_ids = {id(p) for p in exempt["params"]}
    names = {n for n, p in params.items() if id(p) in exempt_ids}
    assert "aggregator.camera_token" in names and "aggregator.frame_blocks.0.ls1.gamma" in names
    assert (
        "aggregator.frame_blocks.0.norm1.weight" in names
        and "aggregator.frame_blocks.0.attn.qkv.bias" in names
    )
    assert "aggregator.frame_blocks.0.attn.qkv.weight" not in names
    assert len(decayed["params"]) + len(exempt["params"]) == len(params)


def test_fine_tuning_on_scene_folders_from_a_checkpoint(tmp_path, scenes):
    from vggtkit.data.scene_folder import save_scene_folder

    for i, sample in enumerate(scenes.samples):
        save_scene_folder(sample, tmp_path / "scenes" / f"s{i}")
    start = train(_config(tmp_path / "base", "optim.max_steps=1"), source=scenes)
    config = _config(
        tmp_path / "ft",
        "data.source=scene_folder",
        f"data.path={tmp_path / 'scenes'}",
        f"model.init_from={start.checkpoint}",
        "optim.max_steps=2",
        "optim.freeze=[aggregator]",
    )
    result = train(config)
    assert result.step == 2
    before = VGGT.from_pretrained(start.checkpoint).state_dict()
    after = VGGT.from_pretrained(result.checkpoint).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("aggregator."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("depth_head."))


def test_bf16_autocast_and_gradient_checkpointing_run(tmp_path, scenes):
    config = _config(tmp_path, "optim.max_steps=2", "optim.amp=bf16", "optim.grad_checkpointing=true")
    result = train(config, source=scenes)
    assert result.step == 2 and result.skipped == 0
    assert all(torch.isfinite(torch.tensor(v)) for v in result.losses.values())
    plan = training_plan(config.optim, torch.bfloat16)
    assert plan.gradient_checkpointing and plan.dtype == torch.bfloat16 and not plan.in_place


def test_track_head_trains_with_the_track_loss_under_zoom(tmp_path):
    cfg = SyntheticSceneConfig(
        num_frames=3, image_size=(28, 28), supersample=1, num_tracks=8, photo_probability=0.0
    )

    class WithTracks:
        samples = [render_scene(cfg, 4)]

        def __len__(self):
            return 1

        def scene(self, index):
            return self.samples[0]

    small_tracker = [
        "model.fields.enable_track=true",
        "model.fields.track_features=16",
        "model.fields.track_hidden_size=32",
        "model.fields.track_corr_levels=2",
        "model.fields.track_corr_radius=1",
        "model.fields.track_iters=2",
    ]
    config = _config(
        tmp_path, *small_tracker, "loss.track_weight=1.0", "data.zoom=[0.8,1.0]", "optim.max_steps=2"
    )
    result = train(config, source=WithTracks())
    assert result.step == 2 and "loss_track" in result.losses
    assert all(torch.isfinite(torch.tensor(v)) for v in result.losses.values())
