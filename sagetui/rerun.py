"""A stored run turned back into a config, and run again (`sagetui runs config|rerun`).

Why a module of its own: the stored config is the *resolved* config of one
repetition, so making it reproduce the run means pinning the seed and one
repetition; checking it against today's schema means saying which field
changed and what to do about it; and judging the rerun means knowing which
figures are measured on the host (control-plane decision time, simulator wall
time) and so differ between any two runs of the same code.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

# Summary paths (under a class) and histogram metrics measured with the host's clock
# even in simulation: left out when a simulated rerun is judged identical.
HOST_MEASURED_PATHS = ("metrics.overhead", "metrics.stage_search",
                       "extra.control_plane.decision_us",
                       "extra.control_plane.overhead_us_per_request",
                       "extra.control_plane.sim_wall_s", "extra.pipeline.search_s_measured")
HOST_MEASURED_METRICS = ("overhead", "stage_search")
PIPELINE_NOTE = ("pipeline requests wait for a vector search timed on this machine "
                 "(extra.pipeline.search_s_measured), so their later stages can shift")

# Config fields today's schema no longer has, and what to do with a stored config that
# has them. Looked up by the refused field's path, then by its parents.
RETIRED_FIELDS = {
    "control_plane.slo": "the [control_plane.slo] table is gone: SLO refusals are "
                         "admission control now; delete the table (early_reject = true "
                         "becomes control_plane.admission = \"on\")",
    "control_plane.hybrid.default_slo_ms": "gone: hybrid orders requests without an SLO "
                                           "by priority and slack; delete the field",
}

SOFTWARE_KEYS = ("vllm", "torch", "transformers", "sentence-transformers", "python")


def replay_config(run: dict, *, seed: int | None = None) -> dict:
    """The run's stored resolved config as a one-run config that makes the same run:
    [run].seed becomes the run's own seed (repetition r of seed s ran with s + r),
    [run].repetitions 1, and the expansion's `repetition` index is dropped."""
    cfg = {k: v for k, v in run["config"].items() if k != "repetition"}
    section = dict(cfg.get("run") or {})
    section["seed"] = run["seed"] if seed is None else seed
    section["repetitions"] = 1
    cfg["run"] = section
    return cfg


def _without_none(value: Any) -> Any:
    """TOML has no null: a key whose value is None is left out (the default is None)."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def to_toml(config: dict, header: str = "") -> str:
    """`config` as a TOML document `sagetui run` reads; `header` becomes comment lines."""
    import tomli_w

    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + tomli_w.dumps(_without_none(config))


def check_today(config: dict, run: dict, *, overrides: list[str] = (), name: str | None = None):
    """Expand `config` with today's schema into an Experiment, or ConfigError naming each
    refused field and the change it needs; nothing runs and nothing is stored."""
    from .config import expand_raw

    source = f"run {run['id']}"
    try:
        return expand_raw(config, source=source, spec_text=to_toml(config), overrides=overrides,
                          name=name)
    except ConfigError as exc:
        raise ConfigError(migration_message(str(exc), run)) from None


def migration_message(error: str, run: dict) -> str:
    """Today's validation errors for a stored config, each with the change it needs."""
    lines = []
    for line in error.splitlines():
        parts = line.split(": ", 2)
        if len(parts) < 3:
            lines.append(line)
            continue
        source, field, msg = parts
        lines.append(f"{source}: {field}: {msg} — {_migration(field, msg)}")
    made = (f"sagetui {run.get('sagetui_version') or '?'}, git "
            f"{(run.get('git_sha') or '?')[:12]}")
    lines.append(f"run {run['id']}'s config was stored by {made} and no longer validates "
                 "against today's schema; nothing was run. Fix it with --set PATH=VALUE, or "
                 f"edit `sagetui runs config {run['id']} --as-stored > run-{run['id']}.toml` "
                 f"and `sagetui run run-{run['id']}.toml`.")
    return "\n".join(lines)


def _migration(field: str, msg: str) -> str:
    parts = field.split(".")
    for n in range(len(parts), 0, -1):
        hint = RETIRED_FIELDS.get(".".join(parts[:n]))
        if hint:
            return hint
    if "Extra inputs are not permitted" in msg:
        return "today's schema has no such field: delete it"
    if msg.startswith("Field required"):
        return f"today's schema requires it: add it (--set {field}=VALUE)"
    return f"today's schema refuses the stored value: change it (--set {field}=VALUE)"


def config_changes(before: dict, after: dict, path: str = "") -> list[str]:
    """`a.b: old -> new` for every leaf that differs (what --set/--seed changed, or what
    today's defaults add), in document order."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in list(before) + [k for k in after if k not in before]:
            out += config_changes(before.get(key), after.get(key),
                                  f"{path}.{key}" if path else str(key))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [c for i, (x, y) in enumerate(zip(before, after, strict=True))
                for c in config_changes(x, y, f"{path}.{i}")]
    return [] if before == after else [f"{path}: {_show(before)} -> {_show(after)}"]


def _show(value: Any) -> str:
    return "(absent)" if value is None else repr(value)


def provenance_notes(run: dict) -> list[str]:
    """What differs between the machine and code that made `run` and this process:
    code version, engine and library versions, hardware fingerprint."""
    from store.fingerprint import git_state, hardware, software_versions

    notes = []
    sha, dirty = git_state()
    now_sw = software_versions()
    then = (run.get("sagetui_version") or "", run.get("git_sha") or "", bool(run.get("git_dirty")))
    now = (now_sw.get("sagetui") or "", sha, dirty)
    if then[:2] != now[:2]:
        notes.append(f"code differs: run {run['id']} ran {_code(*then)}; this is {_code(*now)}")
    elif then[2] or now[2]:
        notes.append(f"code: same commit {sha[:12]}, but with uncommitted changes "
                     f"({'then' if then[2] else ''}{' and ' if then[2] and now[2] else ''}"
                     f"{'now' if now[2] else ''}), which may differ")
    then_sw = run.get("software") or {}
    changed = [f"{k} {then_sw.get(k) or '-'} -> {now_sw.get(k) or '-'}" for k in SOFTWARE_KEYS
               if then_sw.get(k) != now_sw.get(k)]
    if changed:
        notes.append("engine/library versions differ: " + ", ".join(changed))
    then_hw = (run.get("hardware") or {}).get("fingerprint")
    if then_hw and then_hw != hardware()["fingerprint"]:
        hw = run["hardware"]
        notes.append(f"hardware differs: run {run['id']} ran on {hw.get('hostname')} "
                     f"({hw.get('cpu_model')}, fingerprint {then_hw[:12]}); this machine's "
                     f"fingerprint is {hardware()['fingerprint'][:12]}")
    return notes


def _code(version: str, sha: str, dirty: bool) -> str:
    return (f"sagetui {version or '?'} at git {sha[:12] or '(none)'}"
            + (" (uncommitted)" if dirty else ""))
