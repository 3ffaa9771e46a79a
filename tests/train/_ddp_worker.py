"""Run by torchrun in test_distributed.py: train a few steps, then save this rank's parameters."""

from __future__ import annotations

import os
import sys

from safetensors.torch import save_file

from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.train.config import TrainConfig, apply_overrides
from vggtkit.train.trainer import train


class Scenes:
    def __init__(self) -> None:
        cfg = SyntheticSceneConfig(
            num_frames=3, image_size=(28, 28), supersample=1, num_tracks=0, photo_probability=0.0
        )
        self.samples = [render_scene(cfg, s) for s in (1, 2, 3)]

    def __len__(self) -> int:
        return len(self.samples)

    def scene(self, index: int):
        return self.samples[index]


def main(out_dir: str) -> None:
    config = apply_overrides(
        TrainConfig(),
        [
            "model.preset=test-tiny",
            "data.image_size=[28,28]",
            "data.max_frames=3",
            "data.batch_size=1",
            "optim.max_steps=3",
            "optim.warmup_frac=0",
            "run.progress=false",
            "run.log_every=1",
            "run.num_threads=1",
            f"run.out_dir={out_dir}",
        ],
    )
    result = train(config, source=Scenes())
    rank = int(os.environ["RANK"])
    state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, os.path.join(out_dir, f"rank{rank}.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
