"""Memory of one learner's kernel after running a chapter: the sizing figures of docs/teaching.md.

    .venv/bin/python docs/kernel_memory.py chapters/07_building_a_cnn.ipynb [more notebooks]

Executes each notebook in a fresh kernel (nbclient, as tools.execute_notebooks does, on a
temporary copy: the repository is never written) and prints the kernel process's resident memory
(RSS) and unique memory (USS: what the learner costs on top of shared libraries), in MiB, right after
the last cell, plus the seconds it took.  Run it on the hub's machine to size the hub.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient


def measure(path: Path) -> tuple[float, float, float]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        process = psutil.Process(client.km.provisioner.process.pid)
        info = process.memory_full_info()
    return info.rss / 2**20, info.uss / 2**20, time.perf_counter() - start


if __name__ == "__main__":
    for name in sys.argv[1:]:
        rss, uss, seconds = measure(Path(name).resolve())
        print(f"{Path(name).name}: kernel RSS {rss:.0f} MiB, USS {uss:.0f} MiB after {seconds:.0f} s")
