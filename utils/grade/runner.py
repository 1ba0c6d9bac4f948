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
import re
import select
import struct
import time

from . import runner_process, serialize
from .limits import kill_tree


class StudentCodeError(Exception):
    """The student's function raised an exception (re-raised here with the student's message;
    ``function`` and ``type_name`` say whose and which). Course infrastructure."""
    function: str = ""
    type_name: str = ""
    withheld: bool = False        # raised on a hidden test's input: its message is not shown

    def feedback(self) -> str:
        if self.withheld:
            return f"{explain_raised(self.function, self.type_name or type(self).__name__, '')} {WITHHELD}"
        return explain_raised(self.function, self.type_name or type(self).__name__, str(self))


#: Said instead of a learner's own text (exception message, class name) produced on a hidden input.
WITHHELD = "(its message is not shown: it was raised on an input of a hidden test)"


def _checks_hidden() -> bool:
    """Whether a check of ``utils.checks`` runs in hidden mode right now (``check_x(fn, hidden=True)``:
    its messages describe the inputs by kind only)."""
    import sys
    flag = getattr(sys.modules.get("utils.checks.engine"), "_KIND_ONLY", None)
    try:
        return bool(flag.get()) if flag is not None else False
    except (AttributeError, LookupError, TypeError):
        return False


#: The keys of ``utils.checks.models.describe_model``'s dict, which model checks accept instead of a model.
DESCRIPTION_KEYS = frozenset({"layers", "parameters", "trainable", "output_shape"})


def _looks_described(value) -> bool:
    """Whether ``value`` (a plain result from the runner) has the shape of a model description: only
    the runner's copy of the instructor's describer may produce one, never the learner's function."""
    return isinstance(value, dict) and DESCRIPTION_KEYS <= value.keys()


def _builtin_exception_name(name: str) -> str:
    """``name`` when it is a builtin exception class's name, else "Exception"."""
    value = getattr(builtins, str(name), None)
    return str(name) if isinstance(value, type) and issubclass(value, BaseException) else "Exception"


class StudentStopped(BaseException):
    """The student's code ran too long, took its process down or returned what cannot be graded.

    A BaseException, so that a check's ``except Exception`` cannot turn it into "your function
    raised ...": the test's status says what happened (timeout / error). Course infrastructure."""
    status = "error"


class StudentTimeout(StudentStopped):
    """The learner's code ran past its time limit.  Course infrastructure."""
    status = "timeout"


class StudentCrashed(StudentStopped):
    """The learner's code ended its process (``os._exit``, a fatal signal, out of memory).  Course infrastructure."""


class StudentUnsupported(StudentStopped):
    """The learner's function returned something that cannot cross to the grader as plain data.
    Course infrastructure."""


_raised_types: dict[tuple[str, str], type] = {}


def student_exception(type_name: str, message: str, base_name: str = "", function: str = "") -> StudentCodeError:
    """An exception that is the builtin ``type_name`` (or the builtin ``base_name`` it derives from,
    e.g. numpy's AxisError is a ValueError), so that checks can expect e.g. ValueError as in the
    notebook, and a StudentCodeError (so the grader knows whose it is).  Its message is the student's.
    Course infrastructure."""
    key = (type_name, base_name)
    if key not in _raised_types:
        bases = [getattr(builtins, n, None) for n in (type_name, base_name)]
        base = next((b for b in bases if isinstance(b, type) and issubclass(b, Exception)), None)
        try:
            _raised_types[key] = type(type_name, (base, StudentCodeError) if base else (StudentCodeError,), {})
        except TypeError:
            _raised_types[key] = type(type_name, (StudentCodeError,), {})
    exc = _raised_types[key](message)
    exc.function, exc.type_name = function, type_name
    return exc


def explain_raised(name: str, type_name: str, message: str) -> str:
    """The feedback line for "the student's function ``name`` raised ``type_name(message)``". Course infrastructure."""
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

TENSOR = "__convcourse_torch_tensor__"


def _map_leaves(value, convert):
    """``value`` rebuilt with ``convert`` applied to it and, where that returns None, to every item of
    its lists, tuples and dict values in turn (other leaves are kept as they are)."""
    converted = convert(value)
    if converted is not None:
        return converted
    if isinstance(value, (list, tuple)):
        items = [_map_leaves(v, convert) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _map_leaves(v, convert) for k, v in value.items()}
    return value


def _tensor_to_wire(value):
    if type(value).__module__.startswith("torch") and hasattr(value, "detach") and hasattr(value, "numpy"):
        return {TENSOR: value.detach().cpu().numpy(), "requires_grad": bool(value.requires_grad)}
    return None


def _tensor_from_wire(value):
    if isinstance(value, dict) and set(value) == {TENSOR, "requires_grad"}:
        import torch
        tensor = torch.from_numpy(value[TENSOR])
        return tensor.requires_grad_(True) if value["requires_grad"] and tensor.is_floating_point() else tensor
    return None


def to_wire(value):
    """``value`` with every torch tensor replaced by ``{TENSOR: array, "requires_grad": flag}``
    (plain data for :mod:`serialize`); :func:`from_wire` rebuilds the tensors on the other side,
    so a check sees the same kind of value in the grader as in the notebook. Course infrastructure."""
    return _map_leaves(value, _tensor_to_wire)


def from_wire(value):
    """The inverse of :func:`to_wire`: tensors sent as arrays become torch tensors again.  Course infrastructure."""
    return _map_leaves(value, _tensor_from_wire)


MAX_SKIPPED = 3       # statements skipped while loading before the grader gives up on loading


class StudentChangedInput(StudentStopped):
    """The learner's function changed an argument in a way the caller's copy cannot mirror.  Course infrastructure."""
    status = "failed"


def _mirror(original, new, name: str, where: str, hidden: bool = False):
    """Make the caller's ``original`` argument look as the student's function left its copy ``new``
    (arrays, tensors, lists and dicts are changed in place, as they would be in the notebook), so
    that a check comparing arguments before and after the call sees the same thing in both places."""
    import numpy as np
    if isinstance(original, np.ndarray) and isinstance(new, np.ndarray):
        shape = "" if hidden else f" (to shape {new.shape})"      # a made-up shape could carry a hidden input
        try:
            if original.shape != new.shape:
                original.shape = new.shape
            np.copyto(original, new, casting="unsafe")
        except ValueError as exc:
            if "read-only" in str(exc):
                raise student_exception("ValueError", "assignment destination is read-only", "ValueError", name) from None
            raise StudentChangedInput(f"{name} changed its input {where} in place{shape}: "
                                      "work on a copy, the caller still needs the original") from None
        except AttributeError:
            raise StudentChangedInput(f"{name} changed its input {where} in place{shape}: "
                                      "work on a copy, the caller still needs the original") from None
        return original
    if type(original).__module__.startswith("torch") and hasattr(original, "copy_") and hasattr(new, "shape"):
        import torch
        with torch.no_grad():
            if tuple(original.shape) == tuple(new.shape):
                original.copy_(new)
                return original
        raise StudentChangedInput(f"{name} changed its input {where} in place: work on a copy")
    if isinstance(original, list) and isinstance(new, list):
        kept = [_mirror(o, n, name, f"{where}[{i}]", hidden) for i, (o, n) in enumerate(zip(original, new))]
        original[:] = kept + new[len(kept):]
        return original
    if isinstance(original, dict) and isinstance(new, dict):
        merged = {k: (_mirror(original[k], v, name, f"{where}[{k!r}]", hidden) if k in original else v) for k, v in new.items()}
        original.clear()
        original.update(merged)
        return original
    if isinstance(original, tuple) and isinstance(new, tuple) and len(original) == len(new):
        for i, (o, n) in enumerate(zip(original, new)):
            _mirror(o, n, name, f"{where}[{i}]", hidden)
        return original
    return new


class Runner:
    """A child process holding the student's code; ``call`` runs one of its functions there.

    Args:
        units: source snippets (top-level statements, see :mod:`.student_code`) executed in order at start.
        workdir: the child's working directory.
        memory_bytes: its address-space cap.
        start_seconds: time for loading all units.
        labels: how to name each unit in feedback ("cell 3, line 2").
    A unit that runs longer than ``start_seconds`` or ends the process while loading is skipped and
    the runner restarted without it (at most MAX_SKIPPED times).  The child is started lazily and
    restarted after a timeout or crash.
    Course infrastructure.
    """

    def __init__(self, units: list[str], workdir: str, memory_bytes: int, start_seconds: float = 60.0,
                 labels: list[str] | None = None):
        self.units, self.workdir, self.memory_bytes = units, workdir, memory_bytes
        self.start_seconds = start_seconds
        self.labels = labels or [f"statement {i + 1}" for i in range(len(units))]
        self.pid: int | None = None
        self.deadline: float | None = None     # set by the grader for each test cell
        self.load_problems: list[str] = []
        self.skipped: dict[int, str] = {}      # unit index -> why it was skipped
        self.start_failure: StudentStopped | None = None   # loading is deterministic: fail once
        self.stopped_events: list[StudentStopped] = []     # timeouts/crashes seen (the grader reads them)
        self.hidden = False                    # set by the grader while a hidden-test region runs
        self.withheld: list[str] = []          # learner messages raised on hidden inputs (see redact)

    def units_to_load(self) -> list[str]:
        """The units the runner executes at start: skipped ones replaced by ``pass``."""
        return ["pass" if i in self.skipped else unit for i, unit in enumerate(self.units)]

    def start(self) -> None:
        # A fresh process (exec, in the submission's sandbox when there is one): see runner_process.
        self.pid, self.requests, self.replies = runner_process.spawn(self.workdir, self.memory_bytes)
        try:
            _write(self.requests, serialize.dumps(list(self.units_to_load())))
        except OSError:
            pass                    # it died at once: _load reports it
        runner_process.wait_warm(self.replies)
        self._load()

    def _load(self) -> None:
        """Receive the loading progress; skip (and restart without) a unit that hangs or kills the process."""
        deadline, current = time.monotonic() + self.start_seconds, None
        while True:
            try:
                message = self._receive(deadline, "loading your code")
            except StudentStopped as exc:
                if current is None or len(self.skipped) >= MAX_SKIPPED:
                    self.start_failure = exc
                    raise
                why = (f"took longer than {self.start_seconds:g} s" if isinstance(exc, StudentTimeout) else
                       "ended the process (os._exit, a crash, or out of memory)")
                self.skipped[current] = f"{self.labels[current]} {why} while the grader loaded your code: skipped"
                self.start()
                return
            if isinstance(message, dict) and "loading" in message:
                current = message["loading"]
                continue
            problems = message.get("ready", []) if isinstance(message, dict) else []
            self.load_problems = [p for _, p in sorted(self.skipped.items())] + [
                f"{self.labels[i] if isinstance(i, int) and 0 <= i < len(self.labels) else 'your code'}: {text}"
                for i, text in problems]
            return

    def stop(self) -> None:
        if self.pid is not None:
            kill_tree(self.pid)
            os.close(self.requests); os.close(self.replies)
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            runner_process.forget(self.pid)
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

    def _request(self, request: dict, doing: str):
        if self.start_failure is not None:
            raise self.start_failure
        if self.pid is None:
            self.start()
        try:
            try:
                _write(self.requests, serialize.dumps(request))
            except OSError:                 # EPIPE: it ended since its last reply (a thread of its own?)
                self.stop()
                raise StudentCrashed(f"{doing}: your code's process had ended (os._exit, a crash, "
                                     "or out of memory)") from None
            return self._receive(self.deadline, doing)
        except StudentStopped as exc:
            self.stopped_events.append(exc)
            raise

    def callables(self, names: list[str]) -> set[str]:
        """Which of ``names`` are callable in the student's loaded code (empty when loading failed)."""
        try:
            reply = self._request({"callables": list(names)}, "loading your code")
        except StudentStopped:
            return set()
        return set(reply.get("callables", [])) & set(names) if isinstance(reply, dict) else set()

    def origins(self, names: list[str]) -> dict[str, dict[str, str]]:
        """``{name: {global name: origin}}`` for the from-scratch rule (see :func:`_origins`)."""
        try:
            reply = self._request({"origins": list(names)}, "loading your code")
        except StudentStopped:
            return {}
        found = reply.get("origins", {}) if isinstance(reply, dict) else {}
        return {str(n): {str(k): str(v) for k, v in o.items()} for n, o in found.items()
                if isinstance(o, dict) and n in names}

    def call(self, name: str, args: tuple, kwargs: dict, describe: str | None = None):
        """``name(*args, **kwargs)`` run in the runner (then ``describe`` of its result, a trusted
        ``"utils.checks.module:function"``); its result, or the student's exception re-raised.
        Arguments the function changed in place are changed the same way here."""
        reply = self._request({"call": name, "args": to_wire(list(args)), "kwargs": to_wire(kwargs),
                               "describe": describe}, f"calling {name}")
        if not isinstance(reply, dict) or not ({"ok", "raised", "unsupported"} & reply.keys()):
            self.stop()
            raise StudentCrashed(f"calling {name} sent back something unreadable")
        # On a hidden test's input every text the learner's code chose (a message, a class name, a
        # shape it made up) could carry that input out to the feedback: only builtin names are shown.
        hidden = self.hidden or _checks_hidden()
        if "raised" in reply:
            raised = reply["raised"] if isinstance(reply["raised"], (list, tuple)) else []
            type_name, message, base = (str(part) for part in (list(raised) + ["", "", ""])[:3])
            message = message[:1000]                 # as the runner cuts it (a runner may not)
            if not (type_name.isidentifier() and len(type_name) <= 100):
                type_name = _builtin_exception_name(base)
            if not hidden:
                raise student_exception(type_name, message, base, name)
            shown = _builtin_exception_name(base)
            if message:
                self.withheld.append(message)
            exc = student_exception(shown, message, shown, name)
            exc.withheld = True
            raise exc
        if "unsupported" in reply:
            raise StudentUnsupported(f"{name} returned a value that cannot be graded on an input of a hidden test "
                                     "(use NumPy arrays, numbers, strings, tuples, lists or dicts)" if hidden
                                     else str(reply["unsupported"]))
        if not reply.get("described") and _looks_described(reply.get("ok")):
            raise StudentUnsupported(f"{name} returned a dict shaped like the grader's description of a model, "
                                     "not a torch.nn.Module: return the model you built")
        if reply.get("changed_unsendable"):
            raise StudentChangedInput(f"{name} changed its input in place (into something that is not data): "
                                      "work on a copy, the caller still needs the original")
        if "changed" in reply:
            new_args, new_kwargs = from_wire(reply["changed"][0]), from_wire(reply["changed"][1])
            for i, (old, new) in enumerate(zip(args, new_args)):
                _mirror(old, new, name, f"(argument {i + 1})", hidden)
            for key, old in kwargs.items():
                if key in new_kwargs:
                    _mirror(old, new_kwargs[key], name, f"`{key}`", hidden)
        return from_wire(reply["ok"])

    def redact(self, text: str) -> str:
        """``text`` (a test's feedback) without the messages the learner's code raised on hidden inputs
        (a check quotes them as ``raised ValueError: <message>``; they stay in the exception for the
        check's hints, which read them, but not in what the learner reads)."""
        for message in sorted(set(self.withheld), key=len, reverse=True):
            for shown in (message, message[:40] if len(message) > 40 else None):
                if shown is None:
                    continue
                text = re.sub(r"(raised \w+): " + re.escape(shown), lambda m: f"{m.group(1)} {WITHHELD}", text)
                if len(shown) >= 6:
                    text = text.replace(shown, "(not shown)")
        return text


class StudentFunction:
    """Stands for the student's function ``name``: calling it calls the real one in the runner.

    Attributes:
        __name__: the name the task gives the function.
        __source__: the student's source of it, read by the grader from the notebook (the ``def``
            block, or the assignment of a lambda): checks inspect it with
            ``getattr(fn, "__source__", None) or inspect.getsource(fn)`` in the notebook and here alike.
        __globals_origin__: ``{global name: origin}`` computed in the runner by the trusted copy of
            ``utils.checks.rules.global_origins`` (the notebook's check reads ``fn.__globals__``).
    Course infrastructure.
    """

    def __init__(self, runner: Runner, name: str, source: str = "", origins: dict | None = None):
        self._runner, self.__name__, self.__qualname__ = runner, name, name
        self.__source__ = source or f"{name} = ...  # (source not found in the notebook)"
        if origins is not None:
            self.__globals_origin__ = dict(origins)   # what its global names are (utils.checks.rules)

    def __call__(self, *args, **kwargs):
        return self._runner.call(self.__name__, args, kwargs)

    def __call_described__(self, describe, *args, **kwargs):
        """``describe(fn(*args, **kwargs))`` with both run in the runner, where the result lives
        (e.g. a torch model that cannot cross processes); ``describe`` must be a function of
        ``utils.checks`` (its trusted copy, taken before the student's code ran, is used)."""
        key = f"{describe.__module__}:{describe.__name__}"
        if not key.startswith("utils.checks"):
            raise ValueError(f"{key} is not a function of utils.checks")
        return self._runner.call(self.__name__, args, kwargs, describe=key)

    def __repr__(self) -> str:
        return f"<student function {self.__name__}>"
