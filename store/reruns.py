"""Reruns: which runs re-execute a run, and where a rerun's results differ from it.

Why here: "did it come out the same" is a question about stored rows (summary
and histogram), asked by `sagetui runs rerun` and the dashboard alike; what
counts as measured on the host (and so never identical) is the caller's
knowledge, passed in as `ignore_paths` / `ignore_metrics`.
"""

from __future__ import annotations

from store.db import Store
from store.errors import RunNotFound


def reruns_of(store: Store, run_id: int) -> list[int]:
    """Ids of the runs made by rerunning `run_id` (not deleted), oldest first."""
    with store.connection() as conn:
        return [r[0] for r in conn.execute(
            "SELECT id FROM run WHERE rerun_of = ? AND deleted = 0 ORDER BY id", (run_id,))]


def _histograms(conn, run_id: int) -> dict[tuple, tuple]:
    rows = conn.execute("SELECT metric, request_class, window_start_s, window_s, encoded, "
                        "count, min_us, max_us, mean_us FROM histogram WHERE run_id = ?",
                        (run_id,)).fetchall()
    return {(m, c, s, w): (blob, n, lo, hi, mean) for m, c, s, w, blob, n, lo, hi, mean in rows}


def _walk(a, b, path: str, ignore: tuple[str, ...], out: list) -> None:
    """Append (path, a, b) for every leaf where `a` and `b` differ, in key order."""
    if path in ignore:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            _walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key), ignore, out)
    elif a != b:
        out.append((path, a, b))


def _hist_label(key: tuple) -> str:
    metric, cls, start, width = key
    window = "whole run" if start is None else f"window {start:g}-{start + (width or 0):g} s"
    return f"histogram {cls}.{metric} ({window})"


def differences(store: Store, original: int, rerun: int, *,
                ignore_paths: tuple[str, ...] = (), ignore_metrics: tuple[str, ...] = ()
                ) -> dict:
    """Where `rerun`'s summaries and histograms differ from `original`'s.

    Returns {"summaries": n classes compared, "histograms": n compared,
    "differences": [(where, original value, rerun value), ...]} with summary
    paths first (`chat.metrics.ttft.p99`), then histograms (bytes of the HDR
    encoding; the values shown are count/min/max/mean). `ignore_paths` are
    summary paths under a class (`metrics.overhead`, `extra.control_plane.sim_wall_s`);
    `ignore_metrics` drops histograms by metric.
    """
    from store.queries import summaries_for

    with store.connection() as conn:
        for rid in (original, rerun):
            if conn.execute("SELECT 1 FROM run WHERE id = ?", (rid,)).fetchone() is None:
                raise RunNotFound(f"run {rid}: not found in {store.path}")
        ha, hb = _histograms(conn, original), _histograms(conn, rerun)
    summ = summaries_for(store, [original, rerun])
    out: list[tuple] = []
    for cls in sorted(set(summ[original]) | set(summ[rerun])):
        found: list[tuple] = []
        _walk(_fields(summ[original].get(cls)), _fields(summ[rerun].get(cls)), "",
              ignore_paths, found)
        out += [(f"summary {cls}.{p}", x, y) for p, x, y in found]
    keys = sorted((k for k in set(ha) | set(hb) if k[0] not in ignore_metrics),
                  key=lambda k: (k[0], k[1], k[2] is not None, k[2] or 0.0))
    for key in keys:
        x, y = ha.get(key), hb.get(key)
        if x is None or y is None or x[0] != y[0]:
            out.append((_hist_label(key), _hist_stats(x), _hist_stats(y)))
    return {"summaries": len(set(summ[original]) | set(summ[rerun])), "histograms": len(keys),
            "differences": out}


def _fields(summary: dict | None) -> dict:
    return {k: v for k, v in (summary or {}).items() if k != "request_class"}


def _hist_stats(h: tuple | None) -> str:
    if h is None:
        return "absent"
    _, n, lo, hi, mean = h
    return f"n={n} min={lo} us max={hi} us mean={mean:.6g} us"
