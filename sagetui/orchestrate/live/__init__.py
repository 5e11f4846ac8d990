"""One run on real engines: launch (or reach) them, serve, load, store, tear down.

- `sage`: the control-plane gateway (scheduler.gateway) runs in this process
  on its own event-loop thread in front of the engines; the load generator
  talks to the gateway.
- the baselines without a control plane: no gateway; the load generator
  balances over the engines itself (client-side), with the pools the baseline
  defines — round-robin for `vllm-only`, `separate` and `vllm-priority` (which
  also sends vLLM's `priority` field), least-request for `colocated` and `split`.

Engines are kept up across the runs of one experiment when the next run uses
the same backends (vLLM on CPU takes ~50 s to start), and are always torn
down at the end — normal exit, error or Ctrl-C (the launcher's job).

One module per job: `engines` (launch, reuse, preflight), `gateway` (the
control plane on its thread, or the client-side pools of a baseline),
`sampler` (the per-second engine state), `faults` (the config's faults at
their times), `pinning` (the run's CPUs) and `run` (one run, start to store).
"""

from .engines import engine_session, preflight, served_model
from .gateway import GatewayThread, client_side_pools
from .run import RUNS_DIR_ENV, run_live, runs_dir

__all__ = ["RUNS_DIR_ENV", "GatewayThread", "client_side_pools", "engine_session", "preflight",
           "run_live", "runs_dir", "served_model"]
