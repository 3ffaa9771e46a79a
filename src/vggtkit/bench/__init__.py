"""The forward-pass benchmark behind ``vggtkit bench``: random-weight models of both families, per-stage time, peak memory, FLOP/s
and the difference to the reference plan, as tables and CSV/JSON files.

Every (configuration, device, frames, size) case runs in a fresh process (peak RSS per case), builds a
random-weight model and runs the requested paths in alternating order ``repeats`` times. Each path's time is the
sum over its steps (patch embedder, each block, each head) of the fastest run of that step, robust to other
processes sharing the CPU; the fastest whole run is ``wall_s``. The reference plan's outputs are the oracle.
"""

from vggtkit.bench.cases import CONFIGS, Case, PathSpec, run_case, run_cases
from vggtkit.bench.model import (
    BENCH_CONFIGS,
    bench_config,
    check_image_size,
    forward_flops,
    parse_size,
    random_model,
)
from vggtkit.bench.report import machine_info, markdown_table, memory_growth, save_results

__all__ = [
    "BENCH_CONFIGS",
    "CONFIGS",
    "Case",
    "PathSpec",
    "bench_config",
    "check_image_size",
    "forward_flops",
    "machine_info",
    "markdown_table",
    "memory_growth",
    "parse_size",
    "random_model",
    "run_case",
    "run_cases",
    "save_results",
]
