"""The BFCL adapters and scoring on the real files the bfcl-eval package ships."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from collections import Counter

import pytest

from sagetui.agents import bfcl, scoring
from sagetui.agents.items import DatasetError, split_of


@pytest.fixture(scope="module")
def ds():
    return bfcl.load()


def test_categories_and_sizes_from_the_packaged_files(ds):
    assert ds.info["version"] == bfcl.PACKAGE_VERSION and ds.info["licence"] == "Apache-2.0"
    by = Counter((i.category, i.source) for i in ds.items)
    assert by[("selection", "BFCL_v4_live_multiple")] == 1053
    assert by[("selection", "BFCL_v4_multiple")] == 200
    assert by[("selection_pool", "BFCL_v4_live_multiple")] == 1053
    assert (by[("timing", "BFCL_v4_irrelevance")], by[("timing", "BFCL_v4_live_irrelevance")],
            by[("timing", "BFCL_v4_live_relevance")], by[("timing", "BFCL_v4_live_simple")]) \
        == (240, 884, 16, 258)
    assert by[("planning", "BFCL_v4_parallel_multiple")] == 200
    assert by[("planning", "BFCL_v4_multi_turn_base")] == 731  # turns that make calls
    # every file read is named with its sha256
    assert "BFCL_v4_live_multiple.json" in ds.info["files"]
    assert "possible_answer/BFCL_v4_live_multiple.json" in ds.info["files"]
    assert all(len(h) == 64 for h in ds.info["files"].values())
    assert len(ds.pool) == len({t.key for t in ds.pool}) > 2000


def test_items_hold_their_answers(ds):
    for item in ds.items:
        names = {t.name for t in item.tools}
        if item.category == "selection":
            assert item.gold[0] in names and item.answer
        if item.category == "timing":
            assert item.call == (item.source in bfcl.TIMING_CALL)
        if item.category == "planning" and item.source == "BFCL_v4_multi_turn_base":
            assert item.ordered and set(item.gold) <= names
    first = next(i for i in ds.items if i.id == "multi_turn_base_0/turn0")
    assert first.gold == ["cd", "mkdir", "mv"]


def test_dev_test_split_is_stable_and_keeps_conversations_together(ds):
    counts = ds.counts()
    for c, n in counts.items():
        assert 0.2 < n["dev"] / (n["dev"] + n["test"]) < 0.4, (c, n)
    assert split_of("live_multiple_0-0-0") == split_of("live_multiple_0-0-0")
    turns = [i for i in ds.items if i.group == "multi_turn_base_7"]
    assert len({i.split for i in turns}) == 1


def test_every_packaged_answer_passes_the_argument_check(ds):
    sel = [i for i in ds.items if i.category == "selection"]
    for item in sel:
        (name, allowed), = item.answer[0].items()
        call = {"name": name, "arguments": scoring.example_args(allowed)}
        assert scoring.call_matches(call, item.answer), item.id


def test_argument_check_rejects_wrong_missing_and_extra_values(ds):
    item = next(i for i in ds.items if i.id == "multiple_0" and i.category == "selection")
    answer = item.answer  # side1 5, side2 4, side3 3, three optional flags
    ok = {"name": "triangle_properties.get", "arguments": {"side1": 5, "side2": 4.0, "side3": 3}}
    assert scoring.call_matches(ok, answer)
    assert not scoring.call_matches({**ok, "arguments": {"side1": 5, "side2": 4}}, answer)
    assert not scoring.call_matches({**ok, "arguments": {**ok["arguments"], "side3": 6}}, answer)
    assert not scoring.call_matches({**ok, "arguments": {**ok["arguments"], "x": 1}}, answer)
    assert not scoring.call_matches({**ok, "name": "circle_properties.get"}, answer)
    # strings compare without case, spaces and punctuation, as BFCL's checker does
    assert scoring.value_matches("San Francisco, CA", "san francisco ca")
    assert not scoring.value_matches("1", True)


def test_plan_scores():
    assert scoring.multiset_f1(["a", "b"], ["a", "b"]) == 1.0
    assert scoring.multiset_f1(["a", "a"], ["a"]) == pytest.approx(2 / 3)
    assert scoring.plan_exact(["b", "a"], ["a", "b"], ordered=False)
    assert not scoring.plan_exact(["b", "a"], ["a", "b"], ordered=True)


def _copy(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(bfcl.data_dir(), root, ignore=shutil.ignore_patterns("unused_datasets",
                                                                          "memory*"))
    return root


def test_bad_files_name_the_file_line_and_field(tmp_path):
    root = _copy(tmp_path)
    f = root / "BFCL_v4_multiple.json"
    lines = f.read_text().splitlines()
    f.write_text("\n".join([lines[0], "{not json", *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match=r"BFCL_v4_multiple.json:2: not JSON"):
        bfcl.load(root)
    row = json.loads(lines[1])
    del row["question"]
    f.write_text("\n".join([lines[0], json.dumps(row), *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match=r"BFCL_v4_multiple.json:2: field 'question' missing"):
        bfcl.load(root)
    f.write_text("\n".join(lines) + "\n")
    (root / "possible_answer" / "BFCL_v4_parallel_multiple.json").unlink()
    with pytest.raises(DatasetError, match=r"possible_answer/BFCL_v4_parallel_multiple.json: "
                                           r"file not found"):
        bfcl.load(root)


def test_a_missing_package_is_a_clear_error(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(DatasetError, match=r"bfcl-eval is not installed.*--no-deps"):
        bfcl.data_dir()
