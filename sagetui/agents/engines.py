"""The engines and the gateway suite E sends its pipelines through.

The suite's backends (its file's `[[base.backends]]`, or `--backends FILE`) are
launched or reached by URL like any live run's; the control-plane gateway runs
in this process in front of them, with the suite's `[base.control_plane]`
(its scheduling policy). The embedding engine always runs (the embedding and
fusion strategies and the LLM's shortlist need it); the chat engine only when
the LLM strategy runs (`--mode live`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from engine.spec import BackendSpec
from scheduler.config import ControlPlaneConfig
from scheduler.gateway.config import GatewayConfig

from ..config import ConfigError
from .runner import Endpoints


def pick(specs: list[BackendSpec], *, need_chat: bool, source: str) -> list[BackendSpec]:
    """The embedding backend and, when needed, the chat backend (the first of each)."""
    emb = [s for s in specs if "embedding" in s.capabilities]
    if not emb:
        raise ConfigError(f"{source}: backends: suite E needs a backend with the embedding "
                          "capability (MiniLM: kind = \"sentence-transformers\")")
    out = [emb[0]]
    if need_chat:
        chat = [s for s in specs if "chat" in s.capabilities and s is not emb[0]]
        if not chat:
            raise ConfigError(f"{source}: backends: the LLM strategy needs a backend with the "
                              "chat capability")
        out.append(chat[0])
    return out


@contextlib.contextmanager
def serving(specs: list[BackendSpec], control_plane: dict, run_dir: Path):
    """Launch (or reach) `specs`, start the gateway; yields (Endpoints, backend rows)."""
    from engine.launcher import Launcher, LaunchError

    from ..orchestrate.live import GatewayThread, served_model

    try:
        cp = ControlPlaneConfig(**control_plane)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"control_plane: {exc}") from None
    launcher = Launcher(specs, run_dir, health_timeout_s=900.0)
    try:
        try:
            engines = launcher.start()
        except LaunchError as exc:
            raise RuntimeError(f"engines did not start: {exc}") from None
        served = [e.spec.model_copy(update={"url": e.url,
                                            "model": served_model(e) or e.spec.model})
                  for e in engines]
        rows = [e.backend_row() | {"model": s.model} for e, s in zip(engines, served, strict=True)]
        gateway = GatewayThread(GatewayConfig(cp, served))
        gateway.start()
        try:
            emb = next(s for s in served if "embedding" in s.capabilities)
            chat = next((s for s in served if "chat" in s.capabilities and s is not emb), None)
            yield Endpoints(gateway.url, emb.model, chat.model if chat else None), rows
        finally:
            gateway.stop()
    finally:
        launcher.stop()
