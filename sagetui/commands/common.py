"""Small helpers every command shares: error exit and one-line summaries."""

from __future__ import annotations

import sys

import click


def fail(message: str, code: int = 2) -> None:
    """Print `message` on stderr and exit with `code` (2 = bad input)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def summary_line(summaries: dict) -> str:
    """`chat p99 TTFT 123 ms | embedding p99 E2E 4 ms | SLO chat 95.2% embedding 100.0%
    | 199.8 req/s`: attainment per class, since a pooled figure hides a chat collapse
    behind embeddings that all meet theirs."""
    parts = []
    chat = summaries.get("chat")
    if chat and chat.get("metrics", {}).get("ttft"):
        parts.append(f"chat p99 TTFT {chat['metrics']['ttft']['p99']:.0f} ms")
    emb = summaries.get("embedding")
    if emb and emb.get("metrics", {}).get("e2e"):
        parts.append(f"embedding p99 E2E {emb['metrics']['e2e']['p99']:.1f} ms")
    per_class = [f"{c} {100 * s['slo_attainment']:.1f}%" for c, s in summaries.items()
                 if c != "all" and s and s.get("slo_attainment") is not None]
    if per_class:
        parts.append("SLO " + " ".join(per_class))
    total = summaries.get("all")
    if total:
        parts.append(f"{total.get('throughput_rps', 0):.1f} req/s")
        pc = (total.get("extra") or {}).get("engines", {}).get("prefix_cache") or {}
        if pc.get("hits"):  # simulated engines reused cached prefixes
            parts.append(f"prefix cache hits {100 * pc['hit_rate']:.1f}%")
    return " | ".join(parts)
