"""The benchmark scripts still run against the current utils (they reach into private helpers of
``utils.functional.conv`` and ``_depthwise``, so a refactoring there must not silently break them).  One layer, one
round: this checks that they run and that their own correctness asserts hold, never a speed."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script, args", [
    ("forward_floor.py", ["--repeats", "1", "--only", "16->32 32² k3 p1", "depthwise 128 16² k3 p1"]),
    ("layer_sweep.py", ["--repeats", "1", "--threads", "1", "--only", "16->32"]),
])
def test_benchmark_script_runs(script, args):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| 16->32 32² k3 p1 |" in result.stdout
    if "depthwise 128 16² k3 p1" in args:       # the band products' own path (utils.functional._depthwise)
        assert "| depthwise 128 16² k3 p1 |" in result.stdout


def test_the_sweep_times_calls_that_page_fault_nothing_in():
    """With glibc's mmap threshold left to move, the timed calls of this layer page-faulted their
    arrays in (here 1536-4096 minor faults in a call whose time was in the table, and torch's
    depthwise forward took 0.7-3 ms instead of 0.31); the sweep pins it, and says so."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "layer_sweep.py"), "--repeats", "3",
                             "--threads", "1", "--only", "depthwise", "64->64"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    footer = re.search(r"most minor page faults in a timed call whose time is in the table: "
                       r"torch (\d+), utils (\d+); (.*)", result.stdout)
    assert footer, result.stdout
    assert footer[3] == "glibc mmap threshold pinned at 32 MB"
    assert int(footer[1]) < 64 and int(footer[2]) < 64, footer[0]


def test_the_sweep_counts_the_faults_of_a_call_that_touches_fresh_pages():
    """The footer's count is not a constant: a 64 MB array (above any mmap threshold: fresh pages at
    every call) is 32 faults or more (16384 of 4 kB pages, 32 of 2 MB) in the timed call that made it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import layer_sweep
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import numpy as np
    layer_sweep.FAULTS.clear()
    layer_sweep.seconds(("utils", "probe"), lambda: np.ones(16 << 20, np.float32))
    assert layer_sweep.FAULTS[("utils", "probe")][-1] >= 32     # 2 MB pages where the kernel gives them
