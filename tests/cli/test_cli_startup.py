"""Light commands must not import heavy libraries: they start in a fraction of a second.

Each check runs the command in a fresh interpreter (`python -c`) and reads
sys.modules afterwards, so an import added anywhere on the path — a command
module, the store, a helper — fails here, not in a benchmark nobody runs.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from store import open_store

# Libraries that cost 0.1-2 s to import and that no listing or help needs.
HEAVY = ("plotly", "scipy", "kaleido", "textual", "vllm", "torch", "pandas", "numpy",
         "sqlalchemy", "sqlmodel", "pydantic", "hdrh", "aiohttp", "exports", "sagetui.config")

PROBE = """
import json, sys
from sagetui.cli import main
try:
    main(args=sys.argv[1:], prog_name="sagetui")
except SystemExit as exc:
    code = exc.code
print("\\n@@" + json.dumps(sorted(m for m in sys.modules)), file=sys.stderr)
"""


def modules_after(*args: str) -> set[str]:
    """Modules imported by running `sagetui ARGS` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          timeout=60)
    marker = proc.stderr.rsplit("@@", 1)
    assert len(marker) == 2, proc.stderr
    return set(json.loads(marker[1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("startup") / "s.db"
    with open_store(path) as s:
        w = s.create_run(experiment_id=None, name="r", mode="sim", config={"a": 1}, seed=1,
                         repetition=0)
        w.add_summaries({"chat": {"issued": 3, "metrics": {"ttft": {"p50": 1.0, "p99": 2.0}}}})
        w.finish()
    return str(path)


@pytest.mark.parametrize("args", [
    ("--help",),
    ("runs", "--help"),
    ("export", "--help"),
    ("suite", "--help"),
    ("run", "--help"),
])
def test_help_imports_nothing_heavy(args):
    assert heavy_in(modules_after(*args)) == []


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_runs_list_imports_nothing_heavy(small_store, fmt):
    mods = modules_after("--db", small_store, "runs", "list", "--format", fmt)
    assert "store.queries" in mods  # it did list
    assert heavy_in(mods) == []


def test_the_probe_sees_heavy_imports(small_store):
    """The check can fail: a command that needs scipy (compare) shows it."""
    with open_store(small_store) as s:
        w = s.create_run(experiment_id=None, name="r2", mode="sim", config={"a": 1}, seed=2,
                         repetition=0)
        w.add_summaries({"chat": {"issued": 3, "metrics": {"ttft": {"p50": 1.0, "p99": 2.0}}}})
        w.finish()
    mods = modules_after("--db", small_store, "runs", "compare", "1", "2")
    assert "numpy" in heavy_in(mods)
