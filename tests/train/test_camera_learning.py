"""Diagnostics that can fail: the trainer teaches a small model the cameras of a fixed handful of scenes.

The ground-truth relative poses of a few scenes can be fitted from their images within a few hundred steps,
far below the loss of the best prediction that ignores the images (identity rotation, zero translation): this
fails if gradients do not reach the camera head, or if the ground truth the batches carry (frame subsets,
reversal, zoom, normalisation) does not agree with the images.
"""

from __future__ import annotations

import pytest
import torch

from vggtkit.data.batches import BatchStream
from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.geometry import extri_intri_to_pose_encoding
from vggtkit.train.config import TrainConfig, apply_overrides
from vggtkit.train.losses import camera_loss
from vggtkit.train.trainer import _batch_options, train, training_batch

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 28
SETTINGS = [
    "model.preset=test-tiny",
    f"data.image_size=[{SIZE},{SIZE}]",
    "data.min_frames=2",
    "data.max_frames=2",
    "data.batch_size=4",
    "data.zoom=null",
    "data.color_jitter=false",
    "loss.depth_weight=0",
    "optim.lr=2e-3",
    "optim.warmup_frac=0.05",
    "run.progress=false",
    "run.num_threads=1",
    "run.log_every=50",
    "run.ckpt_every=1000",
]


class _Scenes:
    def __init__(self) -> None:
        cfg = SyntheticSceneConfig(num_frames=3, image_size=(SIZE, SIZE), supersample=1, num_tracks=0)
        self.samples = [render_scene(cfg, seed) for seed in (21, 22, 23, 24)]

    def __len__(self) -> int:
        return len(self.samples)

    def scene(self, index: int):
        return self.samples[index]


def _camera_losses(model, config: TrainConfig, source, steps: range) -> tuple[float, float]:
    """Mean camera loss (T + R parts) of the model and of the constant prediction on the training stream."""
    stream = BatchStream(source, _batch_options(config), seed=config.run.seed)
    model.eval()
    ours, constant = 0.0, 0.0
    for step in steps:
        batch = training_batch(stream, step)
        with torch.no_grad():
            pred = model(batch["images"])["pose_enc_list"]
        args = (batch["extrinsics"], batch["intrinsics"], (SIZE, SIZE), batch["point_masks"], config.loss)
        fitted = camera_loss(pred[-1:], *args)
        gt = extri_intri_to_pose_encoding(batch["extrinsics"], batch["intrinsics"], (SIZE, SIZE))
        flat = torch.zeros_like(gt)
        flat[..., 6] = 1.0  # identity rotation, zero translation
        flat[..., 7:] = gt[..., 7:]
        baseline = camera_loss([flat], *args)
        ours += float(fitted["loss_T"] + fitted["loss_R"])
        constant += float(baseline["loss_T"] + baseline["loss_R"])
    return ours / len(steps), constant / len(steps)


def test_camera_loss_of_a_few_fixed_scenes_drops_far_below_the_constant_prediction(tmp_path):
    """4 scenes of 3 views give 24 ordered frame pairs (subsets are drawn in both orders): the target of frame 1
    depends on which view is frame 0, so fitting them needs both images (measured: 0.18 of the constant's loss)."""
    config = apply_overrides(TrainConfig(), [*SETTINGS, "optim.max_steps=300", f"run.out_dir={tmp_path}"])
    source = _Scenes()
    result = train(config, source=source)
    ours, constant = _camera_losses(result.model, config, source, range(40))
    assert constant > 0.05  # the scenes do move
    assert ours < 0.35 * constant, (ours, constant)


def test_each_frames_camera_sees_the_first_frame():
    """The pose of frame 1 is relative to frame 0, so its prediction must depend on frame 0's pixels (through
    the global attention), and every camera-head parameter must receive a gradient from the camera loss."""
    config = TrainConfig.from_dict({"model": {"preset": "test-tiny"}}).model.build_config()
    torch.manual_seed(0)
    from vggtkit import VGGT

    model = VGGT(config).train()
    images = torch.rand(1, 3, 3, SIZE, SIZE, requires_grad=True)
    model(images)["pose_enc"][0, 1].square().sum().backward()
    assert images.grad[0, 0].abs().sum() > 0  # frame 0's pixels reach frame 1's camera
    missing = [n for n, p in model.camera_head.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing
