"""What the grader takes from a submitted notebook: which cells are the student's code, and which
of its top-level statements the runner executes.

The rule (the same one ``utils.grade``'s docstring and chapter 00 state for learners):
the runner executes, in the order written, every top-level ``import``, ``def`` and ``class``,
and every other top-level statement that sets (or changes, e.g. ``cache[k] = v``,
``table.update(...)``) a name that the tested functions read, directly or through other such
statements.  So module-level constants, lambdas (``relu = lambda x: ...``), caches and loaded
models that a function uses work as in the notebook; plots, prints, checks, training runs and
other statements no tested function depends on are not run a second time.  A statement that
runs longer than the time limit or ends the process while loading is skipped (and named in the
feedback), so one slow or fatal line does not cost the functions that do not need it.

IPython syntax (``%magic``, ``!shell``, ``np.einsum?``) is translated as IPython does, so it is
never a syntax error; cells under a cell magic other than ``%%time``/``%%capture`` are not Python
and define nothing.
"""
from __future__ import annotations

import ast
import re
import symtable
from dataclasses import dataclass, field

from .regions import nbgrader_meta

# A cell that only shows a quiz: not run in the kernel (its answers are read from the saved file).
QUIZ_ONLY = re.compile(r"^\s*(from\s+utils\.quiz\s+import\s+show_quiz\s*)?(show_quiz\([^()]*\)\s*;?\s*)+$")
PYTHON_CELL_MAGICS = ("time", "capture")     # their body runs in the notebook's namespace


def cell_source(cell) -> str:
    """A cell's source as one string (nbformat allows a list of lines; anything else is refused).
    Course infrastructure."""
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    if not isinstance(source, str):
        raise TypeError(f"its source is a {type(source).__name__}, not text")
    return source


def python_source(source: str) -> str | None:
    """``source`` with IPython syntax turned into Python (line numbers kept), or None for a cell
    magic whose body is not Python (``%%bash``, ``%%writefile``, ...). Course infrastructure."""
    lines = source.split("\n")
    first = lines[0].strip()
    if first.startswith("%%"):
        if first[2:].split(" ")[0] not in PYTHON_CELL_MAGICS:
            return None
        source = "\n".join([""] + lines[1:])
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:                                   # pragma: no cover - IPython ships with jupyter
        return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))
    return TransformerManager().transform_cell(source)


def strip_magics(source: str) -> str:
    """``source`` as plain Python that ``ast`` can parse ('' for a non-Python cell magic). Course infrastructure."""
    return python_source(source) or ""


def student_code_cells(nb, test_ids: set[str]) -> list[int]:
    """Indices of the code cells that are the student's: all code cells except the set's test
    cells (matched by grade_id: the instructor's copies are used instead) and quiz-only cells.
    Course infrastructure."""
    return [i for i, cell in enumerate(nb.cells)
            if cell.get("cell_type") == "code"
            and nbgrader_meta(cell).get("grade_id") not in test_ids
            and not QUIZ_ONLY.match(cell_source(cell))]


@dataclass
class Statement:
    """One top-level statement of the student's code. Course infrastructure."""
    cell: int                 # 1-based cell number in the notebook
    line: int                 # first line in its cell (decorators included)
    source: str               # its exact text (whole lines)
    kind: str                 # "import", "def", "class" or "other"
    binds: set[str]           # names it sets or changes at top level
    reads: set[str]           # names it reads at top level or as globals of its functions
    mutates: set[str] = field(default_factory=set)   # of ``binds``, those only changed in place
    value_kind: str = ""      # for one-name assignments: "lambda", "name" (an alias) or ""
    alias_of: str = ""        # for ``f = g``: g

    def where(self) -> str:
        return f"cell {self.cell}, line {self.line}"


@dataclass
class StudentCode:
    """The student's top-level statements in notebook order, and the cells that do not parse. Course infrastructure."""
    statements: list[Statement] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def bound(self) -> set[str]:
        return set().union(*(s.binds for s in self.statements))

    def last_binding(self, name: str) -> Statement | None:
        found = [s for s in self.statements if name in s.binds and name not in s.mutates]
        return found[-1] if found else None

    def function_names(self) -> set[str]:
        """Names whose last top-level binding makes a function: a ``def``, a lambda, or an alias
        of such a name."""
        names = set()
        for name in self.bound():
            statement, seen = self.last_binding(name), set()
            while statement is not None and statement.value_kind == "name" and statement.alias_of not in seen:
                seen.add(statement.alias_of)
                statement = self.last_binding(statement.alias_of)
            if statement is not None and (statement.kind == "def" or statement.value_kind == "lambda"):
                names.add(name)
        return names

    def source_of(self, name: str) -> str:
        """The source the student wrote for ``name``: its last ``def`` block (aliases followed), or the
        statement that assigns it (a lambda, ``functools.partial``...).  '' when it is not bound."""
        statement, seen = self.last_binding(name), {name}
        while statement is not None and statement.value_kind == "name" and statement.alias_of not in seen:
            seen.add(statement.alias_of)
            target = self.last_binding(statement.alias_of)
            if target is None:
                break
            statement = target
        return statement.source if statement is not None else ""

    def needed(self, names: set[str]) -> list[int]:
        """Indices of the statements the runner executes for the functions ``names``: every import,
        def and class, and every other statement that sets a name read by what is executed."""
        wanted, todo, chosen = set(), set(names), set()
        while todo:
            name = todo.pop()
            wanted.add(name)
            for index, statement in enumerate(self.statements):
                if name in statement.binds and index not in chosen:
                    chosen.add(index)
                    todo |= statement.reads - wanted
        chosen |= {i for i, s in enumerate(self.statements) if s.kind != "other"}
        return sorted(chosen)


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _top_level_nodes(node: ast.AST):
    """The nodes of ``node`` that run at top level (not inside a nested function, lambda or class body)."""
    yield node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
        # only the name is bound here; decorators, defaults and base classes are evaluated here
        parts = [*getattr(node, "decorator_list", []), *getattr(node, "bases", []), *getattr(node, "keywords", [])]
        if hasattr(node, "args"):
            parts += [*node.args.defaults, *[d for d in node.args.kw_defaults if d is not None]]
        for part in parts:
            yield from _top_level_nodes(part)
        return
    for child in ast.iter_child_nodes(node):
        yield from _top_level_nodes(child)


def _binds(node: ast.stmt) -> tuple[set[str], set[str]]:
    """(names bound or changed at top level, of which those only changed in place)."""
    bound, mutated = set(), set()
    for sub in _top_level_nodes(node):
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in sub.names if a.name != "*"}
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            bound.add(sub.id)
        elif isinstance(sub, (ast.Attribute, ast.Subscript)) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            root = _root(sub)
            if root:
                mutated.add(root)
        elif isinstance(sub, ast.Expr) and isinstance(sub.value, ast.Call) and isinstance(sub.value.func, ast.Attribute):
            root = _root(sub.value.func)       # cache.update(...), table.append(...), model.load_state_dict(...)
            if root:
                mutated.add(root)
    return bound | mutated, mutated - bound


def _reads(text: str) -> set[str]:
    """Names ``text`` (one top-level statement) reads as globals, its nested functions included."""
    table = symtable.symtable(text, "<cell>", "exec")
    reads = {s.get_name() for s in table.get_symbols() if s.is_referenced()}

    def walk(scope):
        for child in scope.get_children():
            for symbol in child.get_symbols():
                if symbol.is_global() or symbol.is_declared_global():
                    reads.add(symbol.get_name())
            walk(child)
    walk(table)
    return reads


def _kind(node: ast.stmt) -> str:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "import"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return "def"
    if isinstance(node, ast.ClassDef):
        return "class"
    return "other"


def parse_cells(cells: list[tuple[int, str]]) -> StudentCode:
    """The top-level statements of the code cells ``(cell number, source)``, in order.

    A cell that does not parse is named in ``problems`` and contributes nothing.
    Course infrastructure.
    """
    code = StudentCode()
    for number, source in cells:
        python = python_source(source)
        if python is None:
            continue
        try:
            tree = ast.parse(python)
        except SyntaxError as exc:
            code.problems.append(f"cell {number} has a syntax error (line {exc.lineno}): {exc.msg}")
            continue
        except (RecursionError, MemoryError):      # CPython's parser gives up (the kernel's does too)
            code.problems.append(TOO_DEEP.format(number=number))
            continue
        try:
            code.statements += _statements(number, python, tree)
        except RecursionError:                     # parsed, but too deep for the analysis of its names
            code.problems.append(TOO_DEEP.format(number=number))
    return code


TOO_DEEP = ("cell {number} nests too deeply for the grader to read (an expression or block of thousands "
            "of levels): it defines nothing here")


def _statements(number: int, python: str, tree: ast.Module) -> list[Statement]:
    """The :class:`Statement` of each top-level node of one cell's parsed ``tree``."""
    found = []
    lines = python.split("\n")
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        text = "\n".join(lines[first - 1:node.end_lineno])
        binds, mutated = _binds(node)
        try:
            reads = _reads(text)
        except (SyntaxError, RecursionError, MemoryError):   # e.g. a lone `return` symtable refuses
            reads = set()
        statement = Statement(number, first, text, _kind(node), binds, reads, mutated)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, ast.Lambda):
                statement.value_kind = "lambda"
            elif isinstance(node.value, ast.Name):
                statement.value_kind, statement.alias_of = "name", node.value.id
        found.append(statement)
    return found


def defined_by(node: ast.stmt) -> set[str]:
    """Names a top-level statement binds. Course infrastructure."""
    return _binds(node)[0]
