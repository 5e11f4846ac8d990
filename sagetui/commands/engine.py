"""`sagetui engine`: build the tiny model and serve engines (embeddings, simulator).

Why here: only sagetui imports click; the engines themselves live in engine/ and
are started by the launcher through these commands (argv lists, never a shell).
"""

from __future__ import annotations

import click


@click.group("engine")
def command() -> None:
    """Engines: tiny test model, embedding server, simulated engine server."""


@command.command("tiny-model")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def tiny_model(directory: str | None) -> None:
    """Write the tiny random-weight Llama to DIRECTORY (default: the shared cache).

    Deterministic and idempotent: a folder that already holds a valid build is kept.
    """
    from engine.tiny_model import TinyModelError, content_hash, ensure_tiny_model

    try:
        path = ensure_tiny_model(directory)
    except TinyModelError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{path}  sha256={content_hash(path)}")
