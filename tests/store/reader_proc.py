"""A polling reader for the concurrency test (not a test module).

usage: reader_proc.py DB STOPFILE — polls every 100 ms like the TUI until
STOPFILE exists; prints `ok POLLS` or `error ...` and exits 1 on any error.
"""

from __future__ import annotations

import os
import sys
import time

from store import open_store, queries


def main() -> None:
    db, stop = sys.argv[1], sys.argv[2]
    polls = 0
    try:
        store = open_store(db)
        while not os.path.exists(stop):
            for r in queries.list_runs(store):
                queries.samples(store, r["id"])
                queries.get_run(store, r["id"])
            with open_store(db) as fresh:  # the open path too (validation, recovery)
                queries.list_runs(fresh, status="running")
            queries.run_sql(db, "SELECT COUNT(*) FROM request")
            polls += 1
            time.sleep(0.1)
    except Exception as exc:  # report any error, "database is locked" above all
        print(f"error {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)
    print(f"ok {polls}", flush=True)


if __name__ == "__main__":
    main()
