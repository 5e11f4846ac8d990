"""Shared fixtures. Each area keeps its own conftest under tests/<area>/.

`vllm_cpu` is session-wide: ONE vLLM-on-CPU start (about a minute on 2 cores)
serves every live test in every directory.
"""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import settings

from engine.launcher import Launcher
from engine.spec import BackendSpec

# CI (`.ci/run`) draws the same property-test examples every run, so a submission
# lands or fails on its own code, not on that run's draw; `make test` elsewhere
# draws new ones each run, to keep exploring. A case found that way becomes an
# `@example` (tests/gateway/test_gw_fuzz.py has one).
settings.register_profile("ci", derandomize=True)
if os.environ.get("SAGETUI_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["SAGETUI_HYPOTHESIS_PROFILE"])

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# Launched in the background (`make test &` from a script), pytest inherits SIGINT
# ignored and so would every child it starts: the Ctrl-C tests then test nothing.
# A Python handler is reset to the default on exec, so children get a normal SIGINT.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
async def serve_app():
    """Serve aiohttp `web.Application`s on free loopback ports; returns each one's URL.
    Why: tests that need a real server with one odd behaviour (cut SSE lines, peers
    seen per connection) build a tiny app; this is the one way they start it."""
    from aiohttp import web

    runners = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def db_path(tmp_path):
    """A fresh store path in a temporary folder."""
    return tmp_path / "sagetui.db"


@pytest.fixture(scope="session")
def vllm_cpu(tmp_path_factory):
    """A launched vLLM-on-CPU engine serving the tiny Llama as model 'tiny-llama'."""
    spec = BackendSpec(name="vllm-cpu-0", kind="vllm-cpu", capabilities=["chat", "completion"],
                       device="cpu", device_kind="x86-64", model="tiny-llama",
                       # eager: skips ~30 s of torch.compile warm-up; tests time nothing here
                       extra_args=["--max-model-len", "1024", "--enforce-eager"])
    with Launcher([spec], tmp_path_factory.mktemp("vllm-run"), health_timeout_s=400) as engines:
        yield engines[0]


@pytest.fixture
def real_cpu_backends(vllm_cpu) -> str:
    """`[[backends]]` TOML for this machine's real engines: the session's vLLM-on-CPU
    (by URL) and MiniLM on serve-embed (launched by the run)."""
    return f"""
[[backends]]
name = "vllm-cpu"
kind = "vllm-cpu"
url = "{vllm_cpu.url}"
model = "tiny-llama"
device = "cpu"
capabilities = ["chat", "completion"]
max_concurrency = 16

[[backends]]
name = "minilm"
kind = "sentence-transformers"
device = "cpu"
capabilities = ["embedding"]
max_concurrency = 4
"""
