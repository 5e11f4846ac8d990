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

from exports import bundle as bundling
from exports import imaging, manifest
from exports.context import ExportContext
from exports.db import open_readonly
from exports.errors import ExportError
from exports.figures import FIGURES
from exports.figures.base import FigureResult
from exports.model import load_runs
from exports.render import EXTENSIONS, RENDERERS
from exports.selection import Selection
from exports.tables import TABLES

TABLE_FORMATS = tuple(RENDERERS)
FIGURE_FORMATS = ("html", *imaging.IMAGE_FORMATS, "csv")  # csv: the figure's data alone
FORMATS = tuple(dict.fromkeys((*TABLE_FORMATS, *FIGURE_FORMATS, "brief")))


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
    store = open_readonly(db)
    try:
        ctx = ExportContext(store, load_runs(store, selection), allow_mismatch)
        files: dict[str, str | bytes] = {}
        figs: dict[str, FigureResult] = {}
        result = ExportResult()
        # Images: the format asked for; a bundle asked for as tables or a brief gets PDFs.
        image_fmt = fmt if fmt in imaging.IMAGE_FORMATS else (
            "pdf" if bundle and fmt not in ("html", "csv") else None)
        browser = browser or imaging.find_browser()
        if image_fmt and (bundle or figure) and browser is None:
            result.messages.append(f"{image_fmt.upper()} not written: {imaging.NO_BROWSER_HINT}")
            image_fmt = None
        if bundle:
            _bundle(ctx, image_fmt, files, figs, result)
        elif table or figure:
            kind, name = ("table", table) if table else ("figure", figure or "")
            runs, note = manifest.runs_for(ctx.runs, kind, name)
            if note:
                result.messages.append(note)
            sub = ExportContext(store, runs, allow_mismatch)
            if table:
                files[f"{table}.{EXTENSIONS[fmt]}"] = RENDERERS[fmt](TABLES[table].build(sub))
            else:
                f = FIGURES[name].build(sub)
                if fmt != "csv":
                    figs[name] = f
                files[f"{name}.csv"] = figure_csv(f)
        else:  # --format brief alone: the briefs a bundle would hold
            files["brief.md"] = _briefs(ctx)
        _write_all(Path(out_dir), files, figs, image_fmt, browser, result)
        return result
    finally:
        store.close()


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


def _bundle(ctx: ExportContext, image: str | None, files: dict, figs: dict, result: ExportResult) -> None:
    """Per unit (suite part or experiment): its tables and figures, figure data, brief; an index."""
    index = ["# Export bundle", "", f"Runs: {', '.join(str(r.id) for r in ctx.runs)}.", "",
             "Reproducibility appendix (all runs): [tex](reproducibility.tex), [md](reproducibility.md), "
             "[csv](reproducibility.csv), [json](reproducibility.json).", ""]
    repro = TABLES["reproducibility"].build(ctx)
    for f_name, render in RENDERERS.items():
        files[f"reproducibility.{EXTENSIONS[f_name]}"] = render(repro)
    built_units, built = [], 0
    for unit in bundling.units(ctx.runs):
        if not (unit.tables or unit.figures):
            index += [f"## {unit.label}", "", f"Runs: {', '.join(str(r.id) for r in unit.runs)}: "
                      "the suite manifest names no output for this part.", ""]
            result.messages.append(f"{unit.label}: the suite manifest names no output for this part")
            continue
        b = bundling.build(ctx, unit)
        built_units.append(b)
        d = unit.path
        skipped = [n for n, x in [*b.tables.items(), *b.figures.items()] if isinstance(x, str)]
        if skipped:
            result.messages.append(f"{unit.label}: not produced (reasons in index.md): {', '.join(skipped)}")
        index += [f"## {unit.label}", "",
                  f"Runs: {', '.join(str(r.id) for r in unit.runs)}"
                  + (" (outputs named by the suite manifest)." if unit.from_manifest else "."), ""]
        index += [f"> {n}" for n in b.footnotes] + ([""] if b.footnotes else [])
        for name, t in b.tables.items():
            if isinstance(t, str):
                index.append(f"- table `{name}` — not produced: {t}")
                continue
            built += 1
            for f_name, render in RENDERERS.items():
                files[f"{d}/tables/{name}.{EXTENSIONS[f_name]}"] = render(t)
            index.append(f"- table `{name}` ([tex]({d}/tables/{name}.tex), [md]({d}/tables/{name}.md), "
                         f"[csv]({d}/tables/{name}.csv), [json]({d}/tables/{name}.json)): {t.full_caption()}")
        for name, f in b.figures.items():
            if isinstance(f, str):
                index.append(f"- figure `{name}` — not produced: {f}")
                continue
            built += 1
            figs[f"{d}/figures/{name}"] = f
            files[f"{d}/data/{name}.csv"] = figure_csv(f)
            links = [f"[html]({d}/figures/{name}.html)", f"[data]({d}/data/{name}.csv)"]
            if image:
                links.insert(1, f"[{image}]({d}/figures/{name}.{image})")
            index.append(f"- figure `{name}` ({', '.join(links)}): {f.full_caption()}")
        index.append("")
    if not built:
        reasons = [f"{b.unit.label}: {kind} {n}: {x}" for b in built_units
                   for kind, items in (("table", b.tables), ("figure", b.figures))
                   for n, x in items.items() if isinstance(x, str)]
        raise ExportError("bundle: no table or figure could be built from these runs:\n  - "
                          + "\n  - ".join(reasons or result.messages))
    files["brief.md"] = bundling.briefs(ctx, built_units)
    files["index.md"] = "\n".join(index)


def _briefs(ctx: ExportContext) -> str:
    return bundling.briefs(ctx, [bundling.build(ctx, unit) for unit in bundling.units(ctx.runs)])


def _write_all(out: Path, files: dict[str, str | bytes], figs: dict[str, FigureResult],
               image_fmt: str | None, browser: str | None, result: ExportResult) -> None:
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
            for stem, f in figs.items():
                (tmp / stem).parent.mkdir(parents=True, exist_ok=True)
                imaging.write_html(f.figure, tmp / f"{stem}.html")
            if image_fmt and browser:  # no browser: image_fmt was dropped with a message
                try:
                    imaging.write_images(
                        [(f.figure, tmp / f"{stem}.{image_fmt}") for stem, f in figs.items()],
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
