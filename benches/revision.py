"""The source of another git revision, for benches that measure it against this
tree in the same run (`--baseline REF`): a ratio on one machine load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def extract_ref(ref: str, into: Path, packages: list[str]) -> Path:
    """`packages` as they are at revision `ref`, unpacked under `into`; exits naming
    the revision when git cannot produce it."""
    into.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["git", "-C", str(ROOT), "archive", ref, *packages],
                         capture_output=True)
    if got.returncode:
        sys.exit(f"--baseline: git archive {ref!r} failed: {got.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=got.stdout, check=True)
    return into
