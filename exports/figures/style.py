"""The publication template every figure uses.

Why one place: papers need identical fonts, widths and colours across figures.
Serif 8 pt text, one-column 3.5 in or two-column 7 in wide (Plotly lays out in
CSS pixels, 96 per inch), Okabe–Ito colour-blind-safe palette, no chart title.
"""

from __future__ import annotations

import plotly.graph_objects as go

PX_PER_INCH = 96
WIDTHS_IN = {"single": 3.5, "double": 7.0}
HEIGHT_IN = 2.4
# Okabe & Ito (2008), yellow moved last: it is faint on white paper.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
DASHES = ("solid", "dash", "dot", "dashdot")
FONT = "Times New Roman, Times, serif"

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font=dict(family=FONT, size=9, color="black"),
        colorway=list(OKABE_ITO),
        paper_bgcolor="white", plot_bgcolor="white",
        margin=dict(l=48, r=8, t=8, b=40),
        xaxis=dict(showline=True, linecolor="black", ticks="outside", mirror=True,
                   showgrid=True, gridcolor="#e5e5e5", zeroline=False),
        yaxis=dict(showline=True, linecolor="black", ticks="outside", mirror=True,
                   showgrid=True, gridcolor="#e5e5e5", zeroline=False),
        # Above the plot, horizontal: a one-column figure has no room beside it.
        legend=dict(orientation="h", x=0, xanchor="left", y=1.02, yanchor="bottom",
                    bgcolor="rgba(255,255,255,0)", font=dict(size=7), tracegroupgap=0,
                    itemwidth=30),
    )
)


def size_px(width: str) -> tuple[int, int]:
    """(width, height) in CSS pixels for a single- or double-column figure."""
    return round(WIDTHS_IN[width] * PX_PER_INCH), round(HEIGHT_IN * PX_PER_INCH)


def new_figure(width: str = "single") -> go.Figure:
    w, h = size_px(width)
    return go.Figure(layout=dict(template=TEMPLATE, width=w, height=h, title=None))


def color(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def error_y(estimates) -> dict:
    """Plotly error bars from 95% CI half-widths."""
    return dict(type="data", array=[e.half_width for e in estimates], visible=True, thickness=1)


LEGEND_ROW_PX = 19  # one legend row at 7 pt, measured on exported PDFs/PNGs
LEGEND_CHAR_PX = 4.2  # mean width of a 7 pt serif character
LEGEND_ITEM_PAD_PX = 46  # symbol (itemwidth 30) and gaps


def fit_legend(fig: go.Figure) -> None:
    """Grow the figure's height by the legend rows above the plot, so the plot keeps its size.

    Plotly takes the legend's room out of the plot area; with long series names on a
    3.5 in figure that would squash the axes.
    """
    names = [t.name for t in fig.data if t.showlegend is not False and t.name]
    if not names or fig.layout.showlegend is False:
        return
    width = (fig.layout.width or 336) - 56
    rows, used = 1, 0.0
    for name in names:
        w = LEGEND_ITEM_PAD_PX + LEGEND_CHAR_PX * len(name)
        if used and used + w > width:
            rows, used = rows + 1, 0.0
        used += w
    base = round(HEIGHT_IN * PX_PER_INCH)
    fig.update_layout(height=base + rows * LEGEND_ROW_PX + 6)
