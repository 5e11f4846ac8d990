"""`sagetui export`: tables, figures, bundles and the results brief from the run store.

Why the exports package is imported inside the command: it pulls in plotly,
scipy and kaleido (~1 s), and `sagetui --help` imports this module.
"""

from __future__ import annotations

import click

from .completion import complete_export_format, complete_figures, complete_suites, complete_tables

# Short names people type, and the format each stands for.
ALIASES = {"md": "markdown", "tex": "latex", "htm": "html"}
# A bundle asked for without --format: LaTeX and Markdown (and CSV, JSON) tables,
# PDF figures (HTML where no browser is found), the brief and the index.
BUNDLE_DEFAULT = "pdf"


def normalise_format(fmt: str | None, bundle: bool) -> str | None:
    """The format the exports API takes: aliases resolved, a bundle's default filled in."""
    if fmt is None:
        return BUNDLE_DEFAULT if bundle else None
    return ALIASES.get(fmt.lower(), fmt.lower())


def index_last(files: list) -> list:
    """The written files with the bundle's index.md moved to the end, so the last
    line printed is the file to open."""
    top = min((len(p.parts) for p in files), default=0)
    index = [p for p in files if p.name == "index.md" and len(p.parts) == top]
    return [p for p in files if p not in index] + index


@click.command("export")
@click.option("--format", "fmt", default=None, shell_complete=complete_export_format,
              help="Tables: latex (tex), markdown (md), csv, json. Figures: html, pdf, svg, png. "
                   "brief: results brief. A bundle without --format: every table format, PDF "
                   "figures (HTML without a browser) and the brief.")
@click.option("--table", help="Table name (see --list).", shell_complete=complete_tables)
@click.option("--figure", help="Figure name (see --list).", shell_complete=complete_figures)
@click.option("--bundle", is_flag=True, help="Every table and figure, figure data, brief and an index.")
@click.option("--suite", help="Runs of experiments of this suite.", shell_complete=complete_suites)
@click.option("--experiment", help="Runs of this experiment (name or id).")
@click.option("--runs", "run_ids", help="Run ids, e.g. 1,2,5-8.")
@click.option("--where", multiple=True,
              help="Config filter PATH OP VALUE, e.g. control_plane.policy=hybrid (repeatable).")
@click.option("-o", "--output", "out", default="exports-out", show_default=True,
              type=click.Path(file_okay=False), help="Output folder.")
@click.option("--allow-mismatch", is_flag=True,
              help="Compare runs across hardware/engine versions/parameters, with a footnote.")
@click.option("--list", "list_", is_flag=True, help="Name every table and figure and exit.")
@click.pass_context
def command(ctx: click.Context, fmt, table, figure, bundle, suite, experiment, run_ids, where,
            out, allow_mismatch, list_) -> None:
    """Export paper tables, figures, a bundle or a results brief from stored runs."""
    from exports.api import catalogue, export
    from exports.errors import ExportError
    from exports.selection import Selection, parse_run_ids

    if list_:
        for kind, name, description in catalogue():
            click.echo(f"{kind:<7} {name:<24} {description}")
        return
    try:
        fmt = normalise_format(fmt, bundle)
        if fmt is None:
            raise ExportError("--format is required (or --bundle, or --list)")
        selection = Selection(
            suite=suite, experiment=experiment,
            run_ids=parse_run_ids(run_ids) if run_ids else (),
            where=tuple(where),
        )
        result = export(ctx.obj["db"], fmt=fmt, selection=selection, out_dir=out, table=table,
                        figure=figure, bundle=bundle, allow_mismatch=allow_mismatch)
    except ExportError as exc:
        click.echo(f"export: {exc}", err=True)
        ctx.exit(2)
    for message in result.messages:
        click.echo(f"note: {message}", err=True)
    for path in index_last(result.files):
        click.echo(str(path))
