"""Store tests: a fresh store per test (helpers live in store_helpers.py)."""

from __future__ import annotations

import pytest

from store import open_store


@pytest.fixture
def store(db_path):
    s = open_store(db_path)
    yield s
    s.close()
