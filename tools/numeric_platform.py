"""Which floating-point results this machine computes: a fingerprint for comparing stored outputs.

    python -m tools.numeric_platform      # prints this machine's fingerprint

A seeded training run gives bit-identical weights on one machine, but not on another CPU: torch,
its MKL and oneDNN, and NumPy's OpenBLAS choose their kernels (and so the order of every sum) by
vendor, instruction set and cache sizes.  After a few hundred SGD steps a last-bit difference has
grown into a different third decimal of an accuracy; PyTorch's own reproducibility notes say
results are not guaranteed across platforms.  (Seen here: stored on one x86-64 host, chapter
09's seed-2 CNN scored 0.972; on an AMD EPYC host with the same wheels, 0.964.)

``fingerprint()`` runs the operations the chapters train with -- convolution, ReLU, max
pooling, linear layers, cross-entropy and Adam, forward and backward, on one thread -- and
NumPy's float32 matrix product on fixed inputs, and hashes the resulting bits.  Two machines with
the same fingerprint compute those operations identically.  ``tools.execute_notebooks`` stores it
in every notebook it writes; ``tools.nbval_platform`` compares the cells tagged
``platform-dependent-output`` only where it matches.  Course infrastructure.
"""
from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METADATA_KEY = "numeric_platform"      # nb.metadata["convcourse"][METADATA_KEY]


def _probe_bits() -> bytes:
    """The bits of a short seeded training run and of a matrix product (one thread)."""
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(1)      # as every chapter that trains: results change with the thread count
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 4 * 4, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.rand(64, 1, 16, 16, generator=generator)
    y = torch.randint(0, 10, (64,), generator=generator)
    for _ in range(5):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    weights = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(shape, dtype=np.float32) for shape in ((64, 288), (288, 1024)))
    return weights + np.matmul(a, b).tobytes()


def _compute() -> str:
    return hashlib.sha256(_probe_bits()).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def fingerprint() -> str:
    """16 hex digits naming the floating-point results of this machine and these wheels.

    Computed in a fresh interpreter, so that nothing this process set (threads, flags) leaks in,
    with the environment a notebook kernel inherits.
    """
    result = subprocess.run([sys.executable, "-m", "tools.numeric_platform"], cwd=ROOT, env=dict(os.environ),
                            capture_output=True, text=True, timeout=300, check=True)
    return result.stdout.strip()


if __name__ == "__main__":
    print(_compute())
