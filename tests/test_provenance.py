"""Provenance, as d2l does it: every public function and class of ``utils`` says in its docstring
where the course teaches it or uses it first, and that claim is checked against the notebooks.

The phrases (exactly one of them, ending with a full stop):

* ``Taught in chapter NN.`` -- the chapter's code uses the name itself;
* ``Used first in chapter NN.`` -- the chapter uses it, itself or through utils code it calls,
  and no earlier chapter uses it itself;
* ``Used first in exercise set exNN.`` -- the same for the instructor's ``solutions/exNN_*.ipynb``,
  and no chapter up to the set's own, and no earlier set, uses it itself;
* ``Course infrastructure.`` -- grading, quiz, check or tool machinery that no notebook uses itself.

"Public" means: a function or class without a leading underscore whose ``__module__`` is the module
being checked (re-exports are checked where they are defined).  "Uses itself" means the notebook's
code cells import it from ``utils`` or reach it as ``module.name``; "through utils code it calls"
follows the names in the source of each utils function or class it uses, transitively.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import types
from functools import lru_cache
from pathlib import Path

import nbformat
import pytest

import utils
from utils import course

ROOT = Path(__file__).resolve().parents[1]
PHRASE = re.compile(r"(Taught in chapter (\d\d)|Used first in chapter (\d\d)"
                    r"|Used first in exercise set (ex\d\d)|Course infrastructure)\.")
# Course order as a learner meets the notebooks: chapter NN, then exercise set exNN.
NOTEBOOKS: dict[str, Path] = {}
for _c in course.CHAPTERS:
    NOTEBOOKS[_c.number] = ROOT / _c.path
    for _s in course.EXERCISE_SETS:
        if _s.chapter == _c.number:
            NOTEBOOKS[_s.id] = ROOT / _s.solution_path


# Public names that no notebook uses, kept for the reason given (candidates for removal, issue 13).
# The test checks that they are still unused: once a notebook uses one, its docstring must say so.
NOT_USED_BY_THE_COURSE = {
    "utils.functional.activation.leaky_relu_backward": "completes the ReLU family; tests/test_functional_activation.py",
    "utils.baselines.mlp_on_pixels": "a third pixel baseline; tests/test_baselines.py",
    "utils.baselines.run_baselines": "all pixel baselines at once; tests/test_baselines.py",
    "utils.data.photos.from_nchw": "the inverse of to_nchw; tests/test_images_and_plotting.py",
    "utils.models.load_pretrained": "the letters checkpoint utils/assets/source_cnn.pt; tests/test_models.py",
    "utils.transfer.last_linear_name": "helper of replace_head; tests/test_transfer.py",
    "utils.transfer.replace_head": "chapter 08 replaces the head by hand; tests/test_transfer.py",
    "utils.visualize.maximise_channel": "one channel's gradient ascent; chapter 10 calls maximise; tests/test_visualize.py",
    "utils.visualize.sparseness": "a selectivity measure no chapter reports; tests/test_visualize.py",
}


def utils_modules() -> list[str]:
    names = ["utils"] + [m.name for m in pkgutil.walk_packages(utils.__path__, "utils.")]
    return sorted(n for n in names if n.rsplit(".", 1)[-1] != "__main__")


def public_objects(module: types.ModuleType) -> dict[str, object]:
    return {name: obj for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == module.__name__}


# --- what a notebook uses -----------------------------------------------------------------------

def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


def _resolve(node, env: dict):
    """The object an expression ``a`` or ``a.b.c`` names, when it starts at a known name."""
    if isinstance(node, ast.Name):
        return env.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, env)
        if isinstance(base, types.ModuleType):
            value = getattr(base, node.attr, None)
            if value is None and base.__name__.startswith("utils"):
                value = _import(f"{base.__name__}.{node.attr}")
            return value
    return None


def _bind_imports(tree: ast.AST, env: dict, package: str = "utils") -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "utils":
                    continue
                if alias.asname:
                    env[alias.asname] = _import(alias.name)
                else:
                    _import(alias.name)
                    env["utils"] = utils
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:                                   # relative, inside utils
                name = importlib.util.resolve_name("." * node.level + name, package)
            if not name.startswith("utils"):
                continue
            module = _import(name)
            for alias in node.names:
                value = getattr(module, alias.name, None) if module else None
                if value is None:
                    value = _import(f"{name}.{alias.name}")
                env[alias.asname or alias.name] = value


def _used_objects(tree: ast.AST, env: dict) -> list[object]:
    used = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Name, ast.Attribute)):
            value = _resolve(node, env)
            if value is not None and not isinstance(value, types.ModuleType):
                used.append(value)
    return used


def _parse(source: str) -> ast.AST:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return ast.parse("")


@lru_cache(maxsize=None)
def direct_uses(key: str) -> frozenset[int]:
    """``id()`` of every utils object the notebook ``key`` ("07" or "ex07") uses itself."""
    nb = nbformat.read(NOTEBOOKS[key], as_version=4)
    tree = _parse("\n".join(c.source for c in nb.cells if c.cell_type == "code"))
    env: dict = {}
    _bind_imports(tree, env)
    return frozenset(id(obj) for obj in _used_objects(tree, env) if _in_utils(obj))


def _in_utils(obj) -> bool:
    return (getattr(obj, "__module__", "") or "").split(".")[0] == "utils"


@lru_cache(maxsize=None)
def _callees(obj) -> tuple:
    """The utils functions and classes named in the source of a utils function or class."""
    target = inspect.unwrap(obj)
    module = inspect.getmodule(target)
    try:
        tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(target)))
    except (OSError, TypeError, SyntaxError):
        return ()
    env = dict(vars(module)) if module else {}
    _bind_imports(tree, env, package=module.__package__ or "utils" if module else "utils")
    return tuple(o for o in _used_objects(tree, env) if _in_utils(o) and o is not obj)


@lru_cache(maxsize=None)
def reachable(key: str) -> frozenset[int]:
    """``id()`` of every utils object the notebook uses itself or through utils code it uses."""
    objects = {}
    for module_name in utils_modules():
        module = _import(module_name)
        if module is not None:
            objects.update({id(o): o for o in vars(module).values() if _in_utils(o)})
    todo = [objects[i] for i in direct_uses(key) if i in objects]
    seen = {id(o) for o in todo}
    while todo:
        for callee in _callees(todo.pop()):
            if id(callee) not in seen:
                seen.add(id(callee))
                todo.append(callee)
    return frozenset(seen)


# --- the claims ---------------------------------------------------------------------------------

def _users_before(obj, keys) -> list[str]:
    return [k for k in keys if id(obj) in direct_uses(k)]


def problem(obj) -> str | None:
    """Why ``obj``'s provenance phrase is missing or untrue, or ``None`` when it holds."""
    if f"{obj.__module__}.{obj.__name__}" in NOT_USED_BY_THE_COURSE:
        users = [k for k in NOTEBOOKS if id(obj) in reachable(k)]
        return f"listed as NOT_USED_BY_THE_COURSE but {users} use it: give it a phrase" if users else None
    doc = " ".join((obj.__doc__ or "").split())
    match = PHRASE.search(doc)
    if match is None:
        return ('no provenance phrase in its docstring ("Taught in chapter NN." / "Used first in chapter NN." / '
                '"Used first in exercise set exNN." / "Course infrastructure.")')
    _, taught, first, first_set = match.groups()
    chapters = [c.number for c in course.CHAPTERS]
    sets = [s.id for s in course.EXERCISE_SETS]
    if match.group(1) == "Course infrastructure":
        users = _users_before(obj, NOTEBOOKS)
        return f"says 'Course infrastructure' but notebooks use it: {users}" if users else None
    key = taught or first or first_set
    if key not in NOTEBOOKS:
        return f"cites {key}, which utils/course.py does not list"
    if taught:
        return None if id(obj) in direct_uses(key) else f"says 'Taught in chapter {key}' but that chapter's code does not use it"
    if id(obj) not in reachable(key):
        return f"says 'Used first in {'chapter ' if first else 'exercise set '}{key}' but that notebook does not use it"
    if first:
        earlier = _users_before(obj, chapters[:chapters.index(key)])
    else:
        upto = course.exercise_set(key).chapter
        earlier = _users_before(obj, [c for c in chapters if c <= upto] + sets[:sets.index(key)])
    return f"says 'Used first in {key}' but {earlier[0]} uses it already" if earlier else None


def test_the_phrase_checker_catches_missing_and_untrue_claims():
    def no_phrase():
        """Does something."""

    def unknown_chapter():
        """Used first in chapter 99."""

    def not_used_there():
        """Taught in chapter 01."""

    from utils.data import load_image, take_per_class
    assert "no provenance phrase" in problem(no_phrase)
    assert "does not list" in problem(unknown_chapter)
    assert "does not use it" in problem(not_used_there)
    assert problem(load_image) is None                     # chapter 00 loads the photos
    take_per_class.__doc__, saved = "Used first in chapter 08.", take_per_class.__doc__
    try:
        assert "06 uses it already" in problem(take_per_class)   # chapter 06 takes label budgets
    finally:
        take_per_class.__doc__ = saved


@pytest.mark.parametrize("module_name", utils_modules())
def test_every_public_name_says_where_the_course_uses_it_first(module_name):
    module = importlib.import_module(module_name)
    problems = {name: problem(obj) for name, obj in sorted(public_objects(module).items())}
    problems = {name: why for name, why in problems.items() if why}
    assert not problems, f"{module_name}: {len(problems)} public name(s) without a true provenance phrase:\n" + \
        "\n".join(f"  {module_name}.{name}: {why}" for name, why in problems.items())
