"""Shared fixtures. Each area keeps its own conftest under tests/<area>/."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def db_path(tmp_path):
    """A fresh store path in a temporary folder."""
    return tmp_path / "sagetui.db"
