"""Null servers as real child processes (torn down after each test)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def null_server():
    """start(ttft_ms=0, tpot_ms=0, fault="none") -> base URL."""
    procs: list[subprocess.Popen] = []

    def start(ttft_ms: float = 0, tpot_ms: float = 0, fault: str = "none") -> str:
        port = _free_port()
        p = subprocess.Popen(
            [sys.executable, "-m", "loadgen.null_server", "--port", str(port),
             "--ttft-ms", str(ttft_ms), "--tpot-ms", str(tpot_ms), "--fault", fault],
        )
        procs.append(p)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/health", timeout=0.5).read()
                return url
            except OSError:
                if p.poll() is not None:
                    raise RuntimeError("null server exited") from None
                time.sleep(0.05)
        raise RuntimeError("null server did not come up")

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
