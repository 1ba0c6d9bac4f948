"""tools.numeric_platform and tools.nbval_platform: trained numbers are compared strictly exactly
where the machine computes the same bits as the one that stored them."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools.nbval_platform import TAG, compare_strictly
from tools.numeric_platform import METADATA_KEY, fingerprint
from utils import course

ROOT = Path(__file__).resolve().parents[1]
CPUINFO = Path("/proc/cpuinfo")
# An x86-64 CPU with AVX2, where the kernels can be forced to another instruction set.
HAS_AVX2 = CPUINFO.exists() and "avx2" in CPUINFO.read_text()


def tagged(tags):
    return nbformat.v4.new_code_cell("x = 1", metadata={"tags": tags})


def test_only_a_tagged_cell_on_another_machine_is_compared_loosely():
    assert compare_strictly(tagged([]), "aaaa", "bbbb")
    assert compare_strictly(tagged([TAG]), "aaaa", "aaaa")
    assert not compare_strictly(tagged([TAG]), "aaaa", "bbbb")
    assert not compare_strictly(tagged([TAG]), None, "bbbb")       # never recorded: not this machine's


def probe(**env):
    return subprocess.run([sys.executable, "-m", "tools.numeric_platform"], cwd=ROOT, capture_output=True,
                          text=True, check=True, env={**os.environ, **env}).stdout.strip()


def test_the_fingerprint_is_repeatable_and_ignores_settings_that_change_no_result():
    assert len(fingerprint()) == 16
    assert probe() == probe(OMP_NUM_THREADS="2", OMP_WAIT_POLICY="ACTIVE") == fingerprint()


@pytest.mark.skipif(not HAS_AVX2,
                    reason="needs an x86-64 CPU with AVX2")
@pytest.mark.parametrize("other_kernels", [{"ATEN_CPU_CAPABILITY": "default"},   # torch's own kernels
                                           {"ONEDNN_MAX_CPU_ISA": "SSE41"},       # its convolutions
                                           {"MKL_CBWR": "COMPATIBLE"},            # its matrix products
                                           {"OPENBLAS_CORETYPE": "Prescott"}])    # NumPy's
def test_the_fingerprint_changes_when_one_library_computes_with_other_kernels(other_kernels):
    # What another CPU does to one of these libraries, forced on this one.
    assert probe(**other_kernels) != fingerprint()


def notebook(tmp_path, stored_platform):
    """One cell tagged platform-dependent-output and one untagged, both with a wrong stored output."""
    cells = []
    for tags in ([TAG], []):
        cell = nbformat.v4.new_code_cell("print(2 + 2)\nassert 2 + 2 == 4", metadata={"tags": tags}, execution_count=len(cells) + 1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="5\n")]
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                          "language": "python"},
                                                         "convcourse": {METADATA_KEY: stored_platform}})
    path = tmp_path / "trained.ipynb"
    nbformat.write(nb, path)
    return path


def run_nbval(path):
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tools.nbval_platform",
                             "--nbval", "-rA", str(path)], cwd=path.parent, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    return result.stdout


@pytest.mark.parametrize("same_machine", [True, False])
def test_nbval_compares_the_tagged_cell_only_on_the_machine_that_stored_it(tmp_path, same_machine):
    out = run_nbval(notebook(tmp_path, fingerprint() if same_machine else "0123456789abcdef"))
    assert "FAILED trained.ipynb::Cell 1" in out, out                     # untagged: strict everywhere
    assert ("FAILED trained.ipynb::Cell 0" in out) == same_machine, out
    assert ("cells tagged platform-dependent-output ran with their asserts" in out) == (not same_machine), out


# What a CPU without AVX-512 computes, forced on this one: torch's own kernels and its convolutions
# (oneDNN) at AVX2.  Chapters 05-10 train networks.
AVX2_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
TRAINING_CHAPTERS = [ROOT / c.path for c in course.CHAPTERS if int(c.number) >= 5]


@pytest.mark.skipif(not HAS_AVX2,
                    reason="needs an x86-64 CPU with AVX2")
def test_the_training_chapters_hold_their_claims_on_another_cpus_kernels():
    """Chapters 05-10 run with other kernels, and every claim they assert holds on the numbers those
    give.  (--nbval-lax: outputs are not compared, since another host's forced kernels are yet another
    platform.  Compared strictly, on this session's host all untagged outputs matched too.)"""
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
                             *map(str, TRAINING_CHAPTERS)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **AVX2_KERNELS}, timeout=1200)
    assert result.returncode == 0, result.stdout[-6000:]
    if probe(**AVX2_KERNELS) != fingerprint():      # a CPU whose own kernels are AVX2 computes as stored
        assert "cells tagged platform-dependent-output ran with their asserts" in result.stdout
