"""`sagetui gateway`: serve the control plane as an OpenAI-compatible endpoint.

Why a command: researchers point any OpenAI client (or a cluster's clients) at
one URL and the control plane schedules across the engines named in the
config (`[control_plane]`, `[[backends]]` with `url`). docs/gateway.md.
"""

from __future__ import annotations

import os

import click

from sagetui.commands.common import fail


@click.command("gateway")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False), help="TOML with [control_plane] and [[backends]]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind (loopback by default; 0.0.0.0 exposes it)")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--api-key", default=None,
              help="require 'Authorization: Bearer KEY'  [env: SAGETUI_API_KEY]")
@click.option("--max-body-bytes", type=click.IntRange(min=1024), default=1 << 20,
              show_default=True, help="larger request bodies get 413")
@click.option("--health-interval", type=click.FloatRange(min=0.05, max=0.5), default=0.2,
              show_default=True, help="seconds between health probes of each backend")
def command(config_path: str, host: str, port: int, api_key: str | None,
            max_body_bytes: int, health_interval: float) -> None:
    """Serve the control plane in front of running engines until Ctrl-C."""
    from scheduler.gateway import GatewayConfigError, GatewayOptions, load_gateway_config
    from scheduler.gateway.serve import run_gateway

    try:
        cfg = load_gateway_config(config_path)
    except GatewayConfigError as exc:
        fail(str(exc))
    key = api_key or os.environ.get("SAGETUI_API_KEY") or None
    opts = GatewayOptions(max_body_bytes=max_body_bytes, api_key=key,
                          health_interval_s=health_interval)

    def ready(url: str) -> None:
        names = ", ".join(f"{b.name} ({b.url})" for b in cfg.backends)
        click.echo(f"gateway on {url}  policy={cfg.control_plane.policy}  "
                   f"auth={'bearer' if key else 'none'}  backends: {names}", err=True)

    try:
        run_gateway(cfg, opts, host, port, on_ready=ready)
    except OSError as exc:
        fail(f"cannot serve on {host}:{port}: {exc}")
