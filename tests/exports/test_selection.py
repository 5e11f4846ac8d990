"""--runs parsing and run selection through the store's filters."""

from __future__ import annotations

import pytest

from exports.db import open_readonly
from exports.errors import ExportError
from exports.model import load_runs
from exports.selection import Selection, parse_run_ids


@pytest.fixture
def opened(store):
    s = open_readonly(store)
    yield s
    s.close()


def test_run_ids_with_ranges():
    assert parse_run_ids("1,3-5, 9") == (1, 3, 4, 5, 9)
    for bad in ("a", "5-3", ""):
        with pytest.raises(ExportError, match="--runs"):
            parse_run_ids(bad)


def test_where_clauses_combine(opened):
    runs = load_runs(opened, Selection(suite="paper", where=("control_plane.policy=hybrid", "workload.rate>=80")))
    assert runs and all(r.section("control_plane")["policy"] == "hybrid" for r in runs)
    assert {r.offered_rate for r in runs} == {80.0, 160.0}


def test_where_narrows_explicit_run_ids(opened):
    runs = load_runs(opened, Selection(run_ids=tuple(range(1, 13)), where=("control_plane.baseline=sage",)))
    assert [r.id for r in runs] == [1, 2, 7, 8]


def test_bad_where_names_the_option(opened):
    with pytest.raises(ExportError, match="^--where: 'policy~hybrid'"):
        load_runs(opened, Selection(where=("policy~hybrid",)))


def test_experiment_by_name_or_id(opened):
    by_name = load_runs(opened, Selection(experiment="scalability"))
    by_id = load_runs(opened, Selection(experiment="3"))  # the third experiment the fixture makes
    assert [r.id for r in by_name] == [r.id for r in by_id]
    with pytest.raises(ExportError, match="--experiment: no experiment named 'nope'"):
        load_runs(opened, Selection(experiment="nope"))


def test_failed_runs_are_left_out_of_a_suite_but_refused_by_id(opened):
    runs = load_runs(opened, Selection(suite="unfair"))
    assert [r.name for r in runs] == ["mm-1", "mm-2"]
    failed = max(r.id for r in runs) + 1
    with pytest.raises(ExportError, match=rf"not completed: {failed} \(failed\)"):
        load_runs(opened, Selection(run_ids=(failed,)))
