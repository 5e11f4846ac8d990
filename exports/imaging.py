"""Writing figures: HTML always; PDF/SVG/PNG through kaleido and the system Chromium.

Why one call for all images: kaleido starts a browser per call (~1.6 s), so
every figure of an export goes through one `write_fig_from_object_sync` call,
i.e. one browser session.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import plotly.graph_objects as go

IMAGE_FORMATS = ("pdf", "svg", "png")
PNG_SCALE = 3  # 96 px/in x 3 = 288 dpi
NO_BROWSER_HINT = (
    "no Chromium found, so only HTML was written. Install it (Debian: `apt-get install -y "
    "chromium`, or run scripts/ensure_system_packages.sh) or point SAGETUI_CHROMIUM at a "
    "Chrome/Chromium binary, then rerun with --format pdf"
)


def find_browser() -> str | None:
    """The Chromium to render with: $SAGETUI_CHROMIUM, else /usr/bin/chromium, else PATH."""
    env = os.environ.get("SAGETUI_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def write_html(fig: go.Figure, path: Path) -> None:
    """Self-contained apart from plotly.min.js, written once beside the HTML files."""
    fig.write_html(path, include_plotlyjs="directory", full_html=True,
                   config={"displaylogo": False})


def write_images(items: list[tuple[go.Figure, Path]], fmt: str, browser: str) -> None:
    """Render every figure to `fmt` in one browser session."""
    import kaleido

    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"image format {fmt!r} not in {IMAGE_FORMATS}")
    specs = [
        dict(fig=fig.to_dict(), path=path,
             opts=dict(format=fmt, width=fig.layout.width, height=fig.layout.height,
                       scale=PNG_SCALE if fmt == "png" else 1))
        for fig, path in items
    ]
    if specs:
        kaleido.write_fig_from_object_sync(specs, kopts={"path": browser})
