"""Reach the Ray cluster a run names, or say plainly why not.

Why a probe before `ray.init`: `ray.init(address=HOST:PORT)` on an address
where nothing listens retries for minutes before it gives up; a TCP connect
answers in a moment, so an unreachable cluster is refused before anything
starts. Ray itself is imported here, on first use, so only runs that name
`launcher = "ray"` need it installed or pay for importing it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from engine.cluster.spec import HOST_PORT
from engine.launcher import LaunchError

EXTRA = "sagetui[cluster]"


class ClusterError(LaunchError):
    """The cluster cannot be reached or cannot hold the engines; raised before any start."""


def import_ray():
    """The `ray` module, or a ClusterError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(f"cluster.launcher = 'ray' needs Ray, which is not installed here: "
                           f"pip install '{EXTRA}' (on this machine and on every node)") from None
    return ray


def split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of HOST:PORT or ray://HOST:PORT; None for 'auto'."""
    if address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return host.strip("[]"), int(port)


def probe(address: str, timeout_s: float = 3.0) -> None:
    """Raise ClusterError unless something accepts TCP connections at `address`
    ('auto' means $RAY_ADDRESS when set, as for `ray.init`; else Ray's own lookup of
    a cluster started on this machine, which fails at once when there is none)."""
    if address == "auto" and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    hp = split_address(address) if HOST_PORT.match(address) else None
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(f"cluster.address: cannot reach the Ray cluster at {address} "
                           f"({reason}); start it with `ray start --head` there, or fix "
                           "the address") from None


def connect(address: str, namespace: str):
    """The `ray` module, connected to the cluster (an existing connection is reused)."""
    ray = import_ray()
    probe(address)
    if ray.is_initialized():
        _check_same(ray, address)
        return ray
    handler = _sigterm_handler()
    try:
        ray.init(address=address, namespace=namespace, log_to_driver=False,
                 logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ClusterError(f"cluster.address: no Ray cluster at {address!r}: {exc}") from None
    finally:
        _restore_sigterm(handler)
    return ray


def _check_same(ray, address: str) -> None:
    """One process holds one Ray connection: a second cluster cannot be used beside it."""
    hp = split_address(address)
    if hp is None or address.startswith("ray://"):
        return
    current = ray.get_runtime_context().gcs_address
    if split_address(current) != hp:
        raise ClusterError(f"cluster.address: this process is already connected to the Ray "
                           f"cluster at {current}; it cannot use {address} beside it")


def _sigterm_handler():
    """`ray.init` replaces SIGTERM's handler with sys.exit; ours tears engines down
    first and then dies of the signal, so the one in place before it is kept."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGTERM)


def _restore_sigterm(handler) -> None:
    if handler is not None:
        signal.signal(signal.SIGTERM, handler)
