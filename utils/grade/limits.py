"""Resource limits for processes that run a student's code, and killing them with their children."""
from __future__ import annotations

import resource
import signal
import sys

import psutil


def apply_limits(memory_bytes: int, file_bytes: int) -> None:
    """Cap this process (and what it starts): address space, size of written files, no core dumps."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# Runs before the kernel's own command (then exec's it): the limits are inherited by the kernel.
_WRAPPER = ("import os, resource, sys; m, f = int(sys.argv[1]), int(sys.argv[2]); "
            "resource.setrlimit(resource.RLIMIT_AS, (m, m)); resource.setrlimit(resource.RLIMIT_FSIZE, (f, f)); "
            "resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); os.execv(sys.argv[3], sys.argv[3:])")


def limited_command(command: list[str], memory_bytes: int, file_bytes: int) -> list[str]:
    """``command`` prefixed so that it starts under ``apply_limits(memory_bytes, file_bytes)``."""
    return [sys.executable, "-c", _WRAPPER, str(memory_bytes), str(file_bytes), *command]


def kill_tree(pid: int) -> None:
    """SIGKILL process ``pid`` and all its descendants (those already gone are ignored)."""
    try:
        root = psutil.Process(pid)
        family = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for process in family:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    # No waiting: killed children are reaped by their parents (or by init once those exit).

