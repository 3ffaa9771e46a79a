"""Make a trained model the bundled ``tiny-synthetic``: copy its weights and logs into the package assets.

    python benchmarks/ship_tiny_synthetic.py OUTPUTS      # OUTPUTS: what benchmarks/gpu_train.py wrote to $OUT

Checks the weights (at most 25 MB, the ``tiny-synthetic`` preset's architecture), copies ``config.json`` and
``model.safetensors`` into ``src/vggtkit/assets/tiny-synthetic/``, ``metrics.csv`` as ``training_metrics.csv``
and ``probe.csv`` as ``training_probe.csv``, then prints the evaluation table and the timing for the asset's
README (which is written by hand: it states the commands, the machine and what the numbers mean).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from vggtkit import VGGT
from vggtkit.models.vggt.config import preset_config

ASSET = Path(__file__).resolve().parents[1] / "src" / "vggtkit" / "assets" / "tiny-synthetic"
MAX_BYTES = 25_000_000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("outputs", type=Path, help="the folder benchmarks/gpu_train.py wrote")
    args = parser.parse_args()
    model_dir = args.outputs / "model"
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise SystemExit(f"{weights} does not exist: pass the folder benchmarks/gpu_train.py wrote to $OUT")
    if weights.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{weights} is {weights.stat().st_size / 1e6:.1f} MB, over the 25 MB limit")
    model = VGGT.from_pretrained(model_dir)
    if model.config != preset_config("tiny-synthetic"):
        raise SystemExit("the model is not the tiny-synthetic preset's architecture")
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(model_dir / name, ASSET / name)
    shutil.copy2(args.outputs / "metrics.csv", ASSET / "training_metrics.csv")
    shutil.copy2(args.outputs / "probe.csv", ASSET / "training_probe.csv")
    print(f"copied the model and its logs into {ASSET}")
    print((args.outputs / "evaluation.md").read_text())
    print(json.dumps(json.loads((args.outputs / "timing.json").read_text()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
