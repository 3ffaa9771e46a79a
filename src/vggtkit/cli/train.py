"""`vggtkit train`: train or fine-tune a model from a config file plus ``--set key=value`` overrides."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  vggtkit train --config configs/tiny-synthetic.yaml
  vggtkit train --config configs/tiny-synthetic.yaml --set optim.max_steps=200 --set run.out_dir=runs/try
  vggtkit train --config configs/finetune-heads.yaml --set data.path=my_scenes   # heads only, on your captures
  vggtkit train --resume runs/tiny-synthetic                                      # continue the latest checkpoint
  torchrun --nproc_per_node=2 -m vggtkit train --config configs/tiny-synthetic.yaml   # data-parallel
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune a VGGT model (synthetic scenes or your scene folders)",
        description=(
            "Train a VGGT model with the paper's losses. Settings come from a YAML/JSON config (sections model, "
            "data, loss, optim, run; see configs/) and --set overrides. Writes metrics.csv, train_config.json "
            "and checkpoints (config.json + model.safetensors + optimizer state) to run.out_dir."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML or JSON training config (default: built-in defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set optim.lr=1e-4 (repeatable)",
    )
    parser.add_argument("--out", help="output folder (same as --set run.out_dir=...)")
    parser.add_argument(
        "--resume",
        help="continue from a run folder (its latest checkpoint) or a checkpoint folder; the run's saved config "
        "is used unless --config is given",
    )
    parser.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from vggtkit.train.config import load_train_config
    from vggtkit.train.trainer import train

    overrides = list(args.overrides)
    config_path = args.config
    if args.resume and config_path is None:
        saved = Path(args.resume) / "train_config.json"
        if saved.is_file():
            config_path = str(saved)
    if args.out:
        overrides.append(f"run.out_dir={args.out}")
    if args.resume:
        overrides.append(f"run.resume={args.resume}")
    if args.no_progress:
        overrides.append("run.progress=false")
    config = load_train_config(config_path, overrides)
    result = train(config)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only rank 0 reports
    print(
        f"trained to step {result.step} in {result.wall_time / 60:.1f} min"
        + (f" ({result.skipped} non-finite steps skipped)" if result.skipped else "")
    )
    if result.losses:
        print("last losses: " + ", ".join(f"{k} {v:.4f}" for k, v in result.losses.items()))
    if result.checkpoint is not None:
        print(f"checkpoint: {result.checkpoint}  (load with VGGT.from_pretrained)")
    return 0
