"""What a figure builder returns: the figure, the data behind it, its caption."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from exports.figures.style import fit_legend
from exports.stats import CI_METHOD


@dataclass
class FigureResult:
    name: str
    figure: go.Figure
    data: list[dict[str, Any]]  # the rows written to the figure's CSV
    caption: str
    run_ids: list[int]
    width: str = "single"
    footnotes: list[str] = field(default_factory=list)
    error_bars: bool = True

    def __post_init__(self) -> None:
        fit_legend(self.figure)

    def full_caption(self) -> str:
        parts = [self.caption]
        if self.error_bars:
            parts.append("Error bars: " + CI_METHOD)
        parts += self.footnotes
        return " ".join(parts)
