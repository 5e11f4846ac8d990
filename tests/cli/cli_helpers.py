"""Helpers for the CLI tests (imported as a plain module, like tests/store/store_helpers.py)."""

from __future__ import annotations

import textwrap

from click.testing import CliRunner

from sagetui.cli import main

SIM_CONFIG = textwrap.dedent("""
    [run]
    name = "tiny"
    mode = "sim"
    seed = 7
    repetitions = 2

    [workload]
    arrival = "poisson"
    rate = 40
    duration_s = 3
    warmup_s = 1
    client_ids = 4
    mix = { chat = 0.7, embedding = 0.3 }

    [workload.slos.chat]
    ttft_ms = 500
    e2e_ms = 5000

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


def sagetui(db, *args):
    """`sagetui --db DB ARGS` in-process; the click Result (stdout and stderr apart)."""
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)
