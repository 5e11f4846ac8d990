"""A real run writer process for the reliability tests (not a test module).

usage: writer_proc.py DB NAME SAMPLES INTERVAL_S [REQUESTS]
Prints `run ID`, then `sample T` after each add_sample has committed, so the
parent knows exactly what is durable when it kills us.
"""

from __future__ import annotations

import sys
import time

from store import open_store


def main() -> None:
    db, name, n, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    n_requests = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    store = open_store(db)
    w = store.create_run(experiment_id=None, name=name, mode="live", config={"name": name},
                         seed=0, repetition=0)
    w.start()
    print(f"run {w.run_id}", flush=True)
    for i in range(n):
        w.add_sample({"t_s": float(i), "offered_rps": 10.0, "done": i,
                      "backends": {"b0": {"running": i % 4}}})
        print(f"sample {i}", flush=True)
        if n_requests and i == n // 2:
            w.add_requests({"request_id": f"{name}-{k}", "request_class": "chat",
                            "t_intended": k * 1e-3} for k in range(n_requests))
        w.heartbeat(requests_done=i)
        time.sleep(interval)
    w.finish()
    print("done", flush=True)


if __name__ == "__main__":
    main()
