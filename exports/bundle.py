"""Bundles: split a selection into units (suite parts or experiments) and build each one.

Why units: one suite experiment holds several sweeps (parts); a table means
something only over the runs of its part. A unit is the runs of one suite
manifest entry's parts (only the outputs the manifest names), or of one
experiment × part without a manifest (every output those runs support).
"""

from __future__ import annotations

from dataclasses import dataclass

from exports import brief
from exports.baseline import enforce
from exports.context import ExportContext
from exports.errors import ExportError
from exports.figures import FIGURES
from exports.figures.base import FigureResult
from exports.manifest import entries
from exports.model import RunView
from exports.table import Table
from exports.tables import TABLES


@dataclass
class Unit:
    label: str  # for people: "scalability / backends"
    path: str  # folder inside the bundle
    runs: list[RunView]
    tables: list[str]
    figures: list[str]
    from_manifest: bool


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_") or "runs"


def units(runs: list[RunView]) -> list[Unit]:
    by_exp: dict[str, list[RunView]] = {}
    for r in runs:
        by_exp.setdefault(r.experiment or "(no experiment)", []).append(r)
    out: list[Unit] = []
    for exp, exp_runs in by_exp.items():
        by_part: dict[str, list[RunView]] = {}
        for r in exp_runs:
            by_part.setdefault(r.part, []).append(r)
        covered: set[str] = set()
        named: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
        for e in entries(exp_runs[0].experiment_spec, exp):
            tables, figures = named.setdefault(e.parts, ([], []))
            (tables if e.kind == "table" else figures).append(e.name)
            covered.update(e.parts)
        for parts, (tables, figures) in named.items():
            rs = [r for r in exp_runs if r.part in parts]
            if rs:
                label = "+".join(parts)
                out.append(Unit(f"{exp} / {label}", f"{slug(exp)}/{slug(label)}", rs,
                                [t for t in tables if t in TABLES], [f for f in figures if f in FIGURES],
                                True))
        for part, rs in by_part.items():
            if part in covered:
                continue
            if named:  # a suite manifest is the authority: parts it does not name export nothing
                out.append(Unit(f"{exp} / {part or '(no part)'}", "", rs, [], [], True))
                continue
            label = f"{exp} / {part}" if part else exp
            path = f"{slug(exp)}/{slug(part)}" if part else slug(exp)
            out.append(Unit(label, path, rs, list(TABLES), list(FIGURES), False))
    return out


@dataclass
class Built:
    unit: Unit
    footnotes: list[str]
    tables: dict[str, Table | str]  # name -> table, or why it could not be built
    figures: dict[str, FigureResult | str]


def build(ctx: ExportContext, unit: Unit) -> Built:
    """Every output of a unit; the fair-baseline refusal of a unit fails the whole call."""
    footnotes = enforce(unit.runs, unit.label, ctx.allow_mismatch)
    sub = ExportContext(ctx.store, unit.runs, ctx.allow_mismatch)
    tables: dict[str, Table | str] = {}
    figures: dict[str, FigureResult | str] = {}
    for name in unit.tables:
        try:
            tables[name] = TABLES[name].build(sub)
        except ExportError as exc:
            tables[name] = str(exc)
    for name in unit.figures:
        try:
            figures[name] = FIGURES[name].build(sub)
        except ExportError as exc:
            figures[name] = str(exc)
    return Built(unit, footnotes, tables, figures)


def briefs(ctx: ExportContext, built: list[Built]) -> str:
    """One brief per experiment: claims over each maximal run set (a unit whose runs are not
    all inside another unit's), captions for every unit."""
    by_exp: dict[str, list[Built]] = {}
    for b in built:
        by_exp.setdefault(b.unit.runs[0].experiment or "(no experiment)", []).append(b)
    out = []
    for exp, bs in by_exp.items():
        sets = [frozenset(r.id for r in b.unit.runs) for b in bs]
        maximal = [b for b, ids in zip(bs, sets, strict=True)
                   if not any(ids < other for other in sets)]
        seen: set[frozenset] = set()
        claim_sets = []
        for b in maximal:
            ids = frozenset(r.id for r in b.unit.runs)
            if ids not in seen:
                seen.add(ids)
                claim_sets.append((b.unit.label, ExportContext(ctx.store, b.unit.runs, ctx.allow_mismatch)))
        out.append(brief.render(exp, claim_sets, [(b.unit.label, b.tables, b.figures) for b in bs]))
    return "\n".join(out)
