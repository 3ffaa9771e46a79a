"""Forward-pass benchmark script: the same as `vggtkit bench` (see `vggtkit bench --help`).

Examples:
    python benchmarks/forward.py --config tiny --frames 1 4
    python benchmarks/forward.py --config 1b --frames 1 --size 518x518 --paths reference float32 bfloat16 --repeats 2
"""

from __future__ import annotations

import sys

from vggtkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
