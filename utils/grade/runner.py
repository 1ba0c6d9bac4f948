"""Run a student's functions in a separate, limited process and call them through proxies.

The grader never executes a student's code in its own process: the student's top-level
imports and definitions are executed in a *runner* (a child process with a memory cap, its
output sent to /dev/null, every inherited file descriptor closed but its two pipes), and the
checks call a :class:`StudentFunction` proxy whose arguments and result cross the pipes as
plain data (:mod:`utils.grade.serialize`).  Whatever the student's code patches (numpy, torch,
utils.checks, ...) is patched in the runner only.
"""
from __future__ import annotations

import builtins
import os
import select
import struct
import time

from . import serialize
from .limits import apply_limits, kill_tree


class StudentCodeError(Exception):
    """The student's code raised, ran too long or took its process down."""


class StudentTimeout(StudentCodeError):
    pass


class StudentCrashed(StudentCodeError):
    pass


_raised_types: dict[str, type] = {}


def student_exception(type_name: str, message: str) -> StudentCodeError:
    """An exception that is both the builtin ``type_name`` (so checks can expect e.g. ValueError)
    and a StudentCodeError (so the grader knows whose it is)."""
    base = getattr(builtins, type_name, None)
    if type_name not in _raised_types:
        try:
            if not (isinstance(base, type) and issubclass(base, Exception)):
                raise TypeError
            _raised_types[type_name] = type(type_name, (base, StudentCodeError), {})
        except TypeError:
            _raised_types[type_name] = type(type_name, (StudentCodeError,), {})
    return _raised_types[type_name](message)


def explain_raised(name: str, type_name: str, message: str) -> str:
    """The feedback line for "the student's function ``name`` raised ``type_name(message)``"."""
    if type_name == "NotImplementedError":
        return f"{name} raised NotImplementedError: it still holds the exercise's stub (# YOUR CODE HERE)"
    return f"{name} raised {type_name}" + (f": {message}" if message else "")


# ---------------------------------------------------------------- framing on a pipe

def _write(fd: int, payload: bytes) -> None:
    data = struct.pack("<Q", len(payload)) + payload
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, missing = [], size
    while missing:
        if deadline is not None:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, min(missing, 2**20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _read(fd: int, deadline: float | None = None) -> bytes:
    (size,) = struct.unpack("<Q", _read_exactly(fd, 8, deadline))
    if size > serialize.MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {size} bytes is over the limit")
    return _read_exactly(fd, size, deadline)


# ---------------------------------------------------------------- the runner process

def _isolate(keep: tuple[int, int], workdir: str, memory_bytes: int) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    low, high = sorted(keep)
    os.closerange(3, low)
    os.closerange(low + 1, high)
    os.closerange(high + 1, 65536)
    apply_limits(memory_bytes, 2**30)
    os.chdir(workdir)


def _serve(requests: int, replies: int, units: list[str]) -> None:
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    problems = []
    for unit in units:
        try:
            exec(compile(unit, "<student code>", "exec"), namespace)
        except BaseException as exc:                       # noqa: BLE001 - report, keep going
            problems.append(f"{type(exc).__name__}: {str(exc)[:300]}")
    _write(replies, serialize.dumps({"ready": problems}))
    while True:
        name, args, kwargs = serialize.loads(_read(requests))
        try:
            result = namespace[name](*args, **kwargs)
            reply = serialize.dumps({"ok": result})
        except BaseException as exc:                       # noqa: BLE001 - sent to the grader
            reply = serialize.dumps({"raised": [type(exc).__name__, str(exc)[:1000]]})
        _write(replies, reply)


class Runner:
    """A child process holding the student's definitions; ``call`` runs one of them there.

    Args:
        units: source snippets (imports and definitions) executed in order at start.
        workdir: the child's working directory.
        memory_bytes: its address-space cap.
    The child is started lazily and restarted after a timeout or crash.
    """

    def __init__(self, units: list[str], workdir: str, memory_bytes: int, start_seconds: float = 60.0):
        self.units, self.workdir, self.memory_bytes = units, workdir, memory_bytes
        self.start_seconds = start_seconds
        self.pid: int | None = None
        self.deadline: float | None = None     # set by the grader for each test cell
        self.load_problems: list[str] = []
        self.start_failure: StudentCodeError | None = None   # loading is deterministic: fail once

    def start(self) -> None:
        to_child, from_parent = os.pipe()
        from_child, to_parent = os.pipe()
        pid = os.fork()
        if pid == 0:                                   # the runner
            try:
                os.close(from_parent); os.close(from_child)
                _isolate((to_child, to_parent), self.workdir, self.memory_bytes)
                _serve(to_child, to_parent, self.units)
            finally:
                os._exit(0)
        os.close(to_child); os.close(to_parent)
        self.pid, self.requests, self.replies = pid, from_parent, from_child
        try:
            ready = self._receive(time.monotonic() + self.start_seconds, "loading your imports and definitions")
        except StudentCodeError as exc:
            self.start_failure = exc
            raise
        self.load_problems = list(ready.get("ready", [])) if isinstance(ready, dict) else []

    def stop(self) -> None:
        if self.pid is not None:
            kill_tree(self.pid)
            os.close(self.requests); os.close(self.replies)
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = None

    def _receive(self, deadline: float | None, doing: str):
        try:
            return serialize.loads(_read(self.replies, deadline))
        except TimeoutError:
            self.stop()
            raise StudentTimeout(f"{doing} did not finish within the time limit") from None
        except (EOFError, OSError):
            self.stop()
            raise StudentCrashed(f"{doing} ended the process (os._exit, a crash, or out of memory)") from None
        except (ValueError, TypeError, KeyError) as exc:
            self.stop()
            raise StudentCrashed(f"{doing} sent back something unreadable ({exc})") from None

    def call(self, name: str, args: tuple, kwargs: dict):
        """``name(*args, **kwargs)`` run in the runner; its result, or the student's exception re-raised."""
        if self.start_failure is not None:
            raise self.start_failure
        if self.pid is None:
            self.start()
        _write(self.requests, serialize.dumps([name, list(args), kwargs]))
        reply = self._receive(self.deadline, f"calling {name}")
        if not isinstance(reply, dict) or not ({"ok", "raised"} & reply.keys()):
            self.stop()
            raise StudentCrashed(f"calling {name} sent back something unreadable")
        if "raised" in reply:
            type_name, message = (list(reply["raised"]) + ["", ""])[:2]
            raise student_exception(str(type_name), explain_raised(name, str(type_name), str(message)))
        return reply["ok"]


class StudentFunction:
    """Stands for the student's function ``name``: calling it calls the real one in the runner."""

    def __init__(self, runner: Runner, name: str):
        self._runner, self.__name__ = runner, name

    def __call__(self, *args, **kwargs):
        return self._runner.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<student function {self.__name__}>"
