"""`sagetui gateway` as a user runs it: a child process serving until SIGINT."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from click.testing import CliRunner

from sagetui.cli import main


def test_bad_config_exits_2_naming_file_and_field(tmp_path):
    p = tmp_path / "gw.toml"
    p.write_text('[[backends]]\nname = "a"\nkind = "openai"\ncapabilities = ["chat"]\n'
                 'model = "m"\n')
    r = CliRunner().invoke(main, ["gateway", "--config", str(p)])
    assert r.exit_code == 2
    assert "gw.toml: backends.0.url" in r.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serves_until_sigint_with_key_from_env(tmp_path):
    up, gw = _free_port(), _free_port()
    p = tmp_path / "gw.toml"
    p.write_text(f'[control_plane]\npolicy = "fifo"\n[[backends]]\nname = "n"\n'
                 f'kind = "openai"\ncapabilities = ["chat"]\nmodel = "m"\n'
                 f'url = "http://127.0.0.1:{up}"\nmax_concurrency = 2\n')
    env = dict(os.environ, SAGETUI_API_KEY="envkey")
    null = subprocess.Popen([sys.executable, "-m", "loadgen.null_server", "--port", str(up)])
    proc = subprocess.Popen([sys.executable, "-m", "sagetui", "gateway", "--config", str(p),
                             "--port", str(gw)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert f"gateway on http://127.0.0.1:{gw}" in line and "auth=bearer" in line
        body = json.dumps({"model": "m", "max_tokens": 3,
                           "messages": [{"role": "user", "content": "x"}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{gw}/v1/chat/completions", data=body,
                                     headers={"Authorization": "Bearer envkey",
                                              "Content-Type": "application/json"})
        for _ in range(50):  # the null server may still be starting
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    assert r.status == 200 and r.headers["x-sage-backend"] == "n"
                    break
            except urllib.error.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("gateway never answered 200")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        for child in (proc, null):
            if child.poll() is None:
                child.kill()
                child.wait(5)
        proc.stderr.close()
