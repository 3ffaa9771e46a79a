"""Make a trained model the bundled ``tiny-synthetic``: join its weights and copy them and its logs into the
package assets.

    python benchmarks/ship_tiny_synthetic.py OUTPUTS      # OUTPUTS: what benchmarks/gpu_train.py wrote to $OUT

Joins ``model/aggregator.safetensors`` and ``model/heads.safetensors``, checks the model (the architecture of
``configs/tiny-synthetic-gpu.json``, at most 25 MB), writes ``config.json`` and ``model.safetensors`` into
``src/vggtkit/assets/tiny-synthetic/``, copies ``metrics.csv`` as ``training_metrics.csv`` and ``probe.csv``
as ``training_probe.csv``, then prints the evaluation table and the run's record for the asset's README (which
is written by hand: it states the commands, the machine and what the numbers mean). The recipe's architecture
differs from today's ``tiny-synthetic`` preset (one camera trunk block, a track head): the preset in
``vggtkit.models.vggt.config`` takes the recipe's ``model.fields`` in the same change.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from vggtkit import VGGT
from vggtkit.eval import format_markdown
from vggtkit.models.vggt.config import VGGTConfig
from vggtkit.train.config import load_train_config

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "src" / "vggtkit" / "assets" / "tiny-synthetic"
RECIPE = ROOT / "configs" / "tiny-synthetic-gpu.json"
PARTS = ("aggregator.safetensors", "heads.safetensors")
MAX_BYTES = 25_000_000


def _joined_model(folder: Path) -> VGGT:
    from safetensors.torch import load_file

    missing = [name for name in ("config.json", *PARTS) if not (folder / name).is_file()]
    if missing:
        raise SystemExit(f"{folder} lacks {missing}: pass the folder benchmarks/gpu_train.py wrote to $OUT")
    config = VGGTConfig.from_dict(json.loads((folder / "config.json").read_text()))
    if config != load_train_config(RECIPE).model.build_config():
        raise SystemExit(f"the model does not have the architecture of {RECIPE.name}")
    state = {}
    for name in PARTS:
        state.update(load_file(str(folder / name)))
    model = VGGT(config)
    model.load_state_dict(state, strict=True)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("outputs", type=Path, help="the folder benchmarks/gpu_train.py wrote")
    args = parser.parse_args()
    model = _joined_model(args.outputs / "model")
    with tempfile.TemporaryDirectory() as staging:
        model.save_pretrained(staging)
        size = (Path(staging) / "model.safetensors").stat().st_size
        if size > MAX_BYTES:
            raise SystemExit(f"the weights are {size / 1e6:.1f} MB, over the 25 MB limit")
        for name in ("config.json", "model.safetensors"):
            shutil.copy2(Path(staging) / name, ASSET / name)
    shutil.copy2(args.outputs / "metrics.csv", ASSET / "training_metrics.csv")
    shutil.copy2(args.outputs / "probe.csv", ASSET / "training_probe.csv")
    print(f"wrote the model ({size / 1e6:.2f} MB) and its logs into {ASSET}")
    print(format_markdown(json.loads((args.outputs / "evaluation.json").read_text())))
    print(json.dumps(json.loads((args.outputs / "run.json").read_text())["timing"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
