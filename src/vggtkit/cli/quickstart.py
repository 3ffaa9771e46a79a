"""`vggtkit quickstart`: the README's main job."""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="run a small model end to end and print what it computed",
        description="Build a tiny random-weight VGGT, run it on random frames and print the outputs.",
    )
    parser.add_argument("--frames", type=int, default=4, help="number of frames (default: 4)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from vggtkit import VGGT, tiny_config

    torch.manual_seed(0)
    model = VGGT(tiny_config()).eval()
    images = torch.rand(args.frames, 3, 112, 154)
    queries = torch.tensor([[40.0, 30.0], [100.0, 80.0]])
    start = time.perf_counter()
    with torch.no_grad():
        out = model(images, queries)
    elapsed = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.parameters())
    print(f"tiny VGGT ({n_params / 1e6:.2f} M parameters, random weights), {args.frames} frames 112x154")
    print(f"forward pass: {elapsed:.2f} s")
    for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf", "track", "vis", "conf"):
        value = out[key]
        print(f"  {key:18s} {tuple(value.shape)!s:24s} mean {value.float().mean().item():+.4f}")
    return 0
