"""The format-neutral table every renderer (LaTeX, Markdown, CSV, JSON) reads.

Why: builders compute numbers once; renderers only lay them out, so every format
carries exactly the same values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exports.stats import CI_METHOD, Estimate

Cell = str | int | float | Estimate | None


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # with its unit, e.g. "Throughput (req/s)"
    decimals: int = 1  # for numbers and estimates
    suffix: str = ""  # appended to numbers in LaTeX/Markdown, e.g. "×"
    # LaTeX only: adjacent columns sharing `group` get one spanning header over `sub` headers.
    group: str | None = None
    sub: str | None = None


@dataclass
class Table:
    name: str
    caption: str
    columns: list[Column]
    rows: list[dict[str, Cell]]
    run_ids: list[int]
    footnotes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # definitions appended to the caption

    def full_caption(self) -> str:
        """Caption, definitions, and the CI method when any cell is a repetition mean."""
        has_estimates = any(isinstance(v, Estimate) for r in self.rows for v in r.values())
        return " ".join([self.caption, *self.notes, *([CI_METHOD] if has_estimates else [])])


def fmt_number(value: float | int, decimals: int) -> str:
    """Fixed decimals; a non-zero value that would print as zero shows as "<0.01" instead."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = f"{value:.{decimals}f}"
    if value != 0 and float(text) == 0:
        return ("<" if value > 0 else ">-") + f"{10 ** -decimals:.{decimals}f}"
    return text


def fmt_cell(cell: Cell, col: Column, pm: str = "±") -> str:
    """Text of a cell: numbers to the column's decimals, estimates as mean ± half-width."""
    if cell is None:
        return "–"
    if isinstance(cell, Estimate):
        text = fmt_number(cell.mean, col.decimals) + col.suffix
        if cell.n > 1:
            text += f" {pm} {fmt_number(cell.half_width, col.decimals)}"
        return text
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        return fmt_number(cell, col.decimals) + col.suffix
    return str(cell)


def plain(cell: Cell) -> Any:
    """A JSON/CSV-friendly value of a cell (estimates become a dict)."""
    if isinstance(cell, Estimate):
        return {"mean": cell.mean, "ci95_low": cell.low, "ci95_high": cell.high, "n": cell.n}
    return cell
