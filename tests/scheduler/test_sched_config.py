"""ControlPlaneConfig: defaults, and bad input names the field and the allowed values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scheduler.config import ControlPlaneConfig


def test_defaults_resolve_every_parameter():
    d = ControlPlaneConfig().model_dump()
    assert d["baseline"] == "sage" and d["policy"] == "hybrid"
    assert d["hybrid"]["batch_max_texts"] == 32 and d["hybrid"]["batch_max_wait_ms"] == 0
    assert d["router"] == "least-work" and d["admission"] == "auto"
    assert d["priority"]["aging_s"] > 0 and d["queue_capacity"]["chat"] > 0


@pytest.mark.parametrize("field,value,needle", [
    ("policy", "lifo", "fifo, priority, slo, hybrid"),
    ("router", "random", "round-robin, least-outstanding, p2c, cost-aware"),
    ("baseline", "k8s", "sage, vllm-only, separate, colocated, split, vllm-priority"),
])
def test_unknown_names_list_allowed_values(field, value, needle):
    with pytest.raises(ValidationError) as e:
        ControlPlaneConfig(**{field: value})
    msg = str(e.value)
    assert field in msg and needle in msg and repr(value) in msg


@pytest.mark.parametrize("hybrid,needle", [
    ({"batch_max_texts": 0}, "hybrid.batch_max_texts"),
    ({"batch_max_wait_ms": -1}, "hybrid.batch_max_wait_ms"),
    ({"shares": {"llm": 0.5, "embedding": 0.6}}, "must sum to 1"),
    ({"shares": {"llm": 1.0}}, "keys must be exactly llm, embedding"),
    ({"shares": {"llm": 1.0, "embedding": 0.0}}, "shares.embedding"),
    ({"batch_size": 8}, "batch_size"),
])
def test_bad_hybrid_parameters_name_the_field(hybrid, needle):
    with pytest.raises(ValidationError) as e:
        ControlPlaneConfig(hybrid=hybrid)
    assert needle in str(e.value)


def test_zero_queue_capacity_rejected():
    with pytest.raises(ValidationError) as e:
        ControlPlaneConfig(queue_capacity={"chat": 0})
    assert "queue_capacity.chat" in str(e.value)
