"""`python -m engine.cluster.guard --parent PID --log PATH [--cpus 0,1] -- ARGV...`: run one
engine on a Ray node and take its whole process group down once PID (its actor) is gone.

Why: when the driver that owns an actor dies (even by SIGKILL), Ray ends the
actor, and an exiting Ray worker SIGKILLs its own child processes; whatever
those started lives on, and vLLM's engine-core processes would keep holding
the node's cores and GPUs. So the guard detaches itself: the process the actor
starts forks it and exits at once, and the guard, a new session's leader that
is no child of the actor, starts the engine in its group, watches the actor
and the engine, and when the actor is gone sends the group SIGTERM, then
SIGKILL. When the engine exits by itself, the guard writes its exit code to
`PATH.exit`, kills what the engine left in the group and exits. The engine
also gets SIGTERM from the kernel if the guard itself is killed
(PR_SET_PDEATHSIG, reliable here: the guard has one thread).

The first line on the standard output of the started process is the guard's
pid, which is also the process group id of the engine.
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
    p.add_argument("--parent", type=int, required=True, help="pid whose end ends the group")
    p.add_argument("--log", required=True, help="the engine's log (stdout and stderr)")
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
    parent = _process(args.parent)
    if parent is None:  # the actor ended before we got here
        return 1
    if os.fork():
        os._exit(0)  # the actor reaps this one; the guard below is no child of it
    os.setsid()
    print(os.getpid(), flush=True)  # to the actor: the guard's pid, the group's id
    _to_log(args.log)
    if args.cpus:
        os.sched_setaffinity(0, [int(c) for c in args.cpus.split(",")])
    engine = subprocess.Popen(args.argv, stdin=subprocess.DEVNULL, preexec_fn=_die_with_guard)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _outlive)
    while engine.poll() is None:
        if not _running(parent):
            _end_group(engine)
        time.sleep(POLL_S)
    return _after(engine.returncode, args.log)


def _process(pid: int):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _running(proc) -> bool:
    """Alive and the same process (psutil compares start times: pids get reused)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _to_log(path: str) -> None:
    """Our stdout and stderr (and so the engine's) become the log; stdin is empty."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)


def _die_with_guard() -> None:
    """In the engine, before exec: SIGTERM from the kernel when the guard dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _outlive(_sig: int, _frame: object) -> None:
    """Stay up while the engine shuts down, to record its exit code and clean after it.
    (Not SIG_IGN: an ignored signal would stay ignored in a process started later.)"""


def _end_group(engine: subprocess.Popen) -> None:
    """The actor is gone: SIGTERM the group, then SIGKILL it (this process included)."""
    print("[guard] the engine's actor is gone; stopping the engine", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    os.killpg(0, signal.SIGCONT)  # a paused engine must run to handle SIGTERM
    deadline = time.monotonic() + GRACE_S
    while engine.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(0, signal.SIGKILL)


def _after(code: int, log: str) -> int:
    """The engine exited: record how, kill what it left behind, exit with its code."""
    print(f"[guard] engine exited with code {code}", file=sys.stderr, flush=True)
    with open(f"{log}.exit", "w") as f:
        f.write(str(code))
    _kill_others()
    return code if code >= 0 else 128 - code


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
