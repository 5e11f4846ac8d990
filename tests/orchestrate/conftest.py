"""Small configs for end-to-end sim runs through the CLI."""

from __future__ import annotations

import textwrap

import pytest

BASE = textwrap.dedent("""
    [run]
    name = "t"
    mode = "sim"
    seed = 7

    [workload]
    arrival = "poisson"
    rate = 50
    duration_s = 6
    warmup_s = 1
    client_ids = 4
    mix = { chat = 0.7, embedding = 0.3 }

    [workload.slos.chat]
    ttft_ms = 500
    e2e_ms = 5000

    [workload.slos.embedding]
    e2e_ms = 100

    [control_plane]
    policy = "hybrid"

    [[backends]]
    name = "gpu0"
    kind = "sim"
    preset = "7b-h100"
    capabilities = ["chat", "completion"]
    max_concurrency = 64

    [[backends]]
    name = "emb0"
    kind = "sim"
    preset = "minilm-cpu"
    device = "cpu"
    capabilities = ["embedding"]
    max_concurrency = 2
""")


@pytest.fixture
def make_config(tmp_path):
    """Write BASE plus `extra` TOML to a file and return its path."""

    def make(extra: str = "", name: str = "cfg.toml") -> str:
        path = tmp_path / name
        path.write_text(BASE + textwrap.dedent(extra))
        return str(path)

    return make
