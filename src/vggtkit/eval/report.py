"""Readable tables of evaluation summaries (plain text and Markdown)."""

from __future__ import annotations

from typing import Any

# (key in the summary, column title, scale, format)
COLUMNS = (
    ("auc@30", "AUC@30", 100, "{:.1f}"),
    ("auc@15", "AUC@15", 100, "{:.1f}"),
    ("auc@5", "AUC@5", 100, "{:.1f}"),
    ("rra@15", "RRA@15", 100, "{:.1f}"),
    ("rta@15", "RTA@15", 100, "{:.1f}"),
    ("rot_auc@30", "rot AUC@30", 100, "{:.1f}"),
    ("rot_err_mean", "rot err", 1, "{:.1f}"),
    ("depth_abs_rel", "AbsRel", 1, "{:.3f}"),
    ("depth_delta_1.25", "d<1.25", 100, "{:.1f}"),
    ("point_accuracy", "acc", 1, "{:.3f}"),
    ("point_completeness", "comp", 1, "{:.3f}"),
    ("track_err_median", "track px", 1, "{:.2f}"),
    ("track_vis_accuracy", "vis acc", 100, "{:.1f}"),
)


def _rows(results: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    present = [c for c in COLUMNS if any(c[0] in r["summary"] for r in results.values())]
    header = ["method"] + [c[1] for c in present]
    rows = []
    for name, result in results.items():
        summary = result["summary"]
        cells = [name]
        for key, _, scale, fmt in present:
            cells.append(fmt.format(summary[key] * scale) if key in summary else "-")
        rows.append(cells)
    return header, rows


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """Fixed-width text table, one row per method."""
    header, rows = _rows(results)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def format_markdown(results: dict[str, dict[str, Any]]) -> str:
    """GitHub Markdown table, one row per method."""
    header, rows = _rows(results)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
