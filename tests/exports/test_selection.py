"""--runs and --where parsing, and where filters applied to the fixed store."""

from __future__ import annotations

import pytest

from exports.db import open_readonly
from exports.errors import ExportError
from exports.model import load_runs
from exports.selection import Selection, parse_run_ids, parse_where


def test_run_ids_with_ranges():
    assert parse_run_ids("1,3-5, 9") == (1, 3, 4, 5, 9)
    for bad in ("a", "5-3", ""):
        with pytest.raises(ExportError, match="--runs"):
            parse_run_ids(bad)


def test_where_parse_errors_name_the_option():
    with pytest.raises(ExportError, match="--where"):
        parse_where("policy~hybrid")


def test_where_filters_on_config_paths_and_run_fields(store):
    engine = open_readonly(store)
    runs = load_runs(engine, Selection(suite="paper", where=parse_where("control_plane.policy=hybrid,workload.rate>=80")))
    assert runs and all(r.section("control_plane")["policy"] == "hybrid" for r in runs)
    assert {r.offered_rate for r in runs} == {80.0, 160.0}
    runs = load_runs(engine, Selection(experiment="scalability", where=parse_where("backends>2,repetition=1")))
    assert sorted(r.n_backends for r in runs) == [4, 8]
    engine.close()


def test_failed_runs_are_left_out_of_a_suite_but_refused_by_id(store):
    engine = open_readonly(store)
    runs = load_runs(engine, Selection(suite="unfair"))
    assert [r.name for r in runs] == ["mm-1", "mm-2"]
    failed = max(r.id for r in runs) + 1
    with pytest.raises(ExportError, match=rf"not completed: {failed} \(failed\)"):
        load_runs(engine, Selection(run_ids=(failed,)))
    engine.close()
