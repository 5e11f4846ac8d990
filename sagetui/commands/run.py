"""`sagetui run CONFIG.toml`: one config or a sweep, in sim or live mode."""

from __future__ import annotations

import sys

import click

from ..errors import ConfigError
from .common import fail, summary_line
from .completion import complete_config_paths


@click.command(name="run")
@click.argument("config", type=click.Path(dir_okay=False), shell_complete=complete_config_paths)
@click.option("--mode", type=click.Choice(["sim", "live"]), default=None,
              help="Override [run].mode of the file.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override any field, e.g. --set workload.rate=500 (repeatable). "
                   "`--set sweep.PATH=[a,b]` adds a sweep axis.")
@click.option("--quiet", is_flag=True, help="Only print run ids.")
@click.pass_context
def command(ctx: click.Context, config: str, mode: str | None, overrides: tuple[str, ...],
            quiet: bool) -> None:
    """Run CONFIG (a TOML file) and store every run; prints the run ids at the end."""
    from ..config import load_experiment

    try:
        exp = load_experiment(config, overrides=list(overrides), mode=mode)
        preflight_live(exp)
    except ConfigError as exc:
        fail(str(exc))
    reports = execute(exp, ctx.obj["db"], quiet=quiet)
    click.echo(" ".join(str(r.run_id) for r in reports))
    if any(r.status != "completed" for r in reports):
        sys.exit(1)


def preflight_live(exp) -> None:
    """Unreachable engines, unusable cores: ConfigError before any live run starts."""
    if any(cfg.run.mode == "live" for cfg in exp.runs):
        from ..orchestrate.live import preflight

        preflight(exp)


def execute(exp, db: str, *, quiet: bool = False, rerun_of: int | None = None) -> list:
    """Run every run of `exp` into the store `db`, saying on stderr what starts and how each
    ended; Ctrl-C or SIGTERM exits 130 (the run keeps what it measured). Shared by
    `sagetui run` and `sagetui runs rerun`."""
    from ..orchestrate.runner import RunCancelled, run_experiment

    if not quiet:
        click.echo(f"{exp.name}: {len(exp.runs)} run(s) -> {db}", err=True)

    def on_start(i, n, cfg):
        if not quiet:
            click.echo(f"[{i + 1}/{n}] {cfg.run.name} ({cfg.run.mode}, "
                       f"rep {cfg.repetition}, seed {cfg.workload.seed}) ...", err=True)

    def on_run(report):
        if quiet:
            return
        if report.status == "completed":
            click.echo(f"      run {report.run_id}: {report.wall_s:.1f}s  "
                       f"{summary_line(report.summaries)}", err=True)
        else:
            click.echo(f"      run {report.run_id}: {report.status}: {report.error}", err=True)

    try:
        return run_experiment(exp, db, kind="sweep" if exp.sweep else "single",
                              on_start=on_start, on_run=on_run, rerun_of=rerun_of)
    except (KeyboardInterrupt, RunCancelled):
        click.echo("cancelled; the run keeps what it measured", err=True)
        sys.exit(130)
