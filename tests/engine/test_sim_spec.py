"""BackendSpec validation: every bad field is named with its allowed values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.spec import BackendSpec, EngineStats


def spec(**kw) -> BackendSpec:
    base = dict(name="b", kind="sim", capabilities=["chat"], preset="7b-h100")
    base.update(kw)
    return BackendSpec(**base)


def test_a_good_spec_validates_with_defaults():
    s = spec(capabilities=["chat", "completion", "chat"])
    assert s.capabilities == ["chat", "completion"]
    assert s.max_concurrency == 1 and s.price_per_hour == 0.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", "tgi", "kind: 'tgi' is not one of sim, vllm, vllm-cpu"),
        ("capabilities", [], "capabilities: must name at least one of chat"),
        ("capabilities", ["chat", "rerank"], "capabilities: 'rerank' not in chat, completion"),
        ("max_concurrency", 0, "max_concurrency: must be >= 1"),
        ("price_per_hour", -0.5, "price_per_hour: must be >= 0"),
        ("device", "tpu", "device: 'tpu' is not one of cpu, gpu"),
        ("tensor_parallel", 0, "tensor_parallel: must be >= 1"),
        ("preset", "7b-tpu", "preset: '7b-tpu' is not a known LLM simulator preset"),
    ],
)
def test_bad_fields_are_named(field, value, message):
    with pytest.raises(ValidationError) as e:
        spec(**{field: value})
    assert message in str(e.value)


def test_sim_preset_must_match_the_role():
    with pytest.raises(ValidationError, match="allowed: bge-large-a100, minilm-cpu"):
        spec(capabilities=["embedding"], preset="7b-h100")
    assert spec(capabilities=["embedding"], preset="minilm-cpu").preset == "minilm-cpu"
    # live kinds need no preset
    assert spec(kind="vllm", preset="").kind == "vllm"


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="gpu_count"):
        spec(gpu_count=2)


def test_engine_stats_in_flight_is_optional():
    s = EngineStats(running=3, waiting=2, kv_use=0.5)
    assert s.in_flight is None
    assert EngineStats(1, 0, 0.1, in_flight=1).in_flight == 1


@pytest.mark.parametrize(("args", "want"), [
    ([], False),
    (["--scheduling-policy", "priority"], True),
    (["--dtype", "bf16", "--scheduling-policy=priority"], True),
    (["--scheduling-policy", "fcfs"], False),
    (["--scheduling-policy=fcfs"], False),
    (["--scheduling-policy", "priority", "--scheduling-policy", "fcfs"], False),
    (["--scheduling-policy"], False),
    (["priority"], False),
])
def test_priority_scheduling_is_read_from_the_vllm_flags(args, want):
    s = spec(kind="vllm", url="http://x:1", model="m", extra_args=args)
    assert s.priority_scheduling is want
    assert "priority_scheduling" not in s.model_dump()
    with pytest.raises((AttributeError, ValueError)):
        s.priority_scheduling = not want
