"""`sagetui engine serve-sim` / `serve-embed` as a user runs them: start, answer, stop on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from engine.launcher import check_health, free_port

CLI = [sys.executable, "-c", "from sagetui.cli import main; main()", "engine"]


def test_serve_sim_runs_until_ctrl_c():
    port = free_port()
    proc = subprocess.Popen([*CLI, "serve-sim", "--preset", "tiny-cpu", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 30
        while not check_health(f"http://127.0.0.1:{port}", 0.5):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < end, "serve-sim did not become healthy in 30 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_options_name_the_problem():
    from click.testing import CliRunner

    from sagetui.cli import main

    out = CliRunner().invoke(main, ["engine", "serve-sim", "--preset", "no-such"])
    assert out.exit_code == 1 and "preset: 'no-such' unknown" in out.output
    out = CliRunner().invoke(main, ["engine", "serve-embed", "--device", "tpu"])
    assert out.exit_code == 1 and "device: 'tpu'" in out.output
