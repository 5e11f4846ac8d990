"""`python -m engine.cluster.guard --parent PID [--cpus 0,1] -- ARGV...`: run one engine
and take its whole process group down when the process that started it dies.

Why: on a Ray node the engine's parent is the engine's actor. When the driver
that owns the actor dies (even by SIGKILL), Ray kills the actor, but nothing
kills what the actor started, and vLLM's engine-core processes would live on
holding the node's cores and GPUs. The guard is the group's leader (the actor
starts it with a new session) and starts the engine in the same group; it
watches its parent and, once reparented, sends the group SIGTERM and then
SIGKILL. It polls `getppid()` rather than use PR_SET_PDEATHSIG, which fires
when the forking *thread* ends, not the process. When the engine exits by
itself, the guard kills what it left in the group and exits with its code.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

POLL_S = 0.25
GRACE_S = 5.0


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engine.cluster.guard")
    p.add_argument("--parent", type=int, required=True, help="pid whose death ends the group")
    p.add_argument("--cpus", default="", help="cores to pin the engine's tree to, e.g. 0,1")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the engine's argv")
    args = p.parse_args(argv)
    if args.argv[:1] == ["--"]:
        args.argv = args.argv[1:]
    if not args.argv:
        p.error("the engine's argv is missing (after --)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if os.getppid() != args.parent:  # the actor died before we got here
        return 1
    if args.cpus:
        os.sched_setaffinity(0, [int(c) for c in args.cpus.split(",")])
    engine = subprocess.Popen(args.argv, stdin=subprocess.DEVNULL)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _outlive)  # the group's signal reaches the engine itself
    while engine.poll() is None:
        if os.getppid() != args.parent:
            _end_group(engine)
        time.sleep(POLL_S)
    code = engine.returncode
    print(f"[guard] engine exited with code {code}", file=sys.stderr, flush=True)
    _kill_others()
    return code if code >= 0 else 128 - code


def _outlive(_sig: int, _frame: object) -> None:
    """Stay up while the engine shuts down, to report its exit code and clean after it.
    (Not SIG_IGN: an ignored signal would stay ignored in a process started later.)"""


def _end_group(engine: subprocess.Popen) -> None:
    """The parent is gone: SIGTERM the group, then SIGKILL it (this process included)."""
    print("[guard] launching process gone; stopping the engine", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    os.killpg(0, signal.SIGCONT)  # a paused engine must run to handle SIGTERM
    deadline = time.monotonic() + GRACE_S
    while engine.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(0, signal.SIGKILL)


def _kill_others() -> None:
    """SIGKILL every other live member of this group (the engine's own children)."""
    import psutil

    me, pgid = os.getpid(), os.getpgid(0)
    for p in psutil.process_iter(["pid"]):
        try:
            if p.pid != me and os.getpgid(p.pid) == pgid:
                p.kill()
        except (ProcessLookupError, psutil.Error, OSError):
            continue


if __name__ == "__main__":
    sys.exit(main())
