"""Markdown (GitHub pipe tables): caption above, footnotes below."""

from __future__ import annotations

from exports.stats import Estimate
from exports.table import Table, fmt_cell


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(table: Table) -> str:
    numeric = [any(isinstance(r.get(c.key), int | float | Estimate) for r in table.rows)
               for c in table.columns]
    lines = [
        f"**Table ({table.name}).** {table.full_caption()}", "",
        "| " + " | ".join(_cell(c.header) for c in table.columns) + " |",
        "|" + "|".join("---:" if n else ":---" for n in numeric) + "|",
    ]
    for row in table.rows:
        lines.append("| " + " | ".join(_cell(fmt_cell(row.get(c.key), c)) for c in table.columns) + " |")
    lines.append("")
    for i, note in enumerate(table.footnotes, 1):
        lines.append(f"({i}) {note}  ")
    lines.append(f"Runs: {', '.join(map(str, table.run_ids))}.")
    return "\n".join(lines) + "\n"
