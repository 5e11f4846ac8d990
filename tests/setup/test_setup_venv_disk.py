"""The set-up script refuses a too-full disk before it makes anything.

Why: CI once failed 27 s in, deep inside pip ("[Errno 28] No space left on
device"), with a half-made venv left behind. The script now checks first.
"""
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "setup_venv.sh"


def _run(tmp_path: Path, min_free_gib: str) -> subprocess.CompletedProcess:
    shutil.copy(SCRIPT, tmp_path / "setup_venv.sh")
    env = {"PATH": "/usr/bin:/bin", "PY": "python3", "SAGETUI_SETUP_MIN_FREE_GIB": min_free_gib}
    return subprocess.run(["bash", "setup_venv.sh"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_refuses_when_the_disk_is_too_full_and_makes_no_venv(tmp_path):
    proc = _run(tmp_path, "100000000")  # more than any disk here has
    assert proc.returncode == 1
    assert "GiB free on the disk holding" in proc.stderr
    assert str(tmp_path) in proc.stderr
    assert not (tmp_path / ".venv").exists()
