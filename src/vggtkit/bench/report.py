"""Benchmark results: the machine, Markdown tables, memory growth per frame, CSV/JSON files."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vggtkit.utils.atomic import atomic_path


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, memory, torch version and threads (and the GPU name on CUDA)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or "",
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 1e6, 1)
    except OSError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


# ----------------------------------------------------------------------------- reporting
def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) < 10 ** (-digits) or abs(value) >= 1e6):
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


TABLE_COLUMNS = (
    ("config", "config", 0),
    ("frames", "S", 0),
    ("size", "WxH", 0),
    ("path", "path", 0),
    ("patch_embed_s", "embed s", 2),
    ("aggregator_s", "aggr. s", 2),
    ("camera_head_s", "camera s", 2),
    ("depth_head_s", "depth s", 2),
    ("point_head_s", "point s", 2),
    ("total_s", "total s", 2),
    ("wall_s", "wall s", 2),
    ("speedup_vs_reference", "speed-up", 2),
    ("peak_delta_mb", "peak +MB", 0),
    ("mem_ratio_vs_reference", "mem ratio", 1),
    ("achieved_gflops", "GFLOP/s", 0),
    ("pct_of_peak", "% peak", 0),
    ("max_rel_diff", "max diff", 2),
)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The result rows as a Markdown table (errors listed below it)."""
    header = "| " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(TABLE_COLUMNS)]
    failed = []
    for row in rows:
        if "error" in row:
            failed.append(row)
            continue
        cells = []
        for key, _, digits in TABLE_COLUMNS:
            if key == "size":
                cells.append(f"{row['width']}x{row['height']}")
            elif key == "peak_delta_mb":
                cells.append(f"{row[key]:.0f}")
            else:
                cells.append(_fmt(row.get(key), digits))
        lines.append("| " + " | ".join(cells) + " |")
    for row in failed:
        lines.append(
            f"\nfailed: {row['config']} S={row['frames']} {row['width']}x{row['height']}: {row['error']}"
        )
    return "\n".join(lines)


def memory_growth(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Peak memory growth per extra frame (least-squares slope of peak_delta_mb over frames) per path."""
    groups: dict[tuple, list[tuple[int, float]]] = {}
    for row in rows:
        if "error" not in row:
            key = (row["config"], row["device"], row["width"], row["height"], row["path"])
            groups.setdefault(key, []).append((row["frames"], row["peak_delta_mb"]))
    out = []
    for (config, device, w, h, path), points in groups.items():
        if len({f for f, _ in points}) < 2:
            continue
        xs, ys = zip(*sorted(points), strict=True)
        slope = statistics.linear_regression(xs, ys).slope
        out.append({"config": config, "device": device, "size": f"{w}x{h}", "path": path,
                    "frames": list(xs), "peak_delta_mb": [round(y) for y in ys], "mb_per_frame": slope})  # fmt: skip
    ref = {(g["config"], g["device"], g["size"]): g["mb_per_frame"] for g in out if g["path"] == "reference"}
    for g in out:
        base = ref.get((g["config"], g["device"], g["size"]))
        g["growth_ratio_vs_reference"] = (
            base / g["mb_per_frame"] if base and g["mb_per_frame"] > 0 else math.nan
        )
    return out


def save_results(
    rows: Sequence[dict[str, Any]], directory: str | Path, stem: str, extra: dict[str, Any]
) -> list[Path]:
    """Write ``stem.json`` (rows, growth, machine) and ``stem.csv`` atomically; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {**extra, "rows": list(rows), "memory_growth": memory_growth(rows)}
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    written = []
    for path, text in (
        (directory / f"{stem}.json", json.dumps(payload, indent=1, default=str)),
        (directory / f"{stem}.csv", buffer.getvalue()),
    ):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        written.append(path)
    return written
