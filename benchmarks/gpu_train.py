"""Train the tiny-synthetic recipe on one CUDA GPU within a time budget, then evaluate it on the held-out scenes.

Run from the repository root on a machine with a CUDA GPU (torch, numpy, safetensors and tqdm are all it needs;
PyYAML is not used):

    OUT=/path/to/outputs PYTHONPATH=src python3 benchmarks/gpu_train.py                # 300 s of training
    OUT=/tmp/check PYTHONPATH=src python3 benchmarks/gpu_train.py --device cpu --train-seconds 20 \\
        --calibration-steps 4 --heldout-scenes 2 --set data.pool_size=8 --set data.batch_size=1 \\
        --set data.max_frames=3 --set data.workers=2 --set run.probe_scenes=2 --set optim.amp='"off"'
        # a smoke run of the same path on a CPU

Steps: render the scene pool once (``data.workers`` processes), time a short calibration run to turn the time
budget into ``optim.max_steps`` (so the cosine schedule runs to its end), train with the library's trainer
(``vggtkit.train.train``, the code ``vggtkit train`` runs) from ``configs/tiny-synthetic-gpu.json``, then score
the final model, the same architecture untrained and identity poses + constant depth on the 24 held-out scenes
(as ``vggtkit evaluate --baselines --untrained``). Everything the run produced that is worth keeping lands in
$OUT, in at most 8 files of at most 16 MiB: ``model/`` (config.json, aggregator.safetensors and
heads.safetensors: ``benchmarks/ship_tiny_synthetic.py`` joins them), ``metrics.csv``, ``probe.csv``,
``evaluation.json``, ``run.json`` (timings, machine, the training config with its step count) and ``log.txt``
(which ends with the evaluation table). The scene pool and the optimiser state stay in a temporary folder.
Without scikit-image the scenes' photographs come from ``--photo-bank`` (written with ``--save-photo-bank`` on a
machine with scikit-image; when that file exists it is used in any case, so both machines render the same
scenes).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from vggtkit import VGGT
from vggtkit.data.synthetic import load_heldout_set, render_scene
from vggtkit.data.textures import PHOTO_BANK_ENV, save_photo_bank
from vggtkit.eval import evaluate_methods, format_markdown, identity_constant_baseline, model_method
from vggtkit.train.config import TrainConfig, load_train_config, with_changes
from vggtkit.train.trainer import build_source, train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "tiny-synthetic-gpu.json"
PHOTO_BANK = ROOT / "runs" / "photo_bank.safetensors"
SPLIT = {
    "aggregator.safetensors": lambda key: key.startswith("aggregator."),
    "heads.safetensors": lambda key: not key.startswith("aggregator."),
}
logger = logging.getLogger("gpu_train")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--train-seconds", type=float, default=300.0, help="training time budget (default 300)"
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke run")
    parser.add_argument("--config", default=str(RECIPE), help="training recipe (JSON)")
    parser.add_argument(
        "--calibration-steps", type=int, default=30, help="steps of the timing run (default 30)"
    )
    parser.add_argument(
        "--heldout-scenes",
        type=int,
        default=None,
        help="evaluate on the first N held-out scenes (default: all 24)",
    )
    parser.add_argument(
        "--photo-bank",
        default=str(PHOTO_BANK),
        help="photo bank file for a machine without scikit-image (default runs/photo_bank.safetensors)",
    )
    parser.add_argument(
        "--save-photo-bank",
        action="store_true",
        help="write this machine's photo bank (needs scikit-image) to --photo-bank and exit",
    )
    parser.add_argument(
        "--set",
        dest="changes",
        action="append",
        default=[],
        metavar="SECTION.KEY=JSON",
        help="change one setting, the value as JSON (e.g. --set data.pool_size=16)",
    )
    return parser.parse_args()


def _changes(items: list[str]) -> dict[str, dict]:
    """``section.key=json`` items as with_changes() arguments (parsed as JSON, so PyYAML is not needed)."""
    sections: dict[str, dict] = {}
    for item in items:
        key, _, text = item.partition("=")
        section, _, name = key.partition(".")
        if not text or not name:
            raise SystemExit(f"--set {item!r}: expected section.key=value")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        sections.setdefault(section, {})[name] = tuple(value) if isinstance(value, list) else value
    return sections


def _step_seconds(metrics: Path) -> float:
    """Seconds per step between the first and the last logged row of a calibration run."""
    with metrics.open() as handle:
        rows = list(csv.DictReader(handle))
    first, last = rows[0], rows[-1]
    steps = int(last["step"]) - int(first["step"])
    return (float(last["elapsed_s"]) - float(first["elapsed_s"])) / max(steps, 1)


def _calibrate(config: TrainConfig, source, work: Path, steps: int) -> float:
    """Train ``steps`` steps (the first ones warm up kernels and workers) and time the later ones."""
    trial = with_changes(
        config,
        optim={"max_steps": steps},
        run={"out_dir": str(work / "calibration"), "log_every": max(1, steps // 3), "probe_every": 0},
    )
    train(trial, source=source)
    return _step_seconds(work / "calibration" / "metrics.csv")


def _evaluate(checkpoint: Path, device: str, count: int | None) -> dict:
    heldout = load_heldout_set()
    samples = [render_scene(heldout.config, seed) for seed in heldout.seeds[:count]]
    model = VGGT.from_pretrained(checkpoint)
    torch.manual_seed(0)
    untrained = VGGT(model.config)
    methods = {
        "trained": model_method(model, device),
        "untrained (same architecture)": model_method(untrained, device),
        "identity poses + constant depth + static tracks": identity_constant_baseline,
    }
    return evaluate_methods(methods, samples)


def save_split(checkpoint: Path, folder: Path) -> None:
    """``config.json`` plus the weights in two safetensors files (the aggregator, then the heads), each small
    enough to come back from the GPU machine; ``ship_tiny_synthetic.py`` joins them."""
    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(checkpoint / "config.json", folder / "config.json")
    state = load_file(str(checkpoint / "model.safetensors"))
    for name, keep in SPLIT.items():
        part = {k: v for k, v in state.items() if keep(k)}
        save_file(part, str(folder / name), metadata={"format": "pt"})


def _use_photo_bank(path: Path) -> None:
    """Render the scenes from the photo bank file when there is one (the same photographs as the machine that
    wrote it, so the same scenes), else from scikit-image; without either the scenes would differ."""
    if os.environ.get(PHOTO_BANK_ENV):
        return
    if path.is_file():
        os.environ[PHOTO_BANK_ENV] = str(path.resolve())
        return
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        raise SystemExit(
            f"scikit-image is not installed and there is no photo bank at {path}: write one on a machine with "
            "scikit-image (benchmarks/gpu_train.py --save-photo-bank) and bring it along"
        ) from None


def _setup(args: argparse.Namespace, out: Path) -> TrainConfig:
    """Logging (also to $OUT/log.txt), the photo bank, the device's settings and the recipe with changes."""
    out.mkdir(parents=True, exist_ok=True)
    log_file = logging.FileHandler(out / "log.txt")
    log_file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger().addHandler(log_file)
    _use_photo_bank(Path(args.photo_bank))
    if args.device == "cpu":
        torch.set_num_threads(1)  # a smoke run on a shared machine
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --device cpu for a smoke run")
    else:
        torch.backends.cuda.matmul.allow_tf32 = True  # as the released training does
        torch.backends.cudnn.allow_tf32 = True
    config = with_changes(load_train_config(args.config), run={"device": args.device, "progress": False})
    for section, values in _changes(args.changes).items():
        config = with_changes(config, **{section: values})
    return config


def _timed(timing: dict, key: str, fn, *args):
    begin = time.perf_counter()
    value = fn(*args)
    timing[key] = round(time.perf_counter() - begin, 1)
    return value


def main() -> int:
    args = _parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.save_photo_bank:
        logger.info("wrote %s", save_photo_bank(args.photo_bank))
        return 0
    out = Path(os.environ.get("OUT", "outputs/gpu_train"))
    config = _setup(args, out)
    timing: dict[str, float | str] = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    work = Path(tempfile.mkdtemp(prefix="gpu_train_"))
    source = _timed(timing, "pool_s", build_source, config, False)
    seconds_per_step = _timed(
        timing, "calibration_s", _calibrate, config, source, work, args.calibration_steps
    )
    # A probe costs a few steps' time; leave 10 % of the budget for them and for the checkpoint.
    steps = max(20, int(0.9 * args.train_seconds / seconds_per_step))
    timing.update(seconds_per_step=round(seconds_per_step, 4), max_steps=steps)
    logger.info("%.3f s per step: training %d steps", seconds_per_step, steps)
    run_dir = work / "run"
    config = with_changes(
        config,
        optim={"max_steps": steps},
        run={"out_dir": str(run_dir), "probe_every": max(1, steps // 10), "ckpt_every": steps},
    )
    result = _timed(timing, "train_s", train, config, source)
    save_split(result.checkpoint, out / "model")
    for name in ("metrics.csv", "probe.csv"):
        shutil.copy2(run_dir / name, out / name)
    results = _timed(timing, "evaluate_s", _evaluate, result.checkpoint, args.device, args.heldout_scenes)
    (out / "evaluation.json").write_text(json.dumps(results, indent=2) + "\n")
    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    timing.update(device=device, torch=torch.__version__, cpus=os.cpu_count() or 0)
    run_record = {"timing": timing, "train_config": config.to_dict()}
    (out / "run.json").write_text(json.dumps(run_record, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    table = format_markdown(results)
    logger.info("held-out evaluation:\n%s\n%s", table, json.dumps(timing))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
