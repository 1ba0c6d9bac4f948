"""How the runner of a learner's functions is started and talks (see :mod:`.runner`).

The runner is a fresh process (``exec``, never a fork of the grader: it holds no other learner's
notebook in memory), started in the submission's sandbox (:mod:`.sandbox`) when there is one, or
under rlimits only with ``--unsafe-no-sandbox``.  It talks over two pipes, its standard input
(requests) and standard output (replies); once started it moves them to other descriptors and
points 0, 1 and 2 at ``/dev/null``, so that nothing the learner's code prints reaches the grader.
The first request is the list of source snippets to load.  Before running any of them the runner
imports the heavy modules they name (numpy, torch, the course's ``utils``) and says so, so that
this start-up cost (which a fork of a warm process used to hide) is not counted against the
learner's time limits.

In a sandbox this file is bound over ``ipykernel_launcher.py`` and started exactly as a kernel is
(``python -m ipykernel_launcher -f <connection file>``), and the grader's modules are taken out of
``sys.modules`` before learner code runs, so that arguments, ``/proc/self/cmdline`` and loaded
module names do not tell the runner from the learner's own kernel.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import time

from utils.grade import sandbox          # absolute: in a sandbox this file runs as ipykernel_launcher
from utils.grade.limits import limited_command

_children: dict[int, subprocess.Popen] = {}     # kept so that Popen objects are not collected early


def spawn(workdir: str, memory_bytes: int, file_bytes: int = 2**30) -> tuple[int, int, int]:
    """Start a runner; returns (pid, fd to write requests to, fd to read replies from). Course infrastructure."""
    command = [sys.executable, "-m", "utils.grade.runner_process"]
    group = sandbox.current()
    if group is not None:
        launcher = importlib.util.find_spec("ipykernel_launcher")
        binds = [(__file__, launcher.origin)] if launcher and launcher.origin else []
        if binds:
            command = [sys.executable, *sandbox.KERNEL_ARGV]
        command = group.launcher(sandbox.bwrap_command(command, binds=binds))
        env = None
    else:
        command = limited_command(command, memory_bytes, file_bytes)
        env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               cwd=workdir, env=env, close_fds=True, start_new_session=group is None)
    _children[process.pid] = process
    if group is not None:
        try:
            group.attach(process.pid)
        except sandbox.SandboxUnavailable:
            pass            # it died at once: the runner's first reply (EOF) says so
    requests, replies = os.dup(process.stdin.fileno()), os.dup(process.stdout.fileno())
    process.stdin.close()
    process.stdout.close()
    return process.pid, requests, replies


WARM_SECONDS = 120.0


def wait_warm(replies: int) -> None:
    """Wait (not on the learner's clock) until the runner has imported what its code needs. Course infrastructure."""
    from utils.grade import runner, serialize
    try:
        serialize.loads(runner._read(replies, time.monotonic() + WARM_SECONDS))
    except (TimeoutError, EOFError, OSError, ValueError):
        pass              # the loading step that follows reports a dead or stuck runner


def _warm_up(units: list[str]) -> None:
    text = "\n".join(units)
    for module, word in (("numpy", ""), ("utils.checks", ""), ("utils.functional", "utils"), ("torch", "torch")):
        if word in text:
            with contextlib.suppress(Exception):
                importlib.import_module(module)
    if "torch" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["torch"].set_num_threads(1)


def forget(pid: int) -> None:
    """Called once ``pid`` has been reaped. Course infrastructure."""
    process = _children.pop(pid, None)
    if process is not None:
        process.returncode = -9


def main() -> None:
    """The runner's side: take the pipes off 0/1, silence 0/1/2, read the snippets, serve. Course infrastructure."""
    from utils.grade import runner, serialize
    sandboxed = sys.argv[1:] == sandbox.KERNEL_ARGV[2:]      # started as a kernel is, in a sandbox
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    spec = importlib.util.find_spec("ipykernel_launcher")
    sys.argv = [spec.origin if spec else "ipykernel_launcher.py", *sandbox.KERNEL_ARGV[2:]]
    units = serialize.loads(runner._read(requests))
    if not (isinstance(units, list) and all(isinstance(u, str) for u in units)):
        os._exit(2)
    _warm_up(units)
    runner._write(replies, serialize.dumps({"warm": True}))
    from utils.grade import runner_serve
    serve = runner_serve._serve
    if sandboxed:
        import utils
        for name in [n for n in sys.modules if n == "utils.grade" or n.startswith("utils.grade.")]:
            del sys.modules[name]
        with contextlib.suppress(AttributeError):
            del utils.grade
    serve(requests, replies, units)


if __name__ == "__main__":
    try:
        main()
    finally:
        os._exit(0)
