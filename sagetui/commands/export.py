"""`sagetui export`: tables, figures, bundles and the results brief from the run store."""

from __future__ import annotations

import click

from exports.api import FORMATS, catalogue, export
from exports.errors import ExportError
from exports.selection import Selection, parse_run_ids


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Tables: latex, markdown, csv, json. Figures: html, pdf, svg, png. brief: results brief.")
@click.option("--table", help="Table name (see --list).")
@click.option("--figure", help="Figure name (see --list).")
@click.option("--bundle", is_flag=True, help="Every table and figure, figure data, brief and an index.")
@click.option("--suite", help="Runs of experiments of this suite.")
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
    if list_:
        for kind, name, description in catalogue():
            click.echo(f"{kind:<7} {name:<24} {description}")
        return
    try:
        if fmt is None:
            raise ExportError("--format is required (or --list)")
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
    for path in result.files:
        click.echo(str(path))
