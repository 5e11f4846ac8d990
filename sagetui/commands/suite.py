"""`sagetui suite list|show|run`: the paper's experiments as built-in suites."""

from __future__ import annotations

import re
import sys

import click

from ..errors import ConfigError
from .common import fail, summary_line
from .completion import complete_config_paths, complete_suites


@click.group(name="suite")
def command() -> None:
    """Built-in experiment suites (categories A–E and simulator fidelity)."""


@command.command(name="list")
def list_cmd() -> None:
    """Name, category and title of every built-in suite."""
    from ..suites import list_suites

    for s in list_suites():
        click.echo(f"{s.name:16} {s.category:9} {s.title}")


@command.command(name="show")
@click.argument("name", shell_complete=complete_suites)
@click.option("--quick", is_flag=True, help="Show the CI-sized version.")
def show_cmd(name: str, quick: bool) -> None:
    """What a suite runs: parts, sweeps, run count and expected time."""
    from ..suites import estimate_seconds, expand_suite, find_suite

    try:
        suite = find_suite(name)
        if suite.kind == "fidelity":
            from ..suites.fidelity import plan

            p = plan(suite, quick=quick)
            probe = (f"drift probe: {p.probe_name} (not fitted), run again before each "
                     f"load as {suite.name}/probe[rate=R]\n" if p.probe_name else "")
            click.echo(f"{suite.name}: {suite.title}\n{suite.description.strip()}\n"
                       f"file: {suite.path}\n{len(p.profiles)} profiling phases, then loads "
                       f"{p.loads} live and simulated (presets {p.llm_preset}, "
                       f"{p.embed_preset})\n{probe}"
                       f"expected run time (live): ~{_fmt_s(_fidelity_estimate(p))}")
            return
        if suite.kind == "agents":
            _show_agents(suite, quick)
            return
        exp = expand_suite(suite, quick=quick)
    except ConfigError as exc:
        fail(str(exc))
    click.echo(f"{suite.name} ({suite.category}): {suite.title}")
    click.echo(suite.description.strip())
    click.echo(f"file: {suite.path}")
    first = exp.runs[0].workload
    click.echo(f"warm-up {first.warmup_s:g} s, measurement {first.duration_s:g} s, "
               f"repetitions {exp.runs[0].run.repetitions}, seeds from {exp.runs[0].run.seed}")
    for part in suite.raw["parts"]:
        runs = [r for r in exp.runs if r.run.part == part["name"]]
        if runs:
            axes = ", ".join(f"{k}={v}" for k, v in exp.sweep.items()
                             if k.startswith(part["name"] + ":"))
            click.echo(f"  part {part['name']}: {len(runs)} runs  {axes}")
    _show_probe(exp)
    for entry in suite.exports:
        what = f"table {entry['table']}" if "table" in entry else f"figure {entry.get('figure')}"
        click.echo(f"  exports {what} from parts {', '.join(entry.get('parts', []))}")
    for mode in ("sim", "live"):
        est = estimate_seconds(expand_suite(suite, quick=quick, mode=mode))
        click.echo(f"expected run time ({mode}): ~{_fmt_s(est)}")


def _show_probe(exp) -> None:
    """Parts with relative loads: their fractions, and that a capacity probe runs first."""
    from ..suites.capacity import PROBE_MEASURE_S, PROBE_WARMUP_S
    from ..suites.relative import probe_plan

    parts = probe_plan(exp)
    if parts:
        click.echo(f"  relative_load (parts {', '.join(parts)}): fractions of each "
                   "configuration's measured capacity; a capacity probe runs first "
                   f"(sim bisection on workload.rate, ~9 steps of {PROBE_MEASURE_S:g} s + "
                   f"{PROBE_WARMUP_S:g} s warm-up; live runs use the sim capacity); "
                   "the estimate takes the configured rate as the capacity")


def _show_agents(suite, quick: bool) -> None:
    """The agents suite has no sweep: its dataset, strategies, items and expected time."""
    from ..agents.items import DatasetError
    from ..agents.runner import item_counts, load_dataset, parse_config
    from ..suites.estimate import agents_suite_seconds

    try:
        cfg = parse_config(suite.raw.get("agents", {}), str(suite.path),
                           suite.raw.get("quick") if quick else None)
        ds = load_dataset(cfg.dataset)
    except DatasetError as exc:
        fail(str(exc))
    counts = item_counts(ds, cfg)
    click.echo(f"{suite.name} ({suite.category}): {suite.title}")
    click.echo(suite.description.strip())
    click.echo(f"file: {suite.path}")
    click.echo(f"dataset {ds.info.get('name')} {ds.info.get('version')}; dev items for tuning: "
               + ", ".join(f"{n} {c}" for c, n in counts.pop("dev").items()))
    for strategy, items in counts.items():
        click.echo(f"  {strategy}: " + ", ".join(f"{n} {c}" for c, n in items.items())
                   + " test items" + (" (live mode only)" if strategy == "llm" else ""))
    for mode in ("sim", "live"):
        est = agents_suite_seconds(suite.raw, quick=quick, mode=mode)
        click.echo(f"expected run time ({mode}): ~{_fmt_s(est)}")


@command.command(name="run")
@click.argument("name", shell_complete=complete_suites)
@click.option("--mode", type=click.Choice(["sim", "live"]), default=None)
@click.option("--quick", is_flag=True, help="The CI-sized version of the suite.")
@click.option("--backends", "backends_file", type=click.Path(dir_okay=False), default=None,
              shell_complete=complete_config_paths,
              help="Your engines: a TOML file of [[backends]] (every part) and optional "
                   "[[parts.<part>.backends]] (that part only); docs/experiments.md.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a field in every run of the suite.")
@click.pass_context
def run_cmd(ctx: click.Context, name: str, mode: str | None, quick: bool,
            backends_file: str | None, overrides: tuple[str, ...]) -> None:
    """Run suite NAME; one experiment in the store; prints run ids at the end."""
    from ..orchestrate.runner import RunCancelled, run_experiment
    from ..suites import estimate_seconds, expand_suite, find_suite

    try:
        suite = find_suite(name)
    except ConfigError as exc:
        fail(str(exc))
    if suite.kind == "fidelity":
        _run_fidelity(ctx, suite, quick, mode, backends_file, overrides)
        return
    if suite.kind == "agents":
        _run_agents(ctx, suite, quick, mode, backends_file)
        return
    try:
        exp = expand_suite(suite, quick=quick, mode=mode, overrides=list(overrides),
                           backends_file=backends_file)
        if any(c.run.mode == "live" for c in exp.runs):
            from ..orchestrate.live import preflight

            preflight(exp)
    except ConfigError as exc:
        fail(str(exc))
    exp, failed = _probe(suite, exp, quick, list(overrides), backends_file)
    modes = sorted({c.run.mode for c in exp.runs})
    click.echo(f"suite {suite.name}{' (quick)' if quick else ''}: {len(exp.runs)} runs, "
               f"mode {'/'.join(modes)}, expected ~{_fmt_s(estimate_seconds(exp))}", err=True)
    if "live" in modes:  # measured: D's quick loads on the 2-core CPU engines took 6x
        click.echo("  (live: a run whose load exceeds the engines' capacity also waits for "
                   "its backlog to drain, which this estimate does not include)", err=True)

    def on_start(i, n, cfg):
        click.echo(f"[{i + 1}/{n}] {cfg.run.name} rep {cfg.repetition} ...", err=True)

    def on_run(report):
        detail = summary_line(report.summaries) if report.status == "completed" else report.error
        click.echo(f"      run {report.run_id} {report.status} in {report.wall_s:.1f}s  "
                   f"{detail}", err=True)

    try:
        reports = run_experiment(exp, ctx.obj["db"], kind="suite", suite=suite.name,
                                 on_start=on_start, on_run=on_run, failed=failed)
    except (KeyboardInterrupt, RunCancelled):
        click.echo("cancelled; finished runs are kept", err=True)
        sys.exit(130)
    click.echo(" ".join(str(r.run_id) for r in reports))
    click.echo(f"export: sagetui export --bundle --suite {suite.name} --format pdf -o out/",
               err=True)
    if any(r.status != "completed" for r in reports):
        sys.exit(1)


def _probe(suite, exp, quick: bool, overrides: list[str], backends_file: str | None):
    """Relative-load parts: probe each configuration's capacity (printed) and set the
    rates; live runs on a backends file probe the suite's own simulated engines.
    Returns the experiment and the runs (by index) whose probe failed, with why."""
    from ..suites.relative import needs_probe, resolve

    if not any(needs_probe(c) for c in exp.runs):
        return exp, {}
    twins = None
    if backends_file and any(b.kind != "sim" for c in exp.runs for b in c.backends):
        from ..suites import expand_suite

        try:
            twins = expand_suite(suite, quick=quick, mode="sim", overrides=overrides).runs
        except ConfigError as exc:
            fail(str(exc))

    def on_probe(cfg, res):
        what = f"FAILED: {res}" if isinstance(res, Exception) else res.describe()
        name = re.sub(r"\[load=[^\]]*\]$|,load=[^\]]*(?=\]$)", "", cfg.run.name)
        click.echo(f"probe {name}: {what}", err=True)

    try:
        return resolve(exp, twins=twins, on_probe=on_probe)
    except ConfigError as exc:
        fail(str(exc))


def _run_fidelity(ctx, suite, quick, mode, backends_file, overrides) -> None:
    """Profile live, calibrate, then compare live vs sim (sagetui/suites/fidelity.py)."""
    from ..suites.fidelity import plan, run_fidelity

    if mode == "sim":
        fail("suite fidelity: --mode sim: this suite compares live runs with simulation; "
             "it needs the live engines")
    try:
        p = plan(suite, quick=quick, overrides=list(overrides), backends_file=backends_file)
    except ConfigError as exc:
        fail(str(exc))
    est = _fidelity_estimate(p)
    click.echo(f"suite fidelity{' (quick)' if quick else ''}: profile + {len(p.loads)} loads "
               f"live and simulated, expected ~{_fmt_s(est)}", err=True)

    def on_run(report):
        click.echo(f"      run {report.run_id} {report.status} in {report.wall_s:.1f}s "
                   f"{summary_line(report.summaries) if report.status == 'completed' else report.error}",
                   err=True)

    blocks: list[dict] = []
    try:
        reports = run_fidelity(suite, ctx.obj["db"], quick=quick, overrides=list(overrides),
                               backends_file=backends_file, on_run=on_run,
                               on_block=blocks.append)
    except ConfigError as exc:
        fail(str(exc))
    except RuntimeError as exc:
        fail(f"suite fidelity: {exc}", code=1)
    click.echo(" ".join(str(r.run_id) for r in reports))
    if blocks:
        from exports.tables.fidelity import verdict
        click.echo(f"suite fidelity: {verdict(blocks)}", err=True)
    if any(r.status != "completed" for r in reports):
        sys.exit(1)


def _run_agents(ctx, suite, quick, mode, backends_file) -> None:
    """Evaluate the agent strategies (sagetui/agents) through the gateway; the LLM
    strategy needs the chat engine (live mode)."""
    from engine.spec import BackendSpec

    from ..agents.engines import pick, serving
    from ..agents.items import DatasetError
    from ..agents.runner import describe, load_dataset, parse_config, run_suite
    from ..orchestrate.live import runs_dir
    from ..suites.backends_file import read_backends_file
    from ..suites.estimate import agents_suite_seconds

    mode = mode or "sim"
    source = backends_file or str(suite.path)
    try:
        cfg = parse_config(suite.raw.get("agents", {}), str(suite.path),
                           suite.raw.get("quick") if quick else None)
        ds = load_dataset(cfg.dataset)
        raw = (read_backends_file(backends_file, suite.parts).for_part(suite.parts[0])
               if backends_file else suite.raw["base"]["backends"])
        try:
            specs = [BackendSpec.model_validate(b) for b in raw]
        except ValueError as exc:
            raise ConfigError(f"{source}: backends: {exc}") from None
        need_chat = mode == "live" and "llm" in cfg.strategies
        specs = pick(specs, need_chat=need_chat, source=source)
    except (ConfigError, DatasetError) as exc:
        fail(str(exc))
    control_plane = suite.raw.get("base", {}).get("control_plane", {})
    est = agents_suite_seconds(suite.raw, quick=quick, mode=mode)
    click.echo(f"suite agents{' (quick)' if quick else ''}: dataset {ds.info.get('name')} "
               f"{ds.info.get('version')}, strategies {', '.join(cfg.strategies)} ({mode}, "
               f"policy {control_plane.get('policy', 'hybrid')}), expected ~{_fmt_s(est)}",
               err=True)
    try:
        with serving(specs, control_plane, runs_dir() / "agents") as (ep, rows):
            ids = run_suite(ctx.obj["db"], ds, cfg, ep, suite_name=suite.name,
                            spec_text=suite.text, mode=mode, quick=quick, backends=rows,
                            control_plane=control_plane,
                            on_run=lambda r: click.echo(
                                f"      run {r['run_id']} {r['strategy']} in "
                                f"{r['wall_s']:.1f}s: {describe(r['metrics'])}", err=True))
    except ConfigError as exc:
        fail(str(exc))
    except RuntimeError as exc:
        fail(f"suite agents: {exc}", code=1)
    click.echo(" ".join(map(str, ids)))
    click.echo(f"export: sagetui export --bundle --suite {suite.name} --format pdf -o out/",
               err=True)


def _fidelity_estimate(p) -> float:
    """Profiling phases (+2 s each to start and store) + each load's drift probe, live
    runs and sim runs (~2 s each) + one engine start."""
    from ..suites import LIVE_ENGINE_START_S

    measure = p.live_base.get("workload", {}).get("duration_s", 20)
    warmup = p.live_base.get("workload", {}).get("warmup_s", 3)
    return (p.profile_s + 2 * len(p.profiles)
            + len(p.loads) * (p.probe_s + (2 if p.probe_s else 0)
                              + p.live_repeats * (measure + warmup + 6) + 2 * p.sim_repeats)
            + LIVE_ENGINE_START_S)


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
