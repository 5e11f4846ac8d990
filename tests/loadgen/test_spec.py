"""WorkloadSpec validation: bad input names the field, file and line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loadgen.spec import WorkloadSpec


def _err(**kw) -> str:
    with pytest.raises(ValidationError) as e:
        WorkloadSpec(**kw)
    return str(e.value)


def test_defaults_are_resolved():
    d = WorkloadSpec().resolved()
    assert d["arrival"] == {"kind": "poisson"}
    assert set(d["sizes"]) == {"chat", "completion", "embedding", "pipeline"}
    assert d["mix"] == {"chat": 1.0, "completion": 0.0, "embedding": 0.0, "pipeline": 0.0}
    assert d["sizes"]["chat"]["prompt_tokens"]["value"] == 64
    assert WorkloadSpec.model_validate(d) == WorkloadSpec()


@pytest.mark.parametrize("rate", [0, -5])
def test_rate_must_be_positive(rate):
    assert "rate" in _err(rate=rate)


def test_all_zero_weights():
    assert "weights are all zero" in _err(mix={"chat": 0, "embedding": 0})


def test_unknown_class():
    assert "unknown class 'video'" in _err(mix={"video": 1.0})
    assert "unknown class 'video'" in _err(sizes={"video": {}})


def test_unknown_distribution_names_field():
    msg = _err(sizes={"chat": {"prompt_tokens": {"kind": "zipf", "value": 3}}})
    assert "sizes.chat.prompt_tokens.kind" in msg


def test_distribution_missing_parameter():
    assert "uniform distribution needs `high`" in _err(sizes={"chat": {"output_tokens": {"kind": "uniform", "low": 1}}})


def test_unknown_arrival_kind():
    assert "arrival" in _err(arrival={"kind": "fractal"})


def test_gamma_cv_and_burstiness_resolve():
    s = WorkloadSpec(arrival={"kind": "gamma", "burstiness": 0.25})
    assert s.arrival.cv == pytest.approx(2.0)
    assert "disagree" in _err(arrival={"kind": "gamma", "cv": 2, "burstiness": 1})


def test_embedding_has_no_ttft_slo():
    assert "embedding has no TTFT" in _err(slos={"embedding": {"ttft_ms": 10}})


def test_empty_trace_names_file(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("")
    msg = _err(arrival={"kind": "trace", "path": str(p)})
    assert str(p) in msg and "empty" in msg


def test_malformed_trace_names_file_and_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("timestamp,class,prompt_tokens\n0.0,chat,10\n0.5,chat,ten\n")
    msg = _err(arrival={"kind": "trace", "path": str(p)})
    assert f"{p}, line 3" in msg and "prompt_tokens" in msg


def test_malformed_jsonl_trace_line(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"t": 0, "class": "chat"}\n{"t": 1, "class": "chat"\n')
    assert f"{p}, line 2: malformed JSON" in _err(arrival={"kind": "trace", "path": str(p)})


def test_trace_unknown_class_line(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"t": 0, "class": "chat"}\n\n{"t": 1, "class": "audio"}\n')
    assert f"{p}, line 3: unknown class 'audio'" in _err(arrival={"kind": "trace", "path": str(p)})


def test_empirical_file_errors(tmp_path):
    p = tmp_path / "e.txt"
    p.write_text("10\n12\nx\n")
    msg = _err(sizes={"chat": {"prompt_tokens": {"kind": "empirical", "file": str(p)}}})
    assert f"{p}, line 3" in msg
    assert "not found" in _err(sizes={"chat": {"prompt_tokens": {"kind": "empirical", "file": str(tmp_path / "no")}}})


def test_extra_fields_are_refused():
    assert "ratee" in _err(ratee=3)


def test_target_rate():
    assert WorkloadSpec(rate=10).target_rate() == 10
    s = WorkloadSpec(rate=10, arrival={"kind": "onoff", "factor": 3, "on_s": 1, "off_s": 3})
    assert s.target_rate() == pytest.approx(10 * (3 * 1 + 3) / 4)
    assert WorkloadSpec(clients={"n": 2}).target_rate() is None


def test_closed_loop_refuses_an_arrival_process():
    assert "unused by a closed loop" in _err(clients={"n": 3}, arrival={"kind": "gamma", "cv": 2})
    assert WorkloadSpec(clients={"n": 3}).clients.n == 3
