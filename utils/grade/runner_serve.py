"""The runner's own side of the pipes: what runs inside the runner process (see :mod:`.runner`).

Started by :mod:`.runner_process`, in the submission's sandbox: it executes the learner's top-level
statements, then answers the grader's requests (call a function, say which names are callable,
what their global names are).  Everything here runs in the same process as the learner's code,
so nothing it reports is trusted beyond plain data: the grader compares return values itself,
reads sources from the notebook, and refuses code that reaches into this process's own frames and
objects (:mod:`.integrity`).
"""
from __future__ import annotations

import builtins

from . import serialize
from .runner import _read, _write, from_wire, to_wire


def _builtin_base(exc: BaseException) -> str:
    """The first builtin exception class among ``exc``'s classes (e.g. ValueError for numpy's AxisError)."""
    for cls in type(exc).__mro__:
        if getattr(builtins, cls.__name__, None) is cls:
            return cls.__name__
    return "Exception"


def _raised(exc: BaseException) -> list[str]:
    """[class name, message, builtin base class name] of the learner's exception; a message whose
    ``__str__`` itself fails (or is not text) is described instead of taking the runner down."""
    try:
        name = str(type(exc).__name__)
    except BaseException:                                  # noqa: BLE001 - a learner's metaclass
        name = "Exception"
    try:
        message = str(exc)
        if not isinstance(message, str):
            raise TypeError
    except BaseException:                                  # noqa: BLE001 - a learner's __str__
        message = f"(the message of this {name} could not be read: its __str__ failed)"
    try:
        base = _builtin_base(exc)
    except BaseException:                                  # noqa: BLE001
        base = "Exception"
    return [name, message[:1000], base]


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
        return serialize.dumps({"raised": _raised(exc)})
    reply = {"described": True} if describe is not None else {}    # by instructor code, not the learner's
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
