"""Table renderers: one module per format, each `render(table) -> str`."""

from __future__ import annotations

from exports.render import csv, json, latex, markdown

RENDERERS = {"latex": latex.render, "markdown": markdown.render, "csv": csv.render, "json": json.render}
EXTENSIONS = {"latex": "tex", "markdown": "md", "csv": "csv", "json": "json"}
