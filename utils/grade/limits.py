"""Resource limits for processes that run a student's code, killing them with their children,
and removing scratch folders without ever crossing into another file system."""
from __future__ import annotations

import contextlib
import os
import re
import resource
import stat
import signal
import sys

import psutil


def apply_limits(memory_bytes: int, file_bytes: int) -> None:
    """Cap this process (and what it starts): address space, size of written files, no core dumps.
    Course infrastructure."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# Runs before the kernel's own command (then exec's it): the limits are inherited by the kernel.
_WRAPPER = ("import os, resource, sys; m, f = int(sys.argv[1]), int(sys.argv[2]); "
            "resource.setrlimit(resource.RLIMIT_AS, (m, m)); resource.setrlimit(resource.RLIMIT_FSIZE, (f, f)); "
            "resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); os.execv(sys.argv[3], sys.argv[3:])")


def limited_command(command: list[str], memory_bytes: int, file_bytes: int) -> list[str]:
    """``command`` prefixed so that it starts under ``apply_limits(memory_bytes, file_bytes)``.
    Course infrastructure."""
    return [sys.executable, "-c", _WRAPPER, str(memory_bytes), str(file_bytes), *command]


def kill_tree(pid: int) -> None:
    """SIGKILL process ``pid`` and all its descendants (those already gone are ignored). Course infrastructure."""
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



def mount_points() -> set[str]:
    """Every mount point this process sees (bind mounts of the same file system included). Course infrastructure."""
    points = set()
    with contextlib.suppress(OSError):
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                fields = line.split()
                if len(fields) > 4:
                    points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def remove_tree(path: str) -> list[str]:
    """Delete the folder ``path`` and what it holds, never following a symlink and never entering
    another file system (a mount point inside is left alone and reported, so that a bind mount
    cannot make the cleanup delete what it points to).  Returns the paths left behind. Course infrastructure."""
    left: list[str] = []
    mounts = mount_points()
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return left
    if not stat.S_ISDIR(top.st_mode):
        os.unlink(path)
        return left

    def remove(folder_fd: int, name: str, shown: str) -> bool:
        info = os.lstat(name, dir_fd=folder_fd)
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(name, dir_fd=folder_fd)
            return True
        if info.st_dev != top.st_dev or os.path.abspath(shown) in mounts:
            left.append(shown)
            return False
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
        try:
            if os.fstat(fd).st_dev != top.st_dev:     # mounted between lstat and open
                left.append(shown)
                return False
            empty = all([remove(fd, entry, f"{shown}/{entry}") for entry in os.listdir(fd)])
        finally:
            os.close(fd)
        if empty:
            try:
                os.rmdir(name, dir_fd=folder_fd)
            except OSError:             # e.g. mounted meanwhile (EBUSY)
                left.append(shown)
                return False
        return empty

    parent = os.open(os.path.dirname(os.path.abspath(path)) or "/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(FileNotFoundError):
            remove(parent, os.path.basename(os.path.abspath(path)), path)
    finally:
        os.close(parent)
    return left
