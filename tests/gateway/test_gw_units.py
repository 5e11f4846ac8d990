"""Validation, config loading and batch splitting, without a server."""

from __future__ import annotations

import base64
import json

import pytest

from scheduler.gateway.config import GatewayConfigError, load_gateway_config
from scheduler.gateway.embed_batch import BatchError, merged_body, split_answer
from scheduler.gateway.validate import (
    ClientError,
    effective_priority,
    parse_meta,
    parse_request,
)

MODELS = frozenset({"tiny"})


def _err(cls: str, body) -> ClientError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ClientError) as ei:
        parse_request(cls, raw, MODELS)
    return ei.value


def test_valid_chat_sizes_and_defaults():
    p = parse_request("chat", json.dumps({"model": "tiny", "messages": [
        {"role": "user", "content": "x" * 40}], "max_tokens": 7, "stream": True}).encode(),
        MODELS)
    assert (p.cls, p.stream, p.prompt_tokens, p.output_tokens) == ("chat", True, 10, 7)
    p = parse_request("chat", b'{"model":"tiny","messages":[{"role":"user","content":"a"}]}',
                      MODELS, default_max_tokens=99)
    assert p.output_tokens == 99


@pytest.mark.parametrize("cls,body,param,status", [
    ("chat", b"{not json", None, 400),
    ("chat", b"[1,2]", None, 400),
    ("chat", b"", None, 400),
    ("chat", {"messages": [{"role": "user", "content": "a"}]}, "model", 400),
    ("chat", {"model": 3, "messages": []}, "model", 400),
    ("chat", {"model": "nope", "messages": [{"role": "user", "content": "a"}]}, "model", 404),
    ("chat", {"model": "tiny"}, "messages", 400),
    ("chat", {"model": "tiny", "messages": []}, "messages", 400),
    ("chat", {"model": "tiny", "messages": [{"role": "x", "content": "a"}]},
     "messages[0].role", 400),
    ("chat", {"model": "tiny", "messages": [{"role": "user", "content": 5}]},
     "messages[0].content", 400),
    ("chat", {"model": "tiny", "messages": [{"role": "user", "content": "a"}],
              "max_tokens": -1}, "max_tokens", 400),
    ("chat", {"model": "tiny", "messages": [{"role": "user", "content": "a"}],
              "max_tokens": True}, "max_tokens", 400),
    ("chat", {"model": "tiny", "messages": [{"role": "user", "content": "a"}],
              "stream": "yes"}, "stream", 400),
    ("chat", {"model": "tiny", "messages": [{"role": "user", "content": "a"}],
              "temperature": float("nan")}, "temperature", 400),
    ("completion", {"model": "tiny"}, "prompt", 400),
    ("completion", {"model": "tiny", "prompt": []}, "prompt", 400),
    ("completion", {"model": "tiny", "prompt": [[1], [-2]]}, "prompt[1]", 400),
    ("embedding", {"model": "tiny", "input": []}, "input", 400),
    ("embedding", {"model": "tiny", "input": [1, "a"]}, "input", 400),
    ("embedding", {"model": "tiny", "input": "a", "encoding_format": "hex"},
     "encoding_format", 400),
])
def test_bad_requests_name_the_field(cls, body, param, status):
    if isinstance(body, dict) and body.get("temperature") != body.get("temperature"):
        raw = json.dumps(body).encode()  # NaN is accepted by json.loads
        body = raw
    e = _err(cls, body)
    assert e.status == status
    assert e.param == param
    err = e.body()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]


def test_headers_priority_slo_and_body_priority():
    m = parse_meta({"X-Priority": "0", "X-SLO-TTFT-Ms": "250", "X-SLO-E2E-Ms": "1e3",
                    "X-Client-Id": "c7", "X-Request-Id": "r1"})
    assert (m.priority, m.slo_ttft_ms, m.slo_e2e_ms, m.client_id, m.request_id) == \
        (0, 250.0, 1000.0, "c7", "r1")
    p = parse_request("embedding", b'{"model":"tiny","input":"a","priority":9}', MODELS)
    assert effective_priority(parse_meta({}), p) == 4  # vLLM's field, clamped
    assert effective_priority(m, p) == 0  # the header wins
    for bad in ({"X-Priority": "7"}, {"X-Priority": "high"}, {"X-SLO-TTFT-Ms": "-1"},
                {"X-SLO-E2E-Ms": "inf"}, {"X-Client-Id": "x" * 200}):
        with pytest.raises(ClientError) as ei:
            parse_meta(bad)
        assert ei.value.param == next(iter(bad))


def test_config_errors_name_file_and_field(tmp_path):
    p = tmp_path / "gw.toml"
    p.write_text('[control_plane]\npolicy = "nope"\n')
    with pytest.raises(GatewayConfigError, match=r"gw.toml: control_plane.policy"):
        load_gateway_config(p)
    p.write_text('[[backends]]\nname = "a"\nkind = "openai"\ncapabilities = ["chat"]\n'
                 'model = "m"\n')
    with pytest.raises(GatewayConfigError, match=r"backends.0.url"):
        load_gateway_config(p)
    p.write_text('[[backends]]\nname = "a"\nkind = "openai"\ncapabilities = ["chatt"]\n')
    with pytest.raises(GatewayConfigError, match=r"backends.0.capabilities"):
        load_gateway_config(p)
    with pytest.raises(GatewayConfigError, match=r"missing.toml: file not found"):
        load_gateway_config(tmp_path / "missing.toml")
    p.write_text('[[backends]]\nname = "a"\nkind = "openai"\ncapabilities = ["chat"]\n'
                 'model = "m"\nurl = "http://127.0.0.1:1"\n[control_plane]\npolicy = "fifo"\n'
                 '[workload]\nrate = 5\n')  # a full run config's other sections are ignored
    cfg = load_gateway_config(p)
    assert cfg.control_plane.policy == "fifo" and cfg.backends[0].url.endswith(":1")


def test_batch_split_gives_each_request_its_vectors_and_usage():
    bodies = [{"model": "m", "input": "a"}, {"model": "m", "input": ["b", "c"]},
              {"model": "m", "input": [1, 2, 3]}]
    merged, counts = merged_body(bodies)
    assert merged["input"] == ["a", "b", "c", [1, 2, 3]] and counts == [1, 2, 1]
    answer = {"data": [{"index": i, "embedding": [float(i)]} for i in (3, 1, 0, 2)],
              "model": "m", "usage": {"prompt_tokens": 10, "total_tokens": 10}}
    parts = [json.loads(b) for b in split_answer(json.dumps(answer).encode(), counts,
                                                  [1, 2, 3])]
    assert [[d["embedding"] for d in p["data"]] for p in parts] == \
        [[[0.0]], [[1.0], [2.0]], [[3.0]]]
    assert [[d["index"] for d in p["data"]] for p in parts] == [[0], [0, 1], [0]]
    assert sum(p["usage"]["prompt_tokens"] for p in parts) == 10
    with pytest.raises(BatchError, match="3 embeddings for 4 inputs"):
        split_answer(json.dumps({"data": answer["data"][:3]}).encode(), counts, [1, 1, 1])
    b64 = base64.b64encode(b"\0" * 4).decode()
    one = split_answer(json.dumps({"data": [{"index": 0, "embedding": b64}]}).encode(),
                       [1], [1])
    assert json.loads(one[0])["data"][0]["embedding"] == b64


def test_slo_tpot_and_tier_headers():
    m = parse_meta({"X-SLO-TPOT-Ms": "40", "X-SLO-Tier": "interactive"})
    assert (m.slo_tpot_ms, m.slo_tier) == (40.0, "interactive")
    assert (parse_meta({}).slo_tpot_ms, parse_meta({}).slo_tier) == (None, "")
    for bad in ({"X-SLO-TPOT-Ms": "0"}, {"X-SLO-TPOT-Ms": "fast"}, {"X-SLO-TPOT-Ms": "nan"},
                {"X-SLO-Tier": ""}, {"X-SLO-Tier": "t" * 65}):
        with pytest.raises(ClientError) as ei:
            parse_meta(bad)
        name = next(iter(bad))
        assert ei.value.status == 400 and ei.value.param == name
        assert name in ei.value.body()["error"]["message"]


def _payload(raw: bytes, cls: str = "chat"):
    from scheduler.gateway.app import Payload, _forward_body
    p = parse_request(cls, raw, MODELS)
    return Payload(_forward_body(raw, p), p.body, p.stream, raw)


@pytest.mark.parametrize("raw", [
    b'{"model":"tiny","messages":[{"role":"user","content":"hi"}]}',
    b'  {\n "model": "tiny", "messages": [{"role": "user", "content": "hi"}]}',
    b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"priority":3}',
    b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"priority":-7}',
    '{"model":"tiny","messages":[{"role":"user","content":"hi"}]}'.encode("utf-16"),
    b'\xef\xbb\xbf{"model":"tiny","messages":[{"role":"user","content":"hi"}]}',
])
def test_upstream_body_carries_priority_only_to_priority_engines(raw):
    from scheduler.gateway.app import upstream_body
    pl = _payload(raw)
    plain = upstream_body(pl, 1, False)
    assert "priority" not in json.loads(plain)
    sent = upstream_body(pl, 1, True)
    body = json.loads(sent)
    assert body["priority"] == 1
    assert {k: v for k, v in body.items() if k != "priority"} == json.loads(plain)
    assert upstream_body(pl, 1, True) is sent  # built once per request


def test_upstream_body_forwards_the_clients_bytes_when_they_say_it_already():
    from scheduler.gateway.app import upstream_body
    raw = b'{"model":"tiny","priority":3,"messages":[{"role":"user","content":"hi"}]}'
    assert upstream_body(_payload(raw), 3, True) is raw
    raw = b'{"model":"tiny","messages":[{"role":"user","content":"hi"}]}'
    pl = _payload(raw)
    assert pl.raw is raw and upstream_body(pl, 2, False) is raw  # the fast path stays
