"""`vggtkit bench`: time and memory of the forward pass, fast path against the reference path."""

from __future__ import annotations

import argparse
import datetime
import logging

from vggtkit.cli.common import UserError

logger = logging.getLogger(__name__)

EXAMPLES = """examples:
  vggtkit bench --config tiny --frames 1 4
  vggtkit bench --config 1b --frames 1 --size 518x518 --paths reference float32 bfloat16 --repeats 2
  vggtkit bench --config tiny 1b --frames 1 4 8 16 --paths reference float32 --name memory
  vggtkit bench --config omega-1b --frames 1 4 8 --size 592x448 --paths float32

paths: 'reference' (plain float32, every layer kept, no chunking), or a dtype for the fast path: float32,
bfloat16, float16 (GPU), with optional flags: +heads (heads in that dtype too), +store (kept layers in that
dtype), +weights (weights converted to it; runs last). Models have random weights; VGGT-1B takes about 5 GB,
VGGT-Omega-1B (omega-1b) about 4.6 GB.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the forward pass (time per stage, peak memory, FLOP/s) against the reference path",
        description=(
            "Run random-weight models on random frames and report wall time per stage, peak memory (process "
            "RSS on CPU, allocator peak on CUDA) and FLOP/s against a matrix-product peak measured in the same "
            "run, for the fast path and the reference path side by side, with the largest output difference."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        nargs="+",
        default=["tiny"],
        help="model configuration(s): tiny, 1b (VGGT-1B), omega-tiny, omega-1b (VGGT-Omega-1B-512) (default: tiny)",
    )
    parser.add_argument("--frames", nargs="+", type=int, default=[1, 4], help="frame counts (default: 1 4)")
    parser.add_argument(
        "--size",
        nargs="+",
        default=["518x392"],
        help="image sizes WIDTHxHEIGHT, multiples of 14 for VGGT (default: 518x392)",
    )
    parser.add_argument(
        "--paths",
        nargs="+",
        default=["reference", "float32", "bfloat16"],
        help="paths to compare (default: reference float32 bfloat16; see below)",
    )
    parser.add_argument("--device", nargs="+", default=["cpu"], help="devices, e.g. cpu cuda (default: cpu)")
    parser.add_argument("--batch", type=int, default=1, help="sequences per forward pass (default: 1)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per path; the fastest is reported (default: 1)"
    )
    parser.add_argument(
        "--frame-chunk-size", type=int, default=None, help="fast path frames per chunk (default: auto)"
    )
    parser.add_argument(
        "--max-memory", default=None, help="fast path memory budget, e.g. 8GB (default: none)"
    )
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and CSV results")
    parser.add_argument(
        "--name", default=None, help="file name stem of the results (default: forward-<time>)"
    )
    parser.add_argument(
        "--no-isolate",
        action="store_true",
        help="run every case in this process (default: a fresh process each)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds per case before it is abandoned")
    parser.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> list[tuple[int, int]]:
    from vggtkit.bench import PathSpec, bench_config, check_image_size, parse_size

    if any(f < 1 for f in args.frames) or args.batch < 1 or args.repeats < 1:
        raise UserError("--frames, --batch and --repeats must be positive")
    if args.frame_chunk_size is not None and args.frame_chunk_size < 1:
        raise UserError("--frame-chunk-size must be positive")
    sizes = [parse_size(s) for s in args.size]
    for name in args.config:
        config = bench_config(name)
        for h, w in sizes:
            check_image_size(config, h, w)
    for p in args.paths:
        PathSpec.parse(p)
    if args.max_memory is not None:
        from vggtkit.utils.memory import parse_memory

        parse_memory(args.max_memory)
    return sizes


def run(args: argparse.Namespace) -> int:
    from vggtkit.bench import Case, machine_info, markdown_table, memory_growth, run_cases, save_results
    from vggtkit.cli.common import resolve_device

    sizes = _validate(args)
    devices = [str(resolve_device(d)) for d in args.device]
    cases = [
        Case(
            config=config,
            device=device,
            frames=frames,
            height=h,
            width=w,
            paths=tuple(args.paths),
            repeats=args.repeats,
            batch=args.batch,
            frame_chunk_size=args.frame_chunk_size,
            max_memory=args.max_memory,
        )
        for config in args.config
        for device in devices
        for h, w in sizes
        for frames in args.frames
    ]
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = run_cases(cases, isolate=not args.no_isolate, timeout_s=args.timeout)
    info = {"machine": machine_info(devices[0]), "started_utc": started.isoformat(timespec="seconds")}
    info["arguments"] = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    stem = args.name or f"forward-{started.strftime('%Y%m%d-%H%M%S')}"
    paths = save_results(rows, args.out, stem, info)
    machine = info["machine"]
    print(f"machine: {machine.get('cpu')}, {machine.get('cpu_count')} cores, torch {machine['torch']}, "
          f"{machine['threads']} threads")  # fmt: skip
    print(markdown_table(rows))
    growth = memory_growth(rows)
    if growth:
        print("\nmemory growth per extra frame (slope of peak +MB over frames):\n")
        print("| config | WxH | path | frames | peak +MB | MB per frame | vs reference |")
        print("|---|---|---|---|---|---|---|")
        for g in growth:
            ratio = g["growth_ratio_vs_reference"]
            print(f"| {g['config']} | {g['size']} | {g['path']} | {g['frames']} | {g['peak_delta_mb']} | "
                  f"{g['mb_per_frame']:.1f} | {'-' if ratio != ratio else f'{ratio:.1f}x smaller'} |")  # fmt: skip
    print("\nresults: " + ", ".join(str(p) for p in paths))
    return 1 if any("error" in r for r in rows) else 0
