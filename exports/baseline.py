"""The fair-baseline check: refuse comparisons across machines, engine versions or engine settings.

Rules (docs/exports.md): every run compared must share
- the hardware fingerprint of the machine that ran it;
- per engine kind, the engine version (and software versions of vLLM, torch, CUDA); a
  version's trailing "(device, dtype)" note (serve-embed's) is compared per device kind
  only, so one release on a GPU and on a CPU pool is the same engine;
- per (engine kind, model — or simulator preset — and device kind), the engine
  parameters and launch arguments (less the host and port the engine listened on).
Backends that differ on purpose (GPU vs CPU pools, 1 vs 8 backends) pass: only
the same engine on the same device must be set up the same way.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from exports.errors import ExportError
from exports.model import RunView

_SOFTWARE_KEYS = ("vllm", "vllm_dist", "torch", "cuda", "sentence-transformers",
                  "sentence_transformers", "transformers")
# Where a launched engine listens: a free port is taken at each launch, so two runs of
# the same engine set up the same way differ here and nowhere that matters.
_ADDRESS_FLAGS = ("--host", "--port")


def _setting_args(launch_args: str) -> str:
    """The stored launch arguments without the listening address (the store keeps all)."""
    try:
        data = json.loads(launch_args)
    except ValueError:
        return launch_args
    if not (isinstance(data, dict) and isinstance(data.get("argv"), list)):
        return launch_args
    argv, kept, skip = data["argv"], [], False
    for a in argv:
        if skip:
            skip = False
        elif a in _ADDRESS_FLAGS:
            skip = True  # the flag and its value
        elif not (isinstance(a, str) and a.startswith(tuple(f + "=" for f in _ADDRESS_FLAGS))):
            kept.append(a)
    return json.dumps({**data, "argv": kept}, sort_keys=True)


def _release(kind: str, version: str) -> tuple[str, str]:
    """(release, note): serve-embed reports e.g. `sentence-transformers 6.0.1 (cuda, float32)`;
    the note says where and how it computes, which differs between GPU and CPU pools on purpose.
    serve-sim reports `sagetui-sim PRESET`: the preset is the engine's model (its parameters are
    compared per slot below), so a chat and an embedding preset in one run are no mismatch."""
    if kind == "sim" and version.startswith("sagetui-sim "):
        return "sagetui-sim", ""
    head, sep, tail = version.rpartition(" (")
    if sep and head and tail.endswith(")"):
        return head, tail[:-1]
    return version, ""


def find_mismatches(runs: Iterable[RunView]) -> list[str]:
    """Human-readable differences that make these runs an unfair comparison (empty = fair)."""
    runs = list(runs)
    found: list[str] = []

    def check(what: str, values: dict[str, list[int]]) -> None:
        if len(values) > 1:
            listed = "; ".join(f"{v} (runs {_ids(ids)})" for v, ids in values.items())
            found.append(f"{what} differs: {listed}")

    hw: dict[str, list[int]] = defaultdict(list)
    for r in runs:
        hw[r.hardware.fingerprint[:12] if r.hardware else "unknown"].append(r.id)
    check("hardware fingerprint", hw)
    for key in _SOFTWARE_KEYS:
        vals: dict[str, list[int]] = defaultdict(list)
        for r in runs:
            if key in r.software:
                vals[str(r.software[key])].append(r.id)
        check(f"software version {key}", vals)
    versions: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    builds: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    params: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        seen_v, seen_p = set(), set()
        for b in r.backends:
            device = b.device_kind or b.device
            release, note = _release(b.engine_kind, b.engine_version)
            if b.engine_version and (b.engine_kind, release) not in seen_v:
                seen_v.add((b.engine_kind, release))
                versions[b.engine_kind][release].append(r.id)
            if note and (device, b.engine_kind, note) not in seen_v:
                seen_v.add((device, b.engine_kind, note))
                builds[f"{b.engine_kind} on {device}"][f"({note})"].append(r.id)
            setting = f"params {b.params} args {_setting_args(b.launch_args)}"
            model = b.model or (f"preset {b.preset}" if b.preset else "(model not recorded)")
            slot = f"{b.engine_kind} {model} on {device}"
            if (slot, setting) not in seen_p:
                seen_p.add((slot, setting))
                params[slot][setting].append(r.id)
    for kind, vals in sorted(versions.items()):
        check(f"engine version of {kind}", vals)
    for slot, vals in sorted(builds.items()):
        check(f"engine setup (device, dtype) of {slot}", vals)
    for slot, vals in sorted(params.items()):
        check(f"engine parameters of {slot}", vals)
    return found


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, sorted(set(ids))))


def enforce(runs: Iterable[RunView], what: str, allow_mismatch: bool) -> list[str]:
    """Footnotes for `what` when mismatches are allowed; ExportError listing them otherwise."""
    found = find_mismatches(runs)
    if found and not allow_mismatch:
        raise ExportError(
            f"{what}: refusing an unfair comparison (pass --allow-mismatch to export anyway "
            "with a footnote):\n  - " + "\n  - ".join(found)
        )
    return [f"Unfair comparison allowed with --allow-mismatch: {m}." for m in found]
