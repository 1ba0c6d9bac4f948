"""Execute course notebooks in place and store their outputs.

    python -m tools.execute_notebooks chapters/02_convolution_from_scratch.ipynb solutions
    python -m tools.execute_notebooks --all     # every notebook of utils/course.py, in course order

Each notebook runs in a fresh ``python3`` kernel with its own folder as working directory.
A notebook is written back only when it executed without error and its outputs contain no
machine path; otherwise the file on disk is left untouched and the problem is reported.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

# Absolute paths of this machine must never end up in a stored notebook.
MACHINE_PATH = re.compile(r"(/work/|/root/|/home/|/tmp/|site-packages|\.venv/)")
TIME_LIMIT_SECONDS = 60


ROOT = Path(__file__).resolve().parent.parent


def listed_notebooks() -> list[Path]:
    """Every notebook of the course manifest (``utils/course.py``) in course order: chapters, then
    solutions.  Course infrastructure."""
    from utils import course
    return [ROOT / c.path for c in course.CHAPTERS] + [ROOT / s.solution_path for s in course.EXERCISE_SETS]


def notebook_paths(args: list[str]) -> list[Path]:
    """The notebooks named by ``args`` (files or folders).  A notebook in the course's ``chapters/``
    or ``solutions/`` must be listed in ``utils/course.py``.  Course infrastructure."""
    paths: list[Path] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            paths.extend(sorted(q for q in p.glob("*.ipynb")))
        elif p.suffix == ".ipynb" and p.exists():
            paths.append(p)
        else:
            raise SystemExit(f"not a notebook or folder of notebooks: {arg}")
    course_folders = {ROOT / "chapters", ROOT / "solutions"}
    unlisted = [p for p in paths if p.resolve().parent in course_folders and p.resolve() not in listed_notebooks()]
    if unlisted:
        raise SystemExit(f"not in the course manifest utils/course.py (add it there first): "
                         f"{[str(p) for p in unlisted]}")
    return paths


def output_text(nb) -> str:
    chunks = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            chunks.append(str(out.get("text", "")))
            for key, value in out.get("data", {}).items():
                if key.startswith("text/"):
                    chunks.append(str(value))
            chunks.extend(out.get("traceback", []))
    return "\n".join(chunks)


def machine_paths_in(nb) -> list[str]:
    text = output_text(nb)
    return sorted({text[max(0, m.start() - 40): m.end() + 40] for m in MACHINE_PATH.finditer(text)})


def record_numeric_platform(nb) -> None:
    """Name the floating-point results this machine computes in ``nb``'s metadata when some cell's
    numbers depend on them (tag ``platform-dependent-output``; ``tools/nbval_platform.py``)."""
    from tools.nbval_platform import TAG
    from tools.numeric_platform import METADATA_KEY, fingerprint
    course_metadata = nb.metadata.setdefault("convcourse", {})
    if any(TAG in cell.metadata.get("tags", []) for cell in nb.cells):
        course_metadata[METADATA_KEY] = fingerprint()
    else:
        course_metadata.pop(METADATA_KEY, None)
    if not course_metadata:
        del nb.metadata["convcourse"]


def execute(path: Path, timeout: int = 600, write: bool = True) -> float:
    # As in `make test`: spinning OpenMP threads slow torch badly on shared cores (kernels inherit this).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    leaks = machine_paths_in(nb)
    if leaks:
        raise RuntimeError(f"{path}: outputs contain machine paths: {leaks[:3]}")
    # Widget state holds random model ids; the course never relies on it being stored.
    nb.metadata.pop("widgets", None)
    record_numeric_platform(nb)
    nbformat.validate(nb)
    if write:
        nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--all", action="store_true", help="every notebook of the course manifest utils/course.py")
    parser.add_argument("--time-only", action="store_true",
                        help="execute and report the seconds, but leave the files untouched")
    args = parser.parse_args(argv)
    if not args.paths and not args.all:
        parser.error("name notebooks or folders, or pass --all")
    failed = 0
    for path in (listed_notebooks() if args.all else []) + notebook_paths(args.paths):
        try:
            seconds = execute(path, write=not args.time_only)
        except (CellExecutionError, RuntimeError) as exc:
            failed += 1
            print(f"FAILED {path}: {str(exc)[-2000:]}", file=sys.stderr)
            continue
        flag = "" if seconds < TIME_LIMIT_SECONDS else f"  (over the {TIME_LIMIT_SECONDS} s budget!)"
        print(f"{seconds:6.1f} s  {path}{flag}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
