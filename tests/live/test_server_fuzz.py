"""Property: whatever a client sends, serve-sim answers 2xx or a 4xx OpenAI error — never 5xx."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.launcher import Launcher

from .conftest import sim_spec

PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", 3]),
                                 "content": json_values})
field_values = {
    "model": st.sampled_from(["tiny-llama", "tiny-cpu", "all-MiniLM-L6-v2", "nope"]) | json_values,
    "messages": st.lists(message, max_size=3) | json_values,
    "prompt": st.text(max_size=30) | st.lists(st.text(max_size=5), max_size=2) | json_values,
    "max_tokens": st.integers(-3, 40) | json_values,
    "max_completion_tokens": st.integers(-3, 40) | json_values,
    "stream": st.booleans() | json_values,
    "stream_options": st.just({"include_usage": True}) | json_values,
    "priority": st.integers(-10, 10) | json_values,
    "input": st.text(max_size=20) | st.lists(st.text(max_size=10), max_size=4) | json_values,
    "encoding_format": st.sampled_from(["float", "base64", "hex"]) | json_values,
}
VALID = [
    {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 3, "stream": True,
     "stream_options": {"include_usage": True}},
    {"prompt": "one two", "max_tokens": 4},
    {"input": ["a b", "c"], "model": "all-MiniLM-L6-v2"},
]


@st.composite
def mutated(draw):
    """A valid body with one field replaced, dropped or added: near misses find the bugs."""
    body = dict(draw(st.sampled_from(VALID)))
    key = draw(st.sampled_from(sorted(field_values)))
    how = draw(st.sampled_from(["keep", "drop", "replace"]))
    if how == "drop":
        body.pop(key, None)
    elif how == "replace":
        body[key] = draw(field_values[key])
    return body


bodies = (st.sampled_from(VALID) | mutated() | mutated()
          | st.fixed_dictionaries({}, optional=field_values)).map(json.dumps).map(str.encode) \
    | st.binary(max_size=40)


@pytest.fixture(scope="module")
def conns(tmp_path_factory):
    specs = [sim_spec("llm", "tiny-cpu"), sim_spec("emb", "minilm-cpu", caps=("embedding",))]
    with Launcher(specs, tmp_path_factory.mktemp("fuzz-run"), health_timeout_s=60) as engines:
        yield [urlsplit(e.url) for e in engines]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.integers(0, 1), path=st.sampled_from(PATHS), body=bodies)
def test_never_5xx(conns, target, path, body):
    u = conns[target]
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
    finally:
        c.close()
    event(f"HTTP {r.status}")
    assert r.status < 500, (r.status, data[:300])
    if r.status >= 400:
        err = json.loads(data)["error"]
        assert err["message"] and err["type"] == "invalid_request_error"
