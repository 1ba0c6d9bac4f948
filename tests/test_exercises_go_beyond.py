"""No exercise can be answered by copying a chapter cell (issue 10).

For every solution function in ``solutions/*.ipynb`` (the statements between ``### BEGIN SOLUTION``
and ``### END SOLUTION``), its *normalised* AST must not occur as a run of consecutive statements
anywhere in any chapter's code: not at the top of a cell, not in a function, loop or branch.

Normalised means: every name (variables, arguments, lambda parameters, the functions called) is
replaced by its order of first appearance, string constants are blanked (so docstrings and error
messages do not count), comments disappear with the parse, and ``if ...: raise ...`` validation
statements are dropped on both sides (a copy that only adds or removes an argument check is still a
copy).  Attribute names (``np.einsum``, ``.transpose``) and numbers are kept: they are the method.
"""
from __future__ import annotations

import ast
import difflib
import json
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("ex[0-9][0-9]_*.ipynb"))
SOLUTION_BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION", re.M | re.S)


class _Canonical(ast.NodeTransformer):
    """Rename every identifier by first appearance and blank string constants."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id=self._name(node.id), ctx=node.ctx), node)

    def visit_arg(self, node):
        node.arg, node.annotation = self._name(node.arg), None
        return node

    def visit_FunctionDef(self, node):
        node.name, node.returns, node.decorator_list = self._name(node.name), None, []
        self.generic_visit(node)
        return node

    def visit_Constant(self, node):
        return ast.Constant(value="") if isinstance(node.value, str) else node

    def visit_JoinedStr(self, node):
        return ast.Constant(value="")


def _is_noise(statement: ast.stmt) -> bool:
    """Docstrings / bare strings, and ``if <check>: raise ...`` argument validation."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return True
    return (isinstance(statement, ast.If) and not statement.orelse
            and all(isinstance(s, ast.Raise) for s in statement.body))


def normalise(statements: list[ast.stmt]) -> str:
    """A run of statements -> a canonical string, equal for copies that differ only in naming."""
    kept = [s for s in statements if not _is_noise(s)]
    module = ast.Module(body=[_Canonical().visit(ast.parse(ast.unparse(s)).body[0]) for s in kept],
                        type_ignores=[])
    return ast.dump(module, annotate_fields=False)


def statement_lists(tree: ast.AST):
    """Every list of statements in ``tree`` (module, function, class, loop, branch, with, try bodies)."""
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield [s for s in block if not _is_noise(s)]
        for handler in getattr(node, "handlers", []):
            yield list(handler.body)


def occurs_in(solution: list[ast.stmt], tree: ast.AST) -> bool:
    """Does the normalised ``solution`` occur as consecutive statements somewhere in ``tree``?"""
    target = [s for s in solution if not _is_noise(s)]
    wanted, size = normalise(target), len(target)
    kinds = [type(s) for s in target]
    return any([type(s) for s in block[start:start + size]] == kinds      # cheap filter first
               and normalise(block[start:start + size]) == wanted
               for block in statement_lists(tree) for start in range(len(block) - size + 1))


# ----------------------------------------------------------------------------- near copies

def shape_tokens(statements: list[ast.stmt]) -> list[str]:
    """The code's shape: AST node types in order, with attribute names (``Attribute.einsum``), no names
    or constants.  Two functions that differ only in naming, literals or comments have equal shapes."""
    tokens = []
    for statement in statements:
        if _is_noise(statement):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.expr_context):
                continue
            tokens.append(type(node).__name__ + (f".{node.attr}" if isinstance(node, ast.Attribute) else ""))
    return tokens


def similarity(solution: list[str], candidate: list[str]) -> float:
    """difflib's ratio of two token sequences: 1.0 identical, about 0.5 for unrelated code of this kind."""
    return difflib.SequenceMatcher(None, solution, candidate, autojunk=False).ratio()


def code_units(tree: ast.Module):
    """(name, statements) for every function in a cell and for the cell's top level."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.body
    yield "cell", tree.body


def parse_cell(source: str) -> ast.Module:
    """A code cell without IPython magics / shell lines -> its AST."""
    return ast.parse("\n".join(line for line in source.splitlines()
                               if not line.lstrip().startswith(("%", "!"))))


def solution_functions(path: Path) -> list[tuple[str, list[ast.stmt]]]:
    """(label, statements of the solution block) for every solution block in a solution notebook."""
    found = []
    for index, source in enumerate(code_sources(path)):
        for match in SOLUTION_BLOCK.finditer(source):
            body = ast.parse(textwrap.dedent(match.group(2))).body
            names = re.findall(r"^def (\w+)", source[:match.start()], re.M)
            found.append((f"{path.stem}:{names[-1] if names else f'cell {index}'}", body))
    return found


def code_sources(path: Path) -> list[str]:
    """The source of every code cell of a notebook (read as JSON: no validation needed here)."""
    cells = json.loads(path.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


CHAPTER_TREES = {path.stem: [parse_cell(source) for source in code_sources(path)] for path in CHAPTERS}
# A learner doing exercise set NN has read chapters 00..NN: a near copy in a later chapter gives nothing away.
READ_BEFORE = {number: [stem for stem in CHAPTER_TREES if int(stem[:2]) <= number] for number in range(100)}
CHAPTER_SHAPES = {stem: [(name, shape_tokens(body)) for tree in trees for name, body in code_units(tree)]
                  for stem, trees in CHAPTER_TREES.items()}
MIN_TOKENS = 40          # shorter solutions (a one-line relu, a transpose) are idioms, not answers to copy
NEAR_COPY = 0.7   # old chapter 02 conv2d_loops scored 0.77 vs ex02, old chapter 05 compose_kernels 0.80; unrelated loops <= 0.64
SOLUTION_BODIES = [item for path in SOLUTIONS for item in solution_functions(path)]


def test_there_is_something_to_check():
    assert len(CHAPTER_TREES) >= 10 and len(SOLUTION_BODIES) >= 20


@pytest.mark.parametrize("label, body", SOLUTION_BODIES, ids=[label for label, _ in SOLUTION_BODIES])
def test_solution_is_not_in_any_chapter(label, body):
    copies = [chapter for chapter, trees in CHAPTER_TREES.items()
              if any(occurs_in(body, tree) for tree in trees)]
    assert copies == [], f"the solution of {label} can be copied from chapter(s) {copies}"


LONG_SOLUTIONS = [(label, body) for label, body in SOLUTION_BODIES if len(shape_tokens(body)) >= MIN_TOKENS]


def test_most_solutions_are_long_enough_for_the_near_copy_check():
    assert len(LONG_SOLUTIONS) >= 10


@pytest.mark.parametrize("label, body", LONG_SOLUTIONS, ids=[label for label, _ in LONG_SOLUTIONS])
def test_solution_has_no_near_copy_in_the_chapters_read_before(label, body):
    tokens = shape_tokens(body)
    number = int(label[2:4])
    scores = [(similarity(tokens, shape), f"{stem}:{name}") for stem in READ_BEFORE[number]
              for name, shape in CHAPTER_SHAPES[stem] if shape]
    best = max(scores, default=(0.0, None))
    assert best[0] < NEAR_COPY, f"{label} has the shape of {best[1]} (similarity {best[0]:.2f})"


# ----------------------------------------------------------------------------- the detector itself

SOLUTION = """\
def box_blur(image, size):
    '''docstring'''
    if size < 1:
        raise ValueError("size must be positive")
    out = np.zeros((image.shape[0] - size + 1, image.shape[1] - size + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = image[i:i + size, j:j + size].mean()   # one window
    return out
"""


def _body(source: str) -> list[ast.stmt]:
    return ast.parse(source).body[0].body


# the solution renamed (image -> img, size -> k, out -> result, i/j -> r/c), inside other chapter code
RENAMED = """\
def smooth(img, k):
    result = np.zeros((img.shape[0] - k + 1, img.shape[1] - k + 1))
    for r in range(result.shape[0]):
        for c in range(result.shape[1]):
            result[r, c] = img[r:r + k, c:c + k].mean()
    return result
"""


def test_detects_a_renamed_copy_inside_other_code():
    chapter = ast.parse("rng = np.random.default_rng(0)\n" + RENAMED + "print(smooth(rng.random((5, 5)), 3))\n")
    assert occurs_in(_body(SOLUTION), chapter)


def test_a_different_method_or_a_missing_statement_is_not_a_copy():
    different = ast.parse(RENAMED.replace(".mean()", ".max()"))
    assert ".max()" in ast.unparse(different)
    assert not occurs_in(_body(SOLUTION), different)
    partial = ast.parse("out = np.zeros((image.shape[0] - size + 1, image.shape[1] - size + 1))")
    assert not occurs_in(_body(SOLUTION), partial)


def test_near_copy_score_separates_a_renamed_copy_from_other_code():
    copy = _body(SOLUTION.replace("image", "img").replace("out", "result").replace("mean", "max"))
    other = ast.parse(textwrap.dedent("""\
        values = rng.normal(size=10_000).astype(np.float32)
        totals = np.array([np.cumsum(values[rng.permutation(values.size)])[-1] for _ in range(300)])
        print(len(np.unique(totals)))
        """)).body
    solution = shape_tokens(_body(SOLUTION))
    assert similarity(solution, shape_tokens(copy)) > 0.9 > NEAR_COPY
    assert similarity(solution, shape_tokens(other)) < NEAR_COPY
