"""`sagetui run --mode live` end to end: real processes, real sockets, the store.

The fault and teardown tests use serve-sim engines (simulated engines served
in real time) so they are quick; the mixed-run test uses the real engines
(vLLM on CPU with the tiny Llama, the packaged MiniLM) and is marked `live`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from click.testing import CliRunner

from sagetui.cli import main

SIM_BACKENDS = """
[[backends]]
name = "llm-a"
kind = "sim"
preset = "tiny-cpu"
device = "cpu"
capabilities = ["chat", "completion"]
max_concurrency = 16

[[backends]]
name = "llm-b"
kind = "sim"
preset = "tiny-cpu"
device = "cpu"
capabilities = ["chat", "completion"]
max_concurrency = 16

[[backends]]
name = "emb"
kind = "sim"
preset = "minilm-cpu"
device = "cpu"
capabilities = ["embedding"]
max_concurrency = 4
"""


def config(tmp_path, body: str, name: str = "live.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def query(db, sql, *params):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _samples(db) -> int:
    """Samples stored so far (0 while the store is still being created)."""
    try:
        return query(db, "SELECT count(*) FROM sample")[0][0]
    except sqlite3.OperationalError:
        return 0


@pytest.fixture(autouse=True)
def _runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGETUI_RUNS_DIR", str(tmp_path / "runs"))


def test_killing_one_of_two_engines_mid_run_loses_no_request(tmp_path, db_path):
    cfg = config(tmp_path, """
        [run]
        name = "fault"
        mode = "live"
        raw = true

        [workload]
        rate = 30
        duration_s = 6
        warmup_s = 1
        mix = { chat = 0.8, embedding = 0.2 }
        sizes.chat = { prompt_tokens = 32, output_tokens = 16 }

        [control_plane]
        policy = "hybrid"

        [[faults]]
        at_s = 3
        backend = "llm-b"
        action = "kill"
    """ + SIM_BACKENDS)
    res = CliRunner().invoke(main, ["--db", str(db_path), "run", cfg], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (status,), = query(db_path, "SELECT status FROM run")
    assert status == "completed"
    faults = query(db_path, "SELECT subject, t_s FROM event WHERE kind='fault'")
    assert [s for s, _ in faults] == ["llm-b"]
    assert 2.5 < faults[0][1] < 4.5
    # Every request is accounted for exactly once, with a reason when not completed.
    rows = query(db_path, "SELECT status, reason FROM request")
    assert rows and all(s in ("completed", "failed", "rejected") for s, _ in rows)
    assert all(reason for s, reason in rows if s != "completed")
    (issued, done, failed, rejected), = query(
        db_path, "SELECT issued, completed, failed, rejected FROM summary "
                 "WHERE request_class='all'")
    assert issued == done + failed + rejected
    # The survivor kept serving: most requests still completed.
    assert done >= 0.8 * issued


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig,background", [(signal.SIGINT, False), (signal.SIGTERM, False),
                                            (signal.SIGTERM, True)],
                         ids=["ctrl-c", "sigterm", "sigterm-started-in-background"])
def test_interrupting_a_live_run_leaves_no_child_process(tmp_path, db_path, sig, background):
    """Ctrl-C, or SIGTERM (the dashboard's cancel): engines gone, run cancelled, data kept.
    Started in the background (`sagetui run … &` from a script) SIGINT arrives ignored;
    SIGTERM must cancel all the same."""
    cfg = config(tmp_path, """
        [run]
        name = "teardown"
        mode = "live"

        [workload]
        rate = 10
        duration_s = 60
        mix = { chat = 1.0 }
        sizes.chat = { prompt_tokens = 16, output_tokens = 8 }
    """ + SIM_BACKENDS)
    env = {**os.environ, "SAGETUI_RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.Popen([sys.executable, "-m", "sagetui", "--db", str(db_path), "run", cfg],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_ignore_sigint if background else None)
    try:
        deadline = time.monotonic() + 120
        children: list[psutil.Process] = []
        while time.monotonic() < deadline:
            if _samples(db_path) >= 2:
                children = psutil.Process(proc.pid).children(recursive=True)
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.3)
        assert len(children) >= 3, "the three engines should be running as children"
        proc.send_signal(sig)
        proc.wait(timeout=60)
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, f"orphans left: {[p.pid for p in alive]}"
        (status,), = query(db_path, "SELECT status FROM run")
        assert status == "cancelled"
        assert query(db_path, "SELECT count(*) FROM sample")[0][0] >= 2  # kept what it measured
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.live
@pytest.mark.slow
def test_mixed_run_on_real_cpu_engines_through_the_gateway(tmp_path, db_path,
                                                            real_cpu_backends):
    """Tiny Llama on vLLM-on-CPU (by URL, started once per session) + MiniLM served by
    serve-embed (launched by the run) + the gateway with the hybrid policy."""
    cfg = config(tmp_path, """
        [run]
        name = "e2e-live"
        mode = "live"
        raw = true

        [workload]
        rate = 6
        duration_s = 6
        warmup_s = 1
        client_ids = 3
        mix = { chat = 0.7, embedding = 0.3 }
        sizes.chat = { prompt_tokens = 48, output_tokens = 24 }
        sizes.embedding = { n_texts = 3, text_tokens = 16 }

        [control_plane]
        policy = "hybrid"

    """ + real_cpu_backends)
    res = CliRunner().invoke(main, ["--db", str(db_path), "run", cfg], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (status, config_json), = query(db_path, "SELECT status, config_json FROM run")
    assert status == "completed"
    assert json.loads(config_json)["control_plane"]["policy"] == "hybrid"
    chats = query(db_path, "SELECT t_first_token, t_done, output_tokens, status, reason "
                           "FROM request WHERE request_class='chat'")
    assert chats
    for first, done, out_tokens, st, reason in chats:
        assert st == "completed", reason
        assert first < done
        assert out_tokens == 24  # max_tokens + ignore_eos, counted by the server
    embeds = query(db_path, "SELECT status, n_texts FROM request WHERE request_class='embedding'")
    assert embeds and all(s == "completed" and n == 3 for s, n in embeds)
    summary = dict(query(db_path, "SELECT request_class, completed FROM summary"))
    assert summary["chat"] > 0 and summary["embedding"] > 0
    backends = dict(query(db_path, "SELECT name, engine_version FROM backend"))
    assert backends["vllm-cpu"]  # the engine's /version was recorded


@pytest.mark.live
@pytest.mark.slow
def test_gateway_embeddings_have_minilm_dimension(tmp_path, vllm_cpu):
    """Through the gateway (hybrid batching) the real MiniLM answers 384-d vectors."""
    import openai

    from engine.launcher import Launcher
    from engine.spec import BackendSpec
    from sagetui.orchestrate.live import GatewayThread
    from scheduler.config import ControlPlaneConfig
    from scheduler.gateway.config import GatewayConfig

    emb = BackendSpec(name="minilm", kind="sentence-transformers", device="cpu",
                      capabilities=["embedding"], max_concurrency=2)
    with Launcher([emb], tmp_path) as engines:
        llm = BackendSpec(name="vllm-cpu", kind="vllm-cpu", url=vllm_cpu.url, model="tiny-llama",
                          device="cpu", capabilities=["chat", "completion"], max_concurrency=8)
        served = json.loads(__import__("urllib.request").request.urlopen(
            f"{engines[0].url}/v1/models").read())["data"][0]["id"]
        emb_live = emb.model_copy(update={"url": engines[0].url, "model": served})
        gw = GatewayThread(GatewayConfig(ControlPlaneConfig(policy="hybrid"), [llm, emb_live]))
        gw.start()
        try:
            client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused")
            out = client.embeddings.create(model=served, input=["a cat", "a dog", "a car"])
            assert [len(d.embedding) for d in out.data] == [384, 384, 384]
        finally:
            gw.stop()


def test_run_cpus_pins_the_client_for_the_run_only(tmp_path, db_path):
    """`run.cpus` puts the load generator and gateway on those cores while the run
    measures (stored as extra.live.client_cpus) and gives the old affinity back."""
    core = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    cfg = config(tmp_path, f"""
        [run]
        name = "pinned"
        mode = "live"
        cpus = [{core}]
        [workload]
        rate = 20
        duration_s = 2
        warmup_s = 0
        mix = {{ chat = 0.7, embedding = 0.3 }}
    """ + SIM_BACKENDS)
    res = CliRunner().invoke(main, ["--db", str(db_path), "run", cfg])
    assert res.exit_code == 0, res.output
    assert os.sched_getaffinity(0) == before
    (extra,) = query(db_path, "SELECT extra_json FROM summary WHERE request_class='all'")
    live = json.loads(extra[0])["live"]
    assert live["client_cpus"] == [core] and live["pacer"]  # how sends were timed
    assert live["workers"] == 1
    bad = cfg.replace("pinned", "bad")
    with open(cfg) as f:
        text = f.read().replace(f"cpus = [{core}]", "cpus = [4096]")
    with open(bad, "w") as f:
        f.write(text)
    res = CliRunner().invoke(main, ["--db", str(tmp_path / "other.db"), "run", bad])
    assert res.exit_code == 2 and "run.cpus: [4096] not available" in res.output
    assert not (tmp_path / "other.db").exists() or not query(
        tmp_path / "other.db", "SELECT count(*) FROM run")[0][0]


def test_load_workers_share_one_live_run(tmp_path, db_path):
    """`run.load_workers` spreads the sends over that many processes: one run, every
    request stored once."""
    cfg = config(tmp_path, """
        [run]
        name = "two-workers"
        mode = "live"
        raw = true
        load_workers = 2
        [workload]
        rate = 40
        duration_s = 2
        warmup_s = 0
        mix = { chat = 0.7, embedding = 0.3 }
    """ + SIM_BACKENDS)
    res = CliRunner().invoke(main, ["--db", str(db_path), "run", cfg])
    assert res.exit_code == 0, res.output
    (extra,) = query(db_path, "SELECT extra_json FROM summary WHERE request_class='all'")
    assert json.loads(extra[0])["live"]["workers"] == 2
    done, (n, distinct, ok) = (query(db_path, "SELECT requests_done FROM run")[0][0],
                               query(db_path, "SELECT count(*), count(DISTINCT request_id), "
                                     "sum(status = 'completed') FROM request")[0])
    assert done == n == distinct == ok > 60  # ~80 sent at 40 req/s for 2 s, each once
