"""The GPU check (see `vggtkit.bench.gpu_check`): on a CUDA machine, from the repository root,

    PYTHONPATH=src python3 benchmarks/gpu_check.py --out benchmarks/results/gpu

runs the model tests and golden fixtures on the GPU, reduced-precision drift, VGGT-1B in bfloat16 at 1 to 200
frames and the largest frame count in one pass, and writes gpu_check.{json,csv,md}.
"""

from __future__ import annotations

import sys

from vggtkit.bench.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
