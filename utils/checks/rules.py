"""Rules about *how* a learner's function is written, read from its source (AST), not from its output.

Two rules, each stated in the task text of the exercises that have it:

* **from scratch** (exercise sets 01-06): the function must compute with NumPy itself, so it fails when
  it uses ``utils.functional``, PyTorch, SciPy (``scipy.signal.correlate2d``, ...), NumPy's own
  ``convolve``/``correlate``, or reaches other code by ``__import__``/``eval``/``globals()``;
* **no loops over output positions** (``conv2d_vectorized``): no ``for`` loop over output rows or
  columns nested in another loop (loops over filters or kernel taps are fine).

And one rule for every exercise set (:func:`require_own_code`, also part of "from scratch"): the answer
is not, and does not call, the checks' own code (``utils.checks`` but its ``check_*`` functions, e.g.
ex07's ``_top_class_maps``), as the grader's tripwire :mod:`utils.grade.integrity` refuses it.

The source is ``getattr(fn, "__source__", None) or inspect.getsource(fn)``: the grader's proxies carry
the ``def`` block read from the notebook, so the notebook's check and the grader read the same text and
give the same verdict.  A function whose source cannot be found is not judged by the source rules.

The from-scratch rule also looks at what the function's global names *are* (:func:`global_origins`),
so that ``from utils.functional import conv2d as helper`` in another cell does not hide the library:
in the notebook from ``fn.__globals__``; a grader proxy provides the same map as ``__globals_origin__``
(computed by :func:`global_origins` where the learner's code runs).
"""
from __future__ import annotations

import ast
import dis
import functools
import importlib
import inspect
import pkgutil
import textwrap
import types
from typing import Callable, Iterable

from .engine import CheckFailed

#: Module (or alias) names whose use makes a "from scratch" function not from scratch.
FORBIDDEN_ROOTS = frozenset({"torch", "scipy", "signal", "ndimage", "F", "TF", "nn", "functional", "utils",
                             "cv2", "skimage", "tensorflow", "tf", "jax", "sklearn", "importlib", "sys",
                             "builtins"})
#: Calls that hand the computation to other code, whatever they are reached through.
FORBIDDEN_CALLS = frozenset({"__import__", "eval", "exec", "compile", "globals", "vars", "getattr"})
#: The course's reference operations (utils.functional) and SciPy's convolutions, called by bare name.
REFERENCE_NAMES = frozenset({"conv2d", "conv2d_naive", "conv2d_backward", "max_pool2d", "avg_pool2d",
                             "max_pool2d_backward", "avg_pool2d_backward", "adaptive_avg_pool2d", "relu",
                             "relu_backward", "leaky_relu", "correlate2d", "convolve2d", "fftconvolve",
                             "oaconvolve", "correlate", "convolve"})
#: Modules whose functions a from-scratch answer may not call, under whatever name.
FORBIDDEN_MODULES = ("utils.functional", "utils.efficiency", "utils.models", "utils.checks", "torch", "scipy", "cv2",
                     "skimage", "tensorflow", "jax", "sklearn")
#: The course's check code: its private functions are the checks' reference computations.
CHECKS = "utils.checks"
#: NumPy functions that are convolutions already.
NUMPY_CONVOLUTIONS = frozenset({"convolve", "correlate"})
_NUMPY = frozenset({"np", "numpy"})


def source_of(fn: Callable) -> str | None:
    """The source of ``fn`` (a grader proxy's ``__source__``, else :func:`inspect.getsource`), or None.
    Course infrastructure."""
    source = getattr(fn, "__source__", None)
    if not source:
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            return None
    return textwrap.dedent(source)


def _tree(fn: Callable) -> ast.AST | None:
    source = source_of(fn)
    if source is None:
        return None
    try:
        return ast.parse(source)
    except SyntaxError:  # e.g. a lambda cut out of a longer line: not judged
        return None


def _dotted(node: ast.AST) -> list[str]:
    """``a.b.c`` -> ["a", "b", "c"]; [] if the chain does not start with a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return []


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def scratch_violations(fn: Callable, own_names: Iterable[str] = ()) -> list[str]:
    """What in ``fn``'s source breaks the from-scratch rule (empty if nothing, or no source).

    ``own_names``: functions of the same exercise set that the learner writes (and may call), e.g.
    ``relu`` inside ``relu_backward``.
    Course infrastructure.
    """
    tree = _tree(fn)
    if tree is None:
        return []
    parent = _parents(tree)
    own = set(own_names) | {getattr(fn, "__name__", "")}
    own |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    local |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
              for a in n.posonlyargs + n.args + n.kwonlyargs + [n.vararg, n.kwarg] if a is not None}
    allowed_modules = _NUMPY | {"math", "itertools", "functools"}
    found: list[str] = []
    for node in sorted(ast.walk(tree), key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))):
        if isinstance(node, ast.Import):
            found += [f"`import {a.name}`" for a in node.names if a.name.split(".")[0] not in allowed_modules]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] not in allowed_modules:
                found.append(f"`from {node.module} import ...`")
        elif isinstance(node, ast.Attribute) and not isinstance(parent.get(node), ast.Attribute):
            chain = _dotted(node)
            if chain and chain[0] in FORBIDDEN_ROOTS and chain[0] not in local:
                found.append(f"`{'.'.join(chain)}`")
            elif len(chain) >= 2 and chain[0] in _NUMPY and chain[-1] in NUMPY_CONVOLUTIONS:
                found.append(f"`{'.'.join(chain)}`")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            called = isinstance(parent.get(node), ast.Call) and parent[node].func is node
            if node.id in FORBIDDEN_CALLS and called:
                found.append(f"`{node.id}(...)`")
            elif node.id in REFERENCE_NAMES and node.id not in own | local:
                found.append(f"`{node.id}`")
            elif (node.id in FORBIDDEN_ROOTS and node.id not in local
                  and not isinstance(parent.get(node), ast.Attribute)):
                found.append(f"`{node.id}`")
    return list(dict.fromkeys(found))


def _origin(value) -> str | None:
    if isinstance(value, types.ModuleType):
        return value.__name__
    module = getattr(value, "__module__", None)
    if not isinstance(module, str):
        return None
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    return f"{module}.{qualname}" if isinstance(qualname, str) else module


def _global_loads(code: types.CodeType) -> set[str]:
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_loads(const)
    return {n for n in names if isinstance(n, str)}


def global_origins(fn: Callable, _seen: set | None = None) -> dict[str, str]:
    """``{global name the function reads: where its value comes from}`` (``"utils.functional.conv2d"``,
    ``"torch"``, ...), following the learner's own helper functions of the same namespace.

    A grader proxy answers with its ``__globals_origin__`` (the same map, computed in the process
    where the learner's code lives); a function without ``__code__``/``__globals__`` gives {}.
    Course infrastructure.
    """
    given = getattr(fn, "__globals_origin__", None)
    if isinstance(given, dict):
        return {str(k): str(v) for k, v in given.items()}
    code, namespace = getattr(fn, "__code__", None), getattr(fn, "__globals__", None)
    if not isinstance(code, types.CodeType) or not isinstance(namespace, dict):
        return {}
    seen = _seen if _seen is not None else set()
    seen.add(code)
    found: dict[str, str] = {}
    for name in sorted(_global_loads(code)):
        if name not in namespace:
            continue
        value = namespace[name]
        origin = _origin(value)
        if origin is not None:
            found[name] = origin
        helper = getattr(value, "__code__", None)
        if (inspect.isfunction(value) and getattr(value, "__globals__", None) is namespace
                and helper not in seen and len(seen) < 20):
            found.update({k: v for k, v in global_origins(value, seen).items() if k not in found})
    return found


# ---------------------------------------------------------------- the checks' own code is not an answer

@functools.lru_cache(maxsize=1)
def check_code_names() -> tuple[frozenset[str], frozenset[str]]:
    """(submodule names of utils.checks, private functions and classes defined in any of them): the
    checks' own code, which an answer must not use; the grader's tripwire (utils.grade.integrity) reads
    the same list.  Course infrastructure."""
    package = importlib.import_module(CHECKS)
    modules = [package] + [importlib.import_module(f"{CHECKS}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    private = {name for module in modules for name, value in vars(module).items()
               if name.startswith("_") and not name.startswith("__") and isinstance(value, (types.FunctionType, type))}
    return frozenset(m.__name__.rsplit(".", 1)[1] for m in modules[1:]), frozenset(private)


def _check_code_in_source(tree: ast.AST) -> list[str]:
    """Uses of utils.checks' own code in a function's source: importing anything of it but a ``check_*``
    function, naming one of its submodules or private helpers (also as a string, for ``getattr``)."""
    submodules, private = check_code_names()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"`{a.name}`" for a in node.names if a.name.startswith(CHECKS + ".")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CHECKS):
            found += ([f"`{node.module}`"] if node.module != CHECKS else
                      [f"`{a.name}` of `{CHECKS}`" for a in node.names if not a.name.startswith("check_")])
        elif isinstance(node, ast.Attribute):
            chain = _dotted(node)
            if (node.attr in private and chain[:1] != ["self"]) or (node.attr in submodules and "checks" in chain[:-1]):
                found.append(f"`{ast.unparse(node)}`")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in private:
            found.append(f"the name {node.value!r}")
    return found


def check_code_uses(fn: Callable) -> list[str]:
    """What makes ``fn`` (a learner's answer) the course's check code or a caller of it: ``fn`` itself
    defined in ``utils.checks`` (e.g. ``top_class_maps = _top_class_maps``), a global name whose value
    comes from it (anything but a ``check_*`` function; the package itself may be imported), or a use
    of a submodule or private helper in its source.  The grader's tripwire (utils.grade.integrity)
    refuses the same answers from the notebook's text.  Course infrastructure."""
    found = []
    if not hasattr(fn, "__source__"):                   # a grader proxy is the grader's, not the checks'
        origin = _origin(fn) or ""
        if origin.startswith(CHECKS + "."):
            found.append(f"`{getattr(fn, '__name__', origin)}` ({origin})")
    for name, origin in global_origins(fn).items():
        if origin.startswith(CHECKS + ".") and not origin.rsplit(".", 1)[-1].startswith("check_"):
            found.append(f"`{name}` ({origin})")
    tree = _tree(fn)
    if tree is not None:
        found += _check_code_in_source(tree)
    return list(dict.fromkeys(found))


def _refuse(found: list[str], message: Callable[[str], str]) -> None:
    """Raise ``CheckFailed(message(the first three findings))`` if anything was found: one rule broken."""
    if found:
        raise CheckFailed(message(", ".join(found[:3])))


def require_own_code(fn: Callable, name: str) -> None:
    """Fail when ``fn`` is, or calls into, the checks' own reference code (see :func:`check_code_uses`).
    Course infrastructure."""
    _refuse(check_code_uses(fn), lambda uses: (
        f"✗ {name} uses {uses}, the course's check code: the checks' own reference computations are "
        f"there to check your answer, not to be it (the grader does not run such an answer; your "
        f"instructor grades it by hand). Write the computation yourself."))


def require_from_scratch(fn: Callable, name: str, own_names: Iterable[str] = ()) -> None:
    """Fail with a message naming the rule when ``fn`` hands its computation to a library. Course infrastructure."""
    require_own_code(fn, name)
    found = scratch_violations(fn, own_names)
    found += [f"`{n}` ({origin})" for n, origin in global_origins(fn).items()
              if any(origin == m or origin.startswith(m + ".") for m in FORBIDDEN_MODULES)
              and not any(f"`{n}" in f for f in found)]
    _refuse(found, lambda uses: (
        f"✗ {name} breaks the task's rule \"from scratch\": it must compute with NumPy itself, but it "
        f"uses {uses}. The course's `utils.functional`, PyTorch and SciPy are there to compare with, not "
        f"to answer with."))


# ---------------------------------------------------------------- no loops over output positions

_POSITION_WORDS = ("out", "row", "col", "position", "pixel")
_INPUT_SIZE_NAMES = frozenset({"H", "W", "h", "height", "width", "h_in", "w_in", "H_in", "W_in", "rows", "cols"})
_INPUT_ARRAYS = frozenset({"input", "x", "padded", "image", "images", "grad_output", "out", "output", "result"})


def _over_positions(loop: ast.AST) -> bool:
    """Whether a ``for`` loop (or comprehension) iterates over output rows/columns."""
    iterable = loop.iter
    for node in ast.walk(iterable):
        if isinstance(node, ast.Name):
            low = node.id.lower()
            if node.id in _INPUT_SIZE_NAMES or any(word in low for word in _POSITION_WORDS):
                return True
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "shape"):
            owner = _dotted(node.value.value)
            index = node.slice
            axis = index.value if isinstance(index, ast.Constant) else (
                -index.operand.value if isinstance(index, ast.UnaryOp) and isinstance(index.operand, ast.Constant)
                else None)
            if owner and owner[0] in _INPUT_ARRAYS and axis in (2, 3, -1, -2):
                return True
    target = loop.target
    names = [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return any(n in ("i", "j", "r", "c", "y", "oy", "ox", "oi", "oj") for n in names) and _is_ndindex(iterable)


def _is_ndindex(node: ast.AST) -> bool:
    chain = _dotted(node.func) if isinstance(node, ast.Call) else []
    return bool(chain) and chain[-1] in ("ndindex", "product")


def _loops(tree: ast.AST) -> list[ast.AST]:
    """Every ``for`` statement and every ``for`` clause of a comprehension in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor)):
            found.append(node)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            found += node.generators
    return found


def position_loops(fn: Callable) -> list[str]:
    """Loops over output positions that are nested in, or hold, another loop (as source snippets).
    Course infrastructure."""
    tree = _tree(fn)
    if tree is None:
        return []
    parent = _parents(tree)
    loops = _loops(tree)

    def enclosing(loop: ast.AST) -> set[int]:
        """ids of the loops around ``loop`` (and of the earlier clauses of its comprehension)."""
        around, node = set(), loop
        comp = parent.get(loop)
        if isinstance(comp, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)) and loop in comp.generators:
            around |= {id(g) for g in comp.generators[:comp.generators.index(loop)]}
            # a comprehension's element is inside all of its clauses
        while node in parent:
            node = parent[node]
            if isinstance(node, (ast.For, ast.AsyncFor)):
                around.add(id(node))
            if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)) and node is not comp:
                around |= {id(g) for g in node.generators}
        return around

    nested_ids = set()
    for loop in loops:
        around = enclosing(loop)
        if around:
            nested_ids.add(id(loop))
            nested_ids |= around
    found = [f"`for {ast.unparse(lp.target)} in {ast.unparse(lp.iter)}`"
             for lp in sorted(loops, key=lambda n: (n.iter.lineno, n.iter.col_offset))
             if id(lp) in nested_ids and _over_positions(lp)]
    return list(dict.fromkeys(found))


def require_no_position_loops(fn: Callable, name: str) -> None:
    """Fail with a message naming the rule when ``fn`` loops over output rows/columns in nested loops.
    Course infrastructure."""
    _refuse(position_loops(fn)[:1], lambda loop: (
        f"✗ {name} breaks the task's rule \"no Python loop over output positions\": {loop} runs once "
        f"per output row or column, inside another loop. Compute all positions at once with array "
        f"operations."))
