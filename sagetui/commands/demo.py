"""`sagetui demo`: the README's main job, end to end on this machine.

Runs the quick control-plane (A) and policy (B) suites in simulation, a short
live mixed run on the real CPU engines (tiny Llama on vLLM-on-CPU, packaged
MiniLM) through the SAGE gateway, exports each bundle, then opens the
dashboard on the results — or, without a terminal, prints where they are.
"""

from __future__ import annotations

import sys
import time
from importlib import resources
from pathlib import Path

import click

from ..errors import ConfigError

DEMO_SUITES = ("control-plane", "policies")


@click.command(name="demo")
@click.option("-o", "--output", "out", default="out/demo", show_default=True,
              type=click.Path(file_okay=False), help="Where the exported bundles go.")
@click.option("--no-live", is_flag=True, help="Skip the live run on real CPU engines.")
@click.option("--no-dashboard", is_flag=True, help="Do not open the dashboard at the end.")
@click.pass_context
def command(ctx: click.Context, out: str, no_live: bool, no_dashboard: bool) -> None:
    """Quick suites A and B in simulation, a live CPU run, exports, then the dashboard."""
    from exports.api import export
    from exports.errors import ExportError
    from exports.selection import Selection

    from ..config import load_experiment
    from ..orchestrate.runner import run_experiment
    from ..suites import expand_suite, find_suite

    db = ctx.obj["db"]
    t_start = time.perf_counter()
    out_dir = Path(out)
    failures = 0

    def report(r):
        nonlocal failures
        failures += r.status != "completed"
        click.echo(f"    run {r.run_id} {r.status} ({r.wall_s:.1f}s) {r.error}", err=True)

    for name in DEMO_SUITES:
        suite = find_suite(name)
        click.echo(f"[demo] suite {name} (quick, sim) ...", err=True)
        run_experiment(expand_suite(suite, quick=True), db, kind="suite", suite=suite.name,
                       on_run=report)
    if not no_live:
        cfg_path = resources.files("sagetui.configs").joinpath("demo-live.toml")
        click.echo("[demo] live mixed run on vLLM-on-CPU + MiniLM through the gateway "
                   "(engines start in ~1 min) ...", err=True)
        try:
            exp = load_experiment(str(cfg_path))
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        run_experiment(exp, db, kind="single", on_run=report)
    written = []
    for name in DEMO_SUITES:
        try:
            res = export(db, fmt="pdf", selection=Selection(suite=name),
                         out_dir=out_dir / name, bundle=True, allow_mismatch=True)
        except ExportError as exc:
            click.echo(f"[demo] export of {name} failed: {exc}", err=True)
            failures += 1
            continue
        written.extend(res.files)
        for message in res.messages:
            click.echo(f"[demo] note: {message}", err=True)
    click.echo(f"[demo] done in {time.perf_counter() - t_start:.0f} s: store {db}, "
               f"{len(written)} exported files under {out_dir}/", err=True)
    if not no_dashboard and sys.stdin.isatty() and sys.stdout.isatty():
        from sagetui.tui.launch import open_dashboard

        open_dashboard(db)
    else:
        click.echo(f"results: `sagetui --db {db}` opens the dashboard; "
                   f"`sagetui --db {db} runs list` lists the runs; files in {out_dir}/")
    if failures:
        sys.exit(1)
