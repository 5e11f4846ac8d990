"""The pipeline headers: a stage's job, deadline, attained service and rest of work."""

from __future__ import annotations

import pytest

from scheduler.gateway.validate import ClientError, parse_pipeline

HEADERS = {"X-Pipeline-Id": "r0000007", "X-Pipeline-Kind": "rag", "X-Pipeline-Stage": "answer",
           "X-Pipeline-Deadline-Ms": "2000", "X-Pipeline-Elapsed-Ms": "500",
           "X-Pipeline-Attained-Ms": "120.5", "X-Pipeline-Rest": "300,64,12.5"}


def test_a_stage_call_becomes_request_fields_on_the_gateway_s_clock():
    f = parse_pipeline(HEADERS, now=100.0)
    assert f["parent_id"] == "r0000007" and f["pipeline"] == "rag" and f["stage"] == "answer"
    assert f["pipeline_deadline"] == pytest.approx(101.5)  # now + 2000 - 500 ms
    assert f["attained_s"] == pytest.approx(0.1205)
    assert (f["rest_prompt_tokens"], f["rest_output_tokens"]) == (300, 64)
    assert f["rest_local_s"] == pytest.approx(0.0125)


def test_a_plain_call_has_no_pipeline_fields():
    assert parse_pipeline({"X-Pipeline-Stage": "answer"}, now=1.0) == {}


@pytest.mark.parametrize("name,value", [("X-Pipeline-Deadline-Ms", "soon"),
                                        ("X-Pipeline-Elapsed-Ms", "-3"),
                                        ("X-Pipeline-Attained-Ms", "nan"),
                                        ("X-Pipeline-Rest", "1,2"),
                                        ("X-Pipeline-Rest", "a,b,c"),
                                        ("X-Pipeline-Id", "x" * 500)])
def test_a_malformed_header_is_a_400_naming_it(name, value):
    with pytest.raises(ClientError) as e:
        parse_pipeline({**HEADERS, name: value}, now=0.0)
    assert e.value.status == 400 and name in str(e.value)
