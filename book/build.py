"""Build the web edition: ``python book/build.py [OUT]`` (``make book``: OUT = _build/html).

Sphinx reads a source folder assembled in a temporary directory: copies of the repository's
``chapters/``, ``exercises/``, ``docs/`` and ``README.md``, plus ``book/index.md`` whose tables of contents
``{course-chapters}`` and ``{course-exercise-sets}`` are filled in from the course manifest
``utils/course.py`` (a notebook it does not list is in no toctree: Sphinx warns); the configuration
is ``book/conf.py`` (``-c book``).  Nothing is cached between builds and nothing is executed: the
pages show the notebooks' stored outputs.  MathJax comes from the sphinx-mathjax-offline package,
so that maths renders offline.  Exit status: Sphinx's (0 when built).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
COPIED = ("chapters", "exercises", "docs", "README.md")


def index_page() -> str:
    """``book/index.md`` with its chapter and exercise-set tables of contents from ``utils/course.py``."""
    sys.path.insert(0, str(ROOT))
    from utils import course
    text = (BOOK / "index.md").read_text()
    chapters = "\n".join(c.path.removesuffix(".ipynb") for c in course.CHAPTERS)
    sets = "\n".join(s.exercise_path.removesuffix(".ipynb") for s in course.EXERCISE_SETS)
    return text.replace("{course-chapters}", chapters).replace("{course-exercise-sets}", sets)


def build(out: Path, jobs: str = "auto", quiet: bool = True) -> int:
    from sphinx.cmd.build import build_main
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="convcourse-book-") as scratch:
        src = Path(scratch) / "src"
        src.mkdir()
        for name in COPIED:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
            elif (ROOT / name).is_file():
                shutil.copy(ROOT / name, src / name)
        (src / "index.md").write_text(index_page())
        args = ["-b", "html", "-c", str(BOOK), "-d", str(Path(scratch) / "doctrees"), "-j", jobs,
                "-E", *(["-q"] if quiet else []), str(src), str(out)]
        status = build_main(args)
    return status


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))            # utils (quizzes, explorer descriptions)
    sys.exit(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build" / "html"))
