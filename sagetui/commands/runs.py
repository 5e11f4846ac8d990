"""`sagetui runs`: list, show, compare, tag, delete and query stored runs.

Why a thin layer: every read and write lives in store/ (queries, writer) so
the TUI and exports see exactly what this command prints; here we only parse
options, format output and turn StoreError into one line + exit code 2.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import sys

import click

from store import StoreError, open_store, queries

from .completion import complete_run_ids, complete_suites

FORMATS = click.Choice(["table", "json", "csv"])


class RunsError(click.ClickException):
    """Bad input or a bad store: one line on stderr, exit 2, no traceback."""

    exit_code = 2


@contextlib.contextmanager
def _store(ctx: click.Context):
    try:
        store = open_store(ctx.obj["db"])
    except StoreError as exc:
        raise RunsError(str(exc)) from None
    from store.errors import DatabaseError  # after open_store: sqlite3 is loaded by now

    try:
        yield store
    except StoreError as exc:
        raise RunsError(str(exc)) from None
    except DatabaseError as exc:  # damage deeper in the file than open_store reads
        raise RunsError(f"{ctx.obj['db']}: {exc}") from None
    finally:
        store.close()


def _table(headers: list[str], rows: list[list]) -> str:
    """Aligned columns. Built column by column with one format string per line: over
    10,000 runs a cell-by-cell ljust took longer than reading the runs."""
    cols = [_column(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in headers]
    widths = [max(len(h), max(map(len, c), default=0)) for h, c in zip(headers, cols,
                                                                       strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths).format
    return "\n".join([line(*headers).rstrip(), *(line(*r).rstrip() for r in zip(*cols, strict=True))])


def _column(values) -> list[str]:
    if all(type(v) is str for v in values):
        return list(values)
    return [_cell(v) for v in values]


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


def _json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str)


def _csv(headers: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(headers)
    w.writerows([[("" if v is None else ",".join(map(str, v)) if isinstance(v, list) else v)
                  for v in row] for row in rows])
    return buf.getvalue().rstrip("\n")


@click.group(name="runs")
def command() -> None:
    """List, inspect, compare and manage stored runs (the store is --db / SAGETUI_DB)."""


_LIST_COLS = ["id", "name", "experiment", "status", "mode", "started", "tags"]


@command.command(name="list")
@click.option("--status", help="created|running|completed|failed|cancelled|interrupted")
@click.option("--tag", help="Only runs carrying this tag.")
@click.option("--suite", help="Only runs of this suite's experiments.",
              shell_complete=complete_suites)
@click.option("--since", help="Started at/after: ISO date/time (UTC) or age like 2h, 7d.")
@click.option("--last", type=click.IntRange(min=1), help="Only the newest N runs.")
@click.option("--where", "where", multiple=True,
              help="PATH=VALUE over the resolved config, e.g. control_plane.policy=hybrid "
                   "(repeatable; also != < <= > >=).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.pass_context
def list_cmd(ctx, status, tag, suite, since, last, where, fmt) -> None:
    """List runs, oldest first. JSON: objects with id, name, experiment, status, mode,
    started, config (resolved) and summary per class; CSV: summaries flattened."""
    filters = dict(status=status, tag=tag, suite=suite, since=since, last=last,
                   where=list(where))
    with _store(ctx) as store:
        if fmt == "json":  # ~60 MB for 10,000 runs: written piece by piece, never joined
            _write(queries.iter_runs_json(store, **filters))
        elif fmt == "csv":
            _write([queries.list_runs_csv(store, **filters).encode()])
        else:
            click.echo(_table(_LIST_COLS, queries.list_rows(store, tuple(_LIST_COLS),
                                                            **filters)))


def _write(pieces) -> None:
    """UTF-8 bytes to stdout as they are, then a newline. Not click.echo: when stdout is
    not a terminal it runs an ANSI-stripping regex over the whole text, and it copies it
    once more to append the newline."""
    sys.stdout.flush()
    out = getattr(sys.stdout, "buffer", None)
    pieces = itertools.chain(pieces, [b"\n"])
    if out is None:  # a text-only stdout (a StringIO put there by a caller)
        sys.stdout.write(b"".join(pieces).decode())
    else:  # write() each: a stream that copies what it is written may not see writelines
        for piece in pieces:
            out.write(piece)
    (out or sys.stdout).flush()


@command.command()
@click.argument("run", type=int, shell_complete=complete_run_ids)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_context
def show(ctx, run, fmt) -> None:
    """Show one run: config, hardware, software, per-class summary, events."""
    with _store(ctx) as store:
        r = queries.get_run(store, run)
    if fmt == "json":
        click.echo(_json(r))
        return
    click.echo(f"run {r['id']}  {r['name']}  [{r['status']}]"
               + (f" ({r['status_reason']})" if r["status_reason"] else ""))
    click.echo(f"experiment {r['experiment'] or '-'}  mode {r['mode']}  seed {r['seed']}  "
               f"repetition {r['repetition']}  tags {','.join(r['tags']) or '-'}")
    click.echo(f"started {r['started'] or '-'}  ended {r['ended'] or '-'}  "
               f"requests {r['requests_done']}/~{r['requests_planned']} (planned is nominal)")
    if r.get("rerun_of") or r.get("reruns"):
        click.echo(_links(r))
    click.echo(f"sagetui {r['sagetui_version'] or '-'}  git {r['git_sha'][:12] or '-'}"
               + (" (dirty)" if r["git_dirty"] else ""))
    hw = r["hardware"]
    if hw:
        gpus = ", ".join(g["name"] for g in hw["gpus"]) or "no GPU"
        click.echo(f"hardware {hw['hostname']}: {hw['cpu_model']}, "
                   f"{hw['cpu_cores_logical']} cores, {hw['memory_bytes'] / 2**30:.1f} GiB, {gpus}")
    if r["software"]:
        click.echo("software " + ", ".join(f"{k} {v}" for k, v in sorted(r["software"].items())
                                           if v))
    if r["backends"]:
        click.echo("\nbackends")
        click.echo(_table(["name", "role", "engine", "device", "model", "url"],
                          [[b["name"], b["role"], b["engine_kind"], b["device"], b["model"],
                            b["url"]] for b in r["backends"]]))
    if r["summary"]:
        click.echo("\nsummary (latencies in ms)")
        rows = []
        for cls, s in sorted(r["summary"].items()):
            for metric, dist in sorted(s["metrics"].items()):
                dist = dist or {}
                rows.append([cls, metric, dist.get("p50"), dist.get("p90"), dist.get("p99"),
                             dist.get("p999"), dist.get("count")])
        click.echo(_table(["class", "metric", "p50", "p90", "p99", "p99.9", "n"], rows))
        click.echo("")
        click.echo(_table(["class", "issued", "completed", "failed", "rejected", "req/s", "tok/s",
                           "goodput", "slo"],
                          [[cls, s["issued"], s["completed"], s["failed"], s["rejected"],
                            s["throughput_rps"], s["throughput_tok_s"], s["goodput_rps"],
                            s["slo_attainment"]] for cls, s in sorted(r["summary"].items())]))
    if r["events"]:
        click.echo("\nevents")
        click.echo(_table(["t_s", "kind", "subject", "message"],
                          [[e["t_s"], e["kind"], e["subject"], e["message"]]
                           for e in r["events"]]))
    click.echo("\nconfig")
    click.echo(_json(r["config"]))


def _links(r: dict) -> str:
    """`rerun of run 5  reruns 12, 14`: how a run and its reruns are linked."""
    parts = []
    if r.get("rerun_of"):
        parts.append(f"rerun of run {r['rerun_of']}")
    if r.get("reruns"):
        parts.append("reruns " + ", ".join(map(str, r["reruns"])))
    return "  ".join(parts)


@command.command()
@click.argument("runs", type=int, nargs=-1, required=True, shell_complete=complete_run_ids)
@click.option("--metric", "metrics", multiple=True, help="Only these metrics (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_context
def compare(ctx, runs, metrics, fmt) -> None:
    """Compare runs against the first: per-class metrics, relative change, significance.

    Marks (as asv): + significantly higher, - significantly lower, ~ no
    significant change; blank when untestable (single runs, no histogram).
    """
    if len(runs) < 2:
        raise RunsError("compare: give at least two run ids")
    with _store(ctx) as store:
        result = queries.compare(store, list(runs), metrics=tuple(metrics) or None)
    if fmt == "json":
        click.echo(_json(result))
        return
    _print_compare(runs, result)


def _print_compare(runs, result: dict) -> None:
    """The `runs compare` table (also what a live rerun prints against its original)."""
    headers = ["class", "metric", f"run {runs[0]}"]
    for rid in runs[1:]:
        headers += [f"run {rid}", "change", ""]
    rows = []
    for row in result["rows"]:
        cells = [row["class"], row["metric"], row["values"][0]]
        for i in range(1, len(runs)):
            ch = row["changes"][i - 1]
            cells += [row["values"][i], "-" if ch is None else f"{ch * 100:+.1f}%",
                      row["marks"][i - 1]]
        rows.append(cells)
    sizes = ", ".join(f"run {rid}: {len(g)}" for rid, g in zip(runs, result["groups"],
                                                                strict=True))
    for warning in result["warnings"]:
        click.echo(f"note: {warning}")
    click.echo(f"repetitions per side: {sizes}")
    click.echo(_table(headers, rows))


@command.command()
@click.argument("run", type=int, shell_complete=complete_run_ids)
@click.argument("tags", nargs=-1, required=True)
@click.pass_context
def tag(ctx, run, tags) -> None:
    """Add tags to a run."""
    with _store(ctx) as store:
        now = queries.tag_run(store, run, list(tags))
    click.echo(f"run {run}: tags {','.join(now) or '-'}")


@command.command()
@click.argument("run", type=int, shell_complete=complete_run_ids)
@click.argument("tags", nargs=-1, required=True)
@click.pass_context
def untag(ctx, run, tags) -> None:
    """Remove tags from a run."""
    with _store(ctx) as store:
        now = queries.untag_run(store, run, list(tags))
    click.echo(f"run {run}: tags {','.join(now) or '-'}")


@command.command()
@click.argument("runs", type=int, nargs=-1, required=True, shell_complete=complete_run_ids)
@click.option("--purge", is_flag=True, help="Remove for good (default: hide, keep the data).")
@click.pass_context
def delete(ctx, runs, purge) -> None:
    """Delete runs (soft by default; --purge removes every row)."""
    with _store(ctx) as store:
        for rid in runs:
            queries.delete_run(store, rid, purge=purge)
            click.echo(f"run {rid}: {'purged' if purge else 'deleted'}")


@command.command(name="config")
@click.argument("run", type=int, shell_complete=complete_run_ids)
@click.option("--as-stored", is_flag=True,
              help="The stored resolved config as it is (repetition index included), "
                   "unchecked: for editing one today's schema refuses.")
@click.pass_context
def config_cmd(ctx, run, as_stored) -> None:
    """Print RUN's resolved config as TOML that `sagetui run` takes unchanged and that makes
    the same run (its seed, one repetition). Refused (exit 2, naming the field and the
    change it needs) when today's schema no longer accepts it."""
    from ..errors import ConfigError
    from ..rerun import check_today, replay_config, to_toml

    with _store(ctx) as store:
        r = queries.get_run(store, run)
    head = f"run {run} ({r['name']}, {r['mode']}, seed {r['seed']})"
    if as_stored:
        click.echo(to_toml(r["config"], f"{head} as stored"), nl=False)
        return
    cfg = replay_config(r)
    try:
        exp = check_today(cfg, r)
    except ConfigError as exc:
        raise RunsError(str(exc)) from None
    _note_drift(cfg, exp)
    click.echo(to_toml(cfg, f"{head}: `sagetui run` this file to make the same run"), nl=False)


def _resolved(exp) -> dict:
    return {k: v for k, v in exp.runs[0].resolved().items() if k != "repetition"}


def _note_drift(stored: dict, exp) -> list[str]:
    """Say on stderr where today's schema resolves the stored config differently (fields
    added since, with their defaults); returns those changes."""
    from ..rerun import config_changes

    drift = config_changes(stored, _resolved(exp))
    for change in drift:
        click.echo(f"note: today's schema resolves {change}", err=True)
    return drift


@command.command()
@click.argument("run", type=int, shell_complete=complete_run_ids)
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Change a field of the stored config for the rerun (repeatable).")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Run with this seed instead of the run's own.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@click.pass_context
def rerun(ctx, run, overrides, seed, quiet) -> None:
    """Run RUN again from its stored config, store the new run linked to RUN, compare.

    Same seed unless --seed/--set say otherwise. Before running it says where code
    version, engine versions or hardware differ from RUN's. In simulation it then says
    whether summaries and histograms are identical (host-measured figures aside) or
    names the first difference; live, it prints `runs compare RUN NEW`. Exit 1 when
    the rerun fails, or when a simulated rerun with nothing changed is not identical.
    """
    from .run import execute

    with _store(ctx) as store:
        original = queries.get_run(store, run)
    exp, changes = _plan_rerun(original, seed, list(overrides))
    notes = _say_before(original, changes)
    [report] = execute(exp, ctx.obj["db"], quiet=quiet, rerun_of=run)
    click.echo(f"run {report.run_id}: rerun of run {run} [{report.status}]")
    if report.status != "completed":
        sys.exit(1)
    identical = _judge(ctx, original, report.run_id, exp.runs[0].run.mode)
    if identical is False and _expected_identical(exp, notes, changes):
        sys.exit(1)


def _plan_rerun(original: dict, seed: int | None, overrides: list[str]):
    """(the one-run Experiment to make, the config fields --set/--seed changed); RunsError
    before anything runs when today's schema refuses the config or it is not one run."""
    from ..errors import ConfigError
    from ..rerun import check_today, config_changes, replay_config
    from .run import preflight_live

    try:
        base = check_today(replay_config(original), original)
        exp = check_today(replay_config(original, seed=seed), original, overrides=overrides,
                          name=f"rerun of run {original['id']}")
        if len(exp.runs) != 1:
            raise ConfigError(f"--set: a rerun is one run; these settings make {len(exp.runs)} "
                              "(a sweep axis or run.repetitions > 1)")
        preflight_live(exp)
    except ConfigError as exc:
        raise RunsError(str(exc)) from None
    return exp, config_changes(_resolved(base), _resolved(exp))


def _say_before(original: dict, changes: list[str]) -> list[str]:
    """Notes on stderr, before running: where code, engine versions or hardware differ from
    the original's, and what the config changes. Returns the provenance notes."""
    from ..rerun import provenance_notes

    notes = provenance_notes(original)
    for line in notes + [f"config differs from run {original['id']}: {c}" for c in changes]:
        click.echo(f"note: {line}", err=True)
    return notes


def _expected_identical(exp, notes: list[str], changes: list[str]) -> bool:
    """A simulated rerun must come out identical when nothing was changed, the code is the
    same commit and no request waited for a search timed on this machine (a pipeline)."""
    from ..rerun import PIPELINE_NOTE

    if exp.runs[0].workload.mix.get("pipeline", 0) > 0:
        click.echo(f"note: {PIPELINE_NOTE}")
        return False
    return not changes and not any(n.startswith("code differs") for n in notes)


def _judge(ctx, original: dict, new_id: int, mode: str) -> bool | None:
    """Print how the rerun compares; True/False = identical or not (simulation), None = live
    (the significance table)."""
    from store.reruns import differences

    from ..rerun import HOST_MEASURED_METRICS, HOST_MEASURED_PATHS

    rid = original["id"]
    with _store(ctx) as store:
        if mode == "live" or original["mode"] == "live":
            _print_compare([rid, new_id], queries.compare(store, [rid, new_id]))
            return None
        diff = differences(store, rid, new_id, ignore_paths=HOST_MEASURED_PATHS,
                           ignore_metrics=HOST_MEASURED_METRICS)
    found = diff["differences"]
    if not found:
        click.echo(f"identical: run {new_id} matches run {rid} in every summary "
                   f"({diff['summaries']} classes) and histogram ({diff['histograms']}); "
                   "host-measured figures (control-plane decision time and overhead, "
                   "simulator wall time, pipeline search time) left out")
        return True
    where, a, b = found[0]
    click.echo(f"differs: run {new_id} from run {rid}: first difference {where}: "
               f"{a!r} in run {rid}, {b!r} in run {new_id} ({len(found)} differences in all)")
    return False


@command.command()
@click.argument("statement")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.pass_context
def sql(ctx, statement, fmt) -> None:
    """Run one read-only SQL statement (SELECT) against the store (see docs/store.md)."""
    try:
        headers, rows = queries.run_sql(ctx.obj["db"], statement)
    except StoreError as exc:
        raise RunsError(str(exc)) from None
    if fmt == "json":
        click.echo(_json([dict(zip(headers, r, strict=True)) for r in rows]))
    elif fmt == "csv":
        click.echo(_csv(headers, [list(r) for r in rows]))
    else:
        click.echo(_table(headers, [list(r) for r in rows]))


__all__ = ["command"]
