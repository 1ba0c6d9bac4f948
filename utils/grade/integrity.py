"""Learner code that reaches into the process running it: the grader does not trust its results.

The runner (:mod:`.runner_serve`) is the learner's own process: besides running the learner's
functions it reports what their global names are (for the "from scratch" rule) and describes the
learner's models, with copies of instructor code taken before the learner's code ran.  Code that
walks the running program's frames or objects (``sys._getframe``, ``f_locals``, ``gc.get_objects``,
``ctypes``, ``__code__``, ``globals()``, ``exec`` ...) can replace those copies, or the function the
grader calls, while the notebook still shows an honest-looking ``def``.  No course task needs any
of it, so the grader reads the statements the runner would execute (their text, from the notebook)
and, when one of them uses such a construct, runs none of them: the tests that call the learner's
functions become ``needs-review`` rows (0 points until the instructor looks) naming the construct
and where it is.

The same holds for the course's own check code (``utils.checks``, importable in the sandbox as in the
notebook, since the learner's checks run there): an answer that imports anything of it but a
``check_*`` function, or calls one of its private helpers (its reference computations), is not run.

Raw file-descriptor operations (``os.write``, ``os.fdopen``, ``open(3)``, ``/proc/self/fd``) are refused
too: the runner's reply pipe is a descriptor of the learner's process, and a frame written on it by
hand is whatever reply the learner wants.

This is a tripwire on the notebook's text, not a proof: names built at run time (``getattr(m, "_get"
+ "frame")``) or library functions that execute strings (``timeit``) are not recognised.  The
values the tests compare cross as plain data and are checked by the grader itself, whatever the
runner says; only the source rules and model descriptions depend on the runner's honesty.
"""
from __future__ import annotations

import ast

#: Attributes that reach frames, tracebacks, the garbage collector's object lists or code objects.
REACHING_ATTRIBUTES = frozenset({
    "_getframe", "_current_frames", "currentframe", "f_back", "f_locals", "f_globals", "f_builtins", "f_code",
    "tb_frame", "gi_frame", "cr_frame", "ag_frame", "get_objects", "get_referrers", "get_referents",
    "settrace", "setprofile", "__code__", "__globals__", "__closure__", "__builtins__", "__subclasses__",
    "getouterframes", "getinnerframes", "ctypeslib", "pythonapi", "stack", "trace"})
#: Of those, names that are also ordinary words: only on ``inspect`` (``inspect.stack()``).
INSPECT_ONLY = frozenset({"stack", "trace"})
#: Builtins that run text as code or hand out a namespace to change.
REACHING_CALLS = frozenset({"exec", "eval", "compile", "__import__", "globals", "vars", "breakpoint"})
#: Modules whose purpose is to reach into the interpreter (or to run code from data).
REACHING_MODULES = frozenset({"gc", "ctypes", "marshal", "importlib", "pickle", "dill", "cloudpickle", "code",
                              "codeop", "runpy", "pdb", "bdb", "trace", "cProfile", "profile", "_ctypes"})
#: File names that give a process its own memory or descriptors.
REACHING_STRINGS = ("/proc/self/mem", "/proc/self/task", "/proc/self/fd", "/dev/fd")
#: Raw file-descriptor operations: the runner's reply pipe is a descriptor, and a hand-made frame
#: written on it is any reply at all (a model "described", a value never computed by the function).
RAW_DESCRIPTOR_ATTRIBUTES = frozenset({"fdopen", "dup", "dup2", "closerange", "sendfile", "splice", "pwrite",
                                       "writev", "pread", "readv", "fromfd", "socketpair"})
RAW_DESCRIPTOR_OS = frozenset({"write", "read", "close", "pipe", "set_inheritable", "lseek"})   # only on ``os``


CHECKS = "utils.checks"
CHECK_CODE = "(the course's check code)"


def check_code_names() -> tuple[frozenset[str], frozenset[str]]:
    """(submodule names of ``utils.checks``, private functions and classes defined in any of them): its
    reference computations and helpers, which a learner's answer has no business calling.  The notebook
    checks refuse the same names (one list for both: :func:`utils.checks.rules.check_code_names`,
    imported here when first needed, so that loading the tripwire stays light).  Course infrastructure."""
    from utils.checks.rules import check_code_names as names
    return names()


def _dotted_root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted_parts(node: ast.AST) -> list[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return parts + ([node.id] if isinstance(node, ast.Name) else [])


def _check_code(node: ast.AST) -> str | None:
    """The use of ``utils.checks``' own code in ``node`` (beyond importing a ``check_*`` function), or None."""
    submodules, private = check_code_names()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith(CHECKS + "."):
                return f"`{alias.name}` {CHECK_CODE}"
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CHECKS):
        if node.module != CHECKS:
            return f"`{node.module}` {CHECK_CODE}"
        for alias in node.names:
            if not alias.name.startswith("check_") and alias.name != "*":
                return f"`{alias.name}` of `{CHECKS}` {CHECK_CODE}"
    elif isinstance(node, ast.Attribute):
        if node.attr in submodules and "checks" in _dotted_parts(node.value):
            return f"`{ast.unparse(node)}` {CHECK_CODE}"
        if node.attr in private and _dotted_root(node.value) != "self":
            return f"`{ast.unparse(node)}` {CHECK_CODE}"
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in private:
        return f"the name {node.value!r} {CHECK_CODE}"
    return None


def reaching_construct(source: str) -> str | None:
    """The first construct of ``source`` (one top-level statement) that reaches into the running
    program (see the module docstring), as the learner wrote it (e.g. "`sys._getframe`"), else None.
    Course infrastructure."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, RecursionError, MemoryError):     # parse_cells has named such a cell already
        return None
    for node in ast.walk(tree):
        found = _check_code(node)
        if found:
            return found
        if isinstance(node, ast.Attribute) and (node.attr in RAW_DESCRIPTOR_ATTRIBUTES or
                                                node.attr in RAW_DESCRIPTOR_OS and _dotted_root(node.value) == "os"):
            return f"`{ast.unparse(node)}`"
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) and node.args \
                and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in ("open", "FileIO") \
                and isinstance(node.args[0], ast.Constant) and type(node.args[0].value) is int:
            return "`open` of a file descriptor"
        if isinstance(node, ast.Attribute) and node.attr in REACHING_ATTRIBUTES:
            if node.attr not in INSPECT_ONLY or _dotted_root(node.value) == "inspect":
                return f"`{ast.unparse(node)}`"
        elif isinstance(node, ast.Name) and (node.id in REACHING_CALLS or node.id == "__builtins__"):
            return f"`{node.id}`"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module.split(".")[0] in REACHING_MODULES:
                    return f"the module `{module.split('.')[0]}`"
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name in REACHING_ATTRIBUTES - INSPECT_ONLY or alias.name in REACHING_CALLS:
                        return f"`{alias.name}`"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in REACHING_ATTRIBUTES - INSPECT_ONLY or node.value in REACHING_CALLS \
                    or any(s in node.value for s in REACHING_STRINGS):
                return f"the name {node.value!r}"
    return None


def reaching_statement(statements) -> str | None:
    """The sentence for the feedback when one of ``statements`` (:class:`.student_code.Statement`, those
    the runner would execute) reaches into the running program, else None.  Course infrastructure."""
    for statement in statements:
        found = reaching_construct(statement.source)
        if found:
            return (f"your code uses {found} ({statement.where()}): it reaches into the program that runs your "
                    "functions, or into the course's own check code, so what the grader would be told about "
                    "your functions could not be trusted. No course task needs it: your functions were not "
                    "run here, and your instructor grades these by hand")
    return None
