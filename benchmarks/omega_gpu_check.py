"""The VGGT-Omega GPU check (see ``vggtkit.bench.omega_gpu_check``): its golden fixture on the device, and
VGGT-Omega-1B next to VGGT-1B in bfloat16 at 1 to 200 frames.

    python benchmarks/omega_gpu_check.py --out benchmarks/results/gpu-omega [--time-budget 300]
    python benchmarks/omega_gpu_check.py --device cpu --quick --out /tmp/omega-check   # the command itself
"""

from __future__ import annotations

import sys

from vggtkit.bench.omega_gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
