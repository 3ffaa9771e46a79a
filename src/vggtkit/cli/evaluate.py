"""`vggtkit evaluate`: camera, depth and point-map accuracy on the held-out synthetic scenes or scene folders."""

from __future__ import annotations

import argparse

from vggtkit.cli.common import UserError, add_device_options, resolve_device

EXAMPLES = """examples:
  vggtkit evaluate                                   # tiny-synthetic on the 24 held-out synthetic scenes
  vggtkit evaluate --model runs/tiny-synthetic/checkpoints/step_0002000 --baselines --untrained
  vggtkit evaluate --model tiny-synthetic --scene path/to/scene_folder --json scores.json
"""
BASELINE = "identity poses + constant depth"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model's cameras, depth and points against ground truth",
        description=(
            "Evaluate a model on scenes with ground truth: relative pose AUC@30/15/5 and RRA/RTA (all frame "
            "pairs), depth AbsRel and delta<1.25 after per-frame median scaling, and point accuracy/completeness "
            "after a Sim(3) alignment. Prints a table and optionally writes JSON."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default="tiny-synthetic",
        help="checkpoint folder/file, bundled name or hub id (default: tiny-synthetic)",
    )
    parser.add_argument(
        "--scene",
        action="append",
        default=[],
        metavar="DIR",
        help="scene folder with ground truth (repeatable); default: the held-out synthetic scenes",
    )
    parser.add_argument(
        "--heldout", metavar="JSON", help="held-out set definition (default: the one shipped in the package)"
    )
    parser.add_argument("--max-scenes", type=int, help="evaluate only the first N scenes")
    parser.add_argument("--baselines", action="store_true", help="also score identity poses + constant depth")
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="also score the same architecture with random weights (seed 0)",
    )
    parser.add_argument("--json", metavar="FILE", help="write summaries and per-scene scores as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    add_device_options(parser)
    parser.set_defaults(func=run)


def _samples(args: argparse.Namespace, image_width: int):
    if args.scene:
        from vggtkit.data.scene_folder import load_scene_folder

        folders = args.scene[: args.max_scenes] if args.max_scenes else args.scene
        for folder in folders:
            sample = load_scene_folder(folder, image_size=image_width)
            if not sample["has_depth"]:
                raise UserError(f"{folder} has no depths/ folder: evaluation needs ground-truth depth")
            yield sample
        return
    from vggtkit.data.synthetic import load_heldout_set, render_scene

    heldout = load_heldout_set(args.heldout)
    seeds = heldout.seeds[: args.max_scenes] if args.max_scenes else heldout.seeds
    for seed in seeds:
        yield render_scene(heldout.config, seed)


def _count(args: argparse.Namespace) -> int:
    if args.scene:
        return len(args.scene[: args.max_scenes] if args.max_scenes else args.scene)
    from vggtkit.data.synthetic import load_heldout_set

    seeds = load_heldout_set(args.heldout).seeds
    return len(seeds[: args.max_scenes] if args.max_scenes else seeds)


def run(args: argparse.Namespace) -> int:
    import json

    import torch
    from tqdm.auto import tqdm

    import vggtkit
    from vggtkit.eval import (
        evaluate_methods,
        format_markdown,
        format_table,
        identity_constant_baseline,
        model_method,
    )
    from vggtkit.utils.atomic import atomic_path
    from vggtkit.utils.dtypes import REDUCED_DTYPES, parse_dtype

    if args.max_scenes is not None and args.max_scenes < 1:
        raise UserError("--max-scenes must be >= 1")
    device = resolve_device(args.device)
    dtype = parse_dtype(args.dtype)
    dtype = dtype if dtype in REDUCED_DTYPES else None  # model_method: None runs float32 without autocast
    model = vggtkit.from_pretrained(args.model)
    methods = {str(args.model): model_method(model, device, dtype)}
    if args.untrained:
        torch.manual_seed(0)
        methods["untrained (same architecture)"] = model_method(type(model)(model.config), device, dtype)
    if args.baselines:
        methods[BASELINE] = identity_constant_baseline
    total = _count(args)
    with tqdm(total=total, desc="evaluating", unit="scene") as bar:
        results = evaluate_methods(
            methods, _samples(args, model.config.trained_resolution), progress=lambda n: bar.update(1)
        )
    print(format_markdown(results) if args.markdown else format_table(results))
    print(
        f"{total} scene(s); AUC/RRA/RTA in %, pose pairs pooled over scenes; AbsRel after per-frame median "
        "scaling; acc/comp in units of the normalised ground truth (mean point distance 1)"
    )
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
