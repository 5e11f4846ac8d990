"""Number formatting shared by the screens (one place, so columns line up)."""

from __future__ import annotations


def num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if abs(value) >= 10_000:
        return f"{value / 1000:.{digits}f}k"
    return f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def change(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.1f}%"


def when(iso: str) -> str:
    """`2026-11-25T12:00:03.123+00:00` -> `11-25 12:00` (fits the table)."""
    if len(iso) >= 16 and iso[10] in "T ":
        return f"{iso[5:10]} {iso[11:16]}"
    return iso


def bar(fraction: float, width: int) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    full = round(fraction * width)
    return "█" * full + "░" * (width - full)


def middle(text: str, width: int) -> str:
    """Shorten in the middle: sweep points differ at the end (`exp[policy=fifo]`)."""
    if len(text) <= width:
        return text
    tail = (width - 1) * 2 // 3
    return f"{text[:width - 1 - tail]}…{text[-tail:]}"


def requests(done: int, planned: int) -> str:
    """`237/~230`: requests done of those planned. The planned count is nominal (target
    rate × (warm-up + duration)); a Poisson schedule sends a few more or fewer, so the
    `~` keeps 237 of 230 from reading as an error. No plan: the count alone."""
    return f"{done}/~{planned}" if planned else str(done)
