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

from . import runner_process, serialize
from .limits import apply_limits, kill_tree


class StudentCodeError(Exception):
    """The student's function raised an exception (re-raised here with the student's message;
    ``function`` and ``type_name`` say whose and which). Course infrastructure."""
    function: str = ""
    type_name: str = ""

    def feedback(self) -> str:
        return explain_raised(self.function, self.type_name or type(self).__name__, str(self))


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


def _builtin_base(exc: BaseException) -> str:
    """The first builtin exception class among ``exc``'s classes (e.g. ValueError for numpy's AxisError)."""
    for cls in type(exc).__mro__:
        if getattr(builtins, cls.__name__, None) is cls:
            return cls.__name__
    return "Exception"


def _trusted_describers() -> dict[str, object]:
    """The functions of ``utils.checks`` (and its submodules), copied before any student code runs.

    Each copy has its own snapshot of its module's globals, so a student's
    ``utils.checks.ex08.describe = ...`` (or ``__code__`` swap) does not change what describes the
    student's objects.  (Patching torch itself from the student's function is not prevented by
    this: see the README of the grader.)"""
    import importlib
    import pkgutil
    import types
    found: dict[str, object] = {}
    try:
        package = importlib.import_module("utils.checks")
    except ImportError:
        return found
    modules = [package] + [importlib.import_module(f"utils.checks.{m.name}")
                           for m in pkgutil.iter_modules(getattr(package, "__path__", []))]
    for module in modules:
        snapshot = dict(vars(module))
        for name, value in list(snapshot.items()):
            if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
                copy = types.FunctionType(value.__code__, snapshot, value.__name__, value.__defaults__, value.__closure__)
                copy.__kwdefaults__ = dict(value.__kwdefaults__ or {}) or None
                snapshot[name] = copy
                found[f"{module.__name__}:{name}"] = copy
    return found


def _origins(namespace: dict, describers: dict, names: list[str]) -> dict:
    """``{name: {global it reads: where its value comes from}}`` by the trusted copy of
    ``utils.checks.rules.global_origins`` (what the from-scratch rule reads from ``fn.__globals__``
    in the notebook); names it cannot describe are left out."""
    origins = describers.get("utils.checks.rules:global_origins")
    found = {}
    for name in names if origins is not None else []:
        try:
            found[name] = {str(k): str(v) for k, v in origins(namespace[name]).items()}
        except BaseException:                              # noqa: BLE001 - learner objects may raise
            continue
    return found


MODEL_DESCRIBER = "utils.checks.models:describe_model"


def _is_torch_module(value) -> bool:
    import sys
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def _call_reply(namespace: dict, describers: dict, request: dict) -> bytes:
    name = request["call"]
    args, kwargs = from_wire(request["args"]), from_wire(request["kwargs"])
    try:
        describe = describers[request["describe"]] if request.get("describe") else None
        result = namespace[name](*args, **kwargs)
        if describe is None and _is_torch_module(result):
            describe = describers.get(MODEL_DESCRIBER)         # a model cannot cross: its description does
        if describe is not None:
            result = describe(result)
    except BaseException as exc:                           # noqa: BLE001 - sent to the grader
        return serialize.dumps({"raised": [type(exc).__name__, str(exc)[:1000], _builtin_base(exc)]})
    reply = {}
    try:
        after = serialize.dumps([to_wire(list(args)), to_wire(kwargs)])
        if after != request["sent"]:
            reply["changed"] = serialize.loads(after)           # the arguments as the function left them
    except (serialize.NotSerializable, ValueError, TypeError):
        reply["changed_unsendable"] = True
    try:
        return serialize.dumps({"ok": to_wire(result), **reply})
    except serialize.NotSerializable as exc:
        return serialize.dumps({"unsupported": f"{name} returned {exc}"})


def _serve(requests: int, replies: int, units: list[str]) -> None:
    """The runner's loop: load the student's statements (reporting each before it runs, so that
    the grader can skip one that hangs or kills the process), then answer requests:
    ``{"call": name, "args", "kwargs", "sent", "describe"}`` or ``{"callables": [names]}``."""
    describers = _trusted_describers()
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    problems = []
    for index, unit in enumerate(units):
        _write(replies, serialize.dumps({"loading": index}))
        try:
            exec(compile(unit, "<your notebook>", "exec"), namespace)
        except BaseException as exc:                       # noqa: BLE001 - report, keep going
            problems.append([index, f"{type(exc).__name__}: {str(exc)[:300]}"])
    _write(replies, serialize.dumps({"ready": problems}))
    while True:
        raw = _read(requests)
        request = serialize.loads(raw)
        if "callables" in request:
            reply = serialize.dumps({"callables": [n for n in request["callables"] if callable(namespace.get(n))]})
        elif "origins" in request:
            reply = serialize.dumps({"origins": _origins(namespace, describers, request["origins"])})
        else:
            request["sent"] = serialize.dumps([request["args"], request["kwargs"]])
            reply = _call_reply(namespace, describers, request)
        _write(replies, reply)


MAX_SKIPPED = 3       # statements skipped while loading before the grader gives up on loading


class StudentChangedInput(StudentStopped):
    """The learner's function changed an argument in a way the caller's copy cannot mirror.  Course infrastructure."""
    status = "failed"


def _mirror(original, new, name: str, where: str):
    """Make the caller's ``original`` argument look as the student's function left its copy ``new``
    (arrays, tensors, lists and dicts are changed in place, as they would be in the notebook), so
    that a check comparing arguments before and after the call sees the same thing in both places."""
    import numpy as np
    if isinstance(original, np.ndarray) and isinstance(new, np.ndarray):
        try:
            if original.shape != new.shape:
                original.shape = new.shape
            np.copyto(original, new, casting="unsafe")
        except ValueError as exc:
            if "read-only" in str(exc):
                raise student_exception("ValueError", "assignment destination is read-only", "ValueError", name) from None
            raise StudentChangedInput(f"{name} changed its input {where} in place (to shape {new.shape}): "
                                      "work on a copy, the caller still needs the original") from None
        except AttributeError:
            raise StudentChangedInput(f"{name} changed its input {where} in place (to shape {new.shape}): "
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
        kept = [_mirror(o, n, name, f"{where}[{i}]") for i, (o, n) in enumerate(zip(original, new))]
        original[:] = kept + new[len(kept):]
        return original
    if isinstance(original, dict) and isinstance(new, dict):
        merged = {k: (_mirror(original[k], v, name, f"{where}[{k!r}]") if k in original else v) for k, v in new.items()}
        original.clear()
        original.update(merged)
        return original
    if isinstance(original, tuple) and isinstance(new, tuple) and len(original) == len(new):
        for i, (o, n) in enumerate(zip(original, new)):
            _mirror(o, n, name, f"{where}[{i}]")
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
        _write(self.requests, serialize.dumps(request))
        try:
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
        if "raised" in reply:
            type_name, message, base = (list(reply["raised"]) + ["", "", ""])[:3]
            raise student_exception(str(type_name), str(message), str(base), name)
        if "unsupported" in reply:
            raise StudentUnsupported(str(reply["unsupported"]))
        if reply.get("changed_unsendable"):
            raise StudentChangedInput(f"{name} changed its input in place (into something that is not data): "
                                      "work on a copy, the caller still needs the original")
        if "changed" in reply:
            new_args, new_kwargs = from_wire(reply["changed"][0]), from_wire(reply["changed"][1])
            for i, (old, new) in enumerate(zip(args, new_args)):
                _mirror(old, new, name, f"(argument {i + 1})")
            for key, old in kwargs.items():
                if key in new_kwargs:
                    _mirror(old, new_kwargs[key], name, f"`{key}`")
        return from_wire(reply["ok"])


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
