"""The live runtime of the control plane: an OpenAI-compatible gateway (asyncio,
httptools, uvloop).

docs/gateway.md explains every endpoint, header and metric.
"""

from scheduler.gateway.app import build_app, start_gateway
from scheduler.gateway.config import (
    GatewayConfig,
    GatewayConfigError,
    GatewayOptions,
    load_gateway_config,
    parse_gateway_config,
)

__all__ = ["GatewayConfig", "GatewayConfigError", "GatewayOptions", "build_app",
           "load_gateway_config", "parse_gateway_config", "start_gateway"]
