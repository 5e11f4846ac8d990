"""The gateway's config file: `[control_plane]` and `[[backends]]` with URLs.

Why a loader here and not sagetui/config.py: the gateway runs on its own
(`sagetui gateway --config X.toml`) in front of engines that already run, and
scheduler may not import sagetui. Section names are the run config's, so a
full run config loads too (its other sections are ignored).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from engine.spec import BackendSpec
from scheduler.config import ControlPlaneConfig


class GatewayConfigError(ValueError):
    """A gateway config that cannot serve; the message names the file and field."""


@dataclass(slots=True)
class GatewayOptions:
    """Runtime knobs of the live gateway (not part of the experiment's config)."""

    max_body_bytes: int = 1 << 20  # 413 above this
    # Probe period and timeout: a refused probe or call takes a backend out at once; a
    # hung one (paused engine) after `health_failures` timed-out probes in a row, i.e.
    # within 2 * (0.2 + 0.3) = 1.0 s. Two, so one slow probe on a busy machine does not
    # fail every running stream.
    health_interval_s: float = 0.2
    health_timeout_s: float = 0.3
    health_failures: int = 2
    scrape_interval_s: float = 1.0  # /metrics scrape feeding engine_state events
    connect_timeout_s: float = 2.0
    upstream_timeout_s: float = 600.0
    retry_after_s: int = 1  # Retry-After on 429 queue_full
    default_max_tokens: int = 256  # the size the core plans with when max_tokens is absent
    api_key: str | None = None
    probe_health: bool = True
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class GatewayConfig:
    control_plane: ControlPlaneConfig
    backends: list[BackendSpec]


def _fmt(exc: ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in (prefix, *err["loc"]) if x != "")
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_gateway_config(data: dict, source: str = "<config>") -> GatewayConfig:
    """Validate a decoded TOML document; errors name `source` and the field."""
    try:
        cp = ControlPlaneConfig(**(data.get("control_plane") or {}))
    except ValidationError as exc:
        raise GatewayConfigError(f"{source}: {_fmt(exc, 'control_plane')}") from None
    except TypeError as exc:
        raise GatewayConfigError(f"{source}: control_plane: {exc}") from None
    raw = data.get("backends")
    if not isinstance(raw, list) or not raw:
        raise GatewayConfigError(f"{source}: backends: at least one [[backends]] entry with a "
                                 "url is required")
    backends: list[BackendSpec] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise GatewayConfigError(f"{source}: backends.{i}: must be a table")
        try:
            spec = BackendSpec(**entry)
        except ValidationError as exc:
            raise GatewayConfigError(f"{source}: {_fmt(exc, f'backends.{i}')}") from None
        if not spec.url.startswith(("http://", "https://")):
            raise GatewayConfigError(
                f"{source}: backends.{i}.url: the gateway needs the URL of a running engine "
                f"(http://host:port), got {spec.url!r}")
        if not spec.model:
            raise GatewayConfigError(f"{source}: backends.{i}.model: the served model name "
                                     "is required (clients ask for it by name)")
        backends.append(spec)
    names = [b.name for b in backends]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GatewayConfigError(f"{source}: backends: duplicate backend names {dupes}")
    for cap in ("chat", "completion", "embedding"):
        served = {b.model: b.name for b in backends if cap in b.capabilities}
        if len(served) > 1:
            raise GatewayConfigError(
                f"{source}: backends: {cap}-capable backends serve different models "
                f"({', '.join(f'{n}: {m!r}' for m, n in served.items())}); the control plane "
                "routes by capability, so one model per capability is served")
    return GatewayConfig(cp, backends)


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """Read and validate a gateway TOML file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GatewayConfigError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GatewayConfigError(f"{p}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GatewayConfigError(f"{p}: invalid TOML: {exc}") from None
    return parse_gateway_config(data, str(p))
