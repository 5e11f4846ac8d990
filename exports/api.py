"""One export call: select runs, build tables/figures/brief, write them atomically.

Why atomic: a failed export must leave no partial files, so everything is
built in memory, written into a temporary folder inside the output folder and
moved into place only when every file is written.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from exports import brief, imaging
from exports.baseline import enforce
from exports.context import ExportContext
from exports.db import open_readonly
from exports.errors import ExportError
from exports.figures import FIGURES
from exports.figures.base import FigureResult
from exports.model import load_runs
from exports.render import EXTENSIONS, RENDERERS
from exports.selection import Selection
from exports.table import Table
from exports.tables import TABLES

TABLE_FORMATS = tuple(RENDERERS)
FIGURE_FORMATS = ("html", *imaging.IMAGE_FORMATS)
FORMATS = (*TABLE_FORMATS, *FIGURE_FORMATS, "brief")


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def catalogue() -> list[tuple[str, str, str]]:
    """(kind, name, description) of every table and figure, for `--list`."""
    return ([("table", t.name, t.description) for t in TABLES.values()]
            + [("figure", f.name, f.description) for f in FIGURES.values()])


def export(db: str | Path, *, fmt: str, selection: Selection, out_dir: str | Path,
           table: str | None = None, figure: str | None = None, bundle: bool = False,
           allow_mismatch: bool = False, browser: str | None = None) -> ExportResult:
    """Build what was asked and write it under `out_dir`; ExportError on bad input."""
    _check_request(fmt, table, figure, bundle)
    engine = open_readonly(db)
    try:
        ctx = ExportContext(engine, load_runs(engine, selection), allow_mismatch)
        files: dict[str, str | bytes] = {}
        figs: dict[str, FigureResult] = {}
        result = ExportResult()
        if bundle:
            _bundle(ctx, fmt, files, figs, result)
        elif table:
            t = TABLES[table].build(ctx)
            files[f"{table}.{EXTENSIONS[fmt]}"] = RENDERERS[fmt](t)
        elif figure:
            f = FIGURES[figure].build(ctx)
            figs[figure] = f
            files[f"{figure}.csv"] = figure_csv(f)
        else:  # --format brief alone
            files["brief.md"] = _brief(ctx)[0]
        image_fmt = fmt if fmt in imaging.IMAGE_FORMATS else ("pdf" if bundle else None)
        prefix = "figures/" if bundle else ""
        browser = browser or imaging.find_browser()
        if image_fmt and figs and browser is None:
            result.messages.append(f"{image_fmt.upper()} not written: {imaging.NO_BROWSER_HINT}")
            image_fmt = None
        _write_all(Path(out_dir), files, figs, prefix, image_fmt, browser, result)
        return result
    finally:
        engine.dispose()


def _check_request(fmt: str, table: str | None, figure: str | None, bundle: bool) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if sum(bool(x) for x in (table, figure, bundle)) > 1:
        raise ExportError("give only one of --table, --figure, --bundle")
    if not (table or figure or bundle or fmt == "brief"):
        raise ExportError("say what to export: --table NAME, --figure NAME or --bundle (see --list)")
    if table:
        if table not in TABLES:
            raise ExportError(f"--table: unknown table {table!r}; tables: {', '.join(TABLES)}")
        if fmt not in TABLE_FORMATS:
            raise ExportError(f"--format {fmt} is not a table format; tables come as {', '.join(TABLE_FORMATS)}")
    if figure:
        if figure not in FIGURES:
            raise ExportError(f"--figure: unknown figure {figure!r}; figures: {', '.join(FIGURES)}")
        if fmt not in FIGURE_FORMATS:
            raise ExportError(f"--format {fmt} is not a figure format; figures come as {', '.join(FIGURE_FORMATS)}")


def figure_csv(f: FigureResult) -> str:
    """The data behind a figure, one row per plotted value."""
    buf = io.StringIO()
    keys: list[str] = []
    for row in f.data:
        keys += [k for k in row if k not in keys]
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(f.data)
    return buf.getvalue()


def _brief(ctx: ExportContext) -> tuple[str, dict, dict]:
    tables: dict[str, Table | str] = {}
    figures: dict[str, FigureResult | str] = {}
    for name, spec in TABLES.items():
        try:
            tables[name] = spec.build(ctx)
        except ExportError as exc:
            tables[name] = str(exc)
    for name, spec in FIGURES.items():
        try:
            figures[name] = spec.build(ctx)
        except ExportError as exc:
            figures[name] = str(exc)
    return brief.render(ctx, tables, figures), tables, figures


def _bundle(ctx: ExportContext, fmt: str, files: dict, figs: dict, result: ExportResult) -> None:
    # The fair-baseline rule covers the whole selection: refuse the bundle as a whole.
    footnotes = enforce(ctx.runs, "bundle", ctx.allow_mismatch)
    text, tables, figures = _brief(ctx)
    files["brief.md"] = text
    index = ["# Export bundle", "", f"Runs: {', '.join(str(r.id) for r in ctx.runs)}.", ""]
    index += [f"> {n}" for n in footnotes] + ([""] if footnotes else [])
    index += ["## Tables", ""]
    for name, t in tables.items():
        if isinstance(t, str):
            index.append(f"- `{name}` — not produced: {t}")
            result.messages.append(f"table {name} skipped: {t}")
            continue
        for f_name, render in RENDERERS.items():
            files[f"tables/{name}.{EXTENSIONS[f_name]}"] = render(t)
        index.append(f"- `{name}` ([tex](tables/{name}.tex), [md](tables/{name}.md), "
                     f"[csv](tables/{name}.csv), [json](tables/{name}.json)): {t.full_caption()}")
    index += ["", "## Figures", ""]
    image = fmt if fmt in imaging.IMAGE_FORMATS else "pdf"
    for name, f in figures.items():
        if isinstance(f, str):
            index.append(f"- `{name}` — not produced: {f}")
            result.messages.append(f"figure {name} skipped: {f}")
            continue
        figs[name] = f
        files[f"data/{name}.csv"] = figure_csv(f)
        index.append(f"- `{name}` ([html](figures/{name}.html), [{image}](figures/{name}.{image}), "
                     f"[data](data/{name}.csv)): {f.full_caption()}")
    if not any(not isinstance(x, str) for x in [*tables.values(), *figures.values()]):
        raise ExportError("bundle: no table or figure could be built from these runs:\n  - "
                          + "\n  - ".join(result.messages))
    index.append("")
    files["index.md"] = "\n".join(index)


def _write_all(out: Path, files: dict[str, str | bytes], figs: dict[str, FigureResult],
               prefix: str, image_fmt: str | None, browser: str | None, result: ExportResult) -> None:
    created = _make_dir(out)
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".sagetui-export-", dir=out))
        for rel, content in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content, encoding="utf-8")
        if figs:
            (tmp / prefix).mkdir(parents=True, exist_ok=True)
            for name, f in figs.items():
                imaging.write_html(f.figure, tmp / f"{prefix}{name}.html")
            if image_fmt:
                try:
                    imaging.write_images(
                        [(f.figure, tmp / f"{prefix}{n}.{image_fmt}") for n, f in figs.items()],
                        image_fmt, browser)
                except Exception as exc:  # kaleido/choreographer raise their own types
                    raise ExportError(f"rendering {image_fmt.upper()} with {browser} failed: {exc}") from exc
        moved = []
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                dest = out / p.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, dest)
                moved.append(dest)
        result.files = moved
    except OSError as exc:
        for d in created:
            shutil.rmtree(d, ignore_errors=True)
        raise ExportError(f"output folder {out}: cannot write ({exc})") from exc
    except BaseException:
        for d in created:
            shutil.rmtree(d, ignore_errors=True)
        raise
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _make_dir(out: Path) -> list[Path]:
    """Create `out` (and missing parents); return what was created, outermost first."""
    missing = []
    p = out
    while not p.exists():
        missing.append(p)
        p = p.parent
    if not p.is_dir():
        raise ExportError(f"output folder {out}: {p} is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"output folder {out}: cannot create ({exc})") from exc
    if not os.access(out, os.W_OK):
        raise ExportError(f"output folder {out}: not writable")
    return list(reversed(missing))
