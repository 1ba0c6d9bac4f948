"""Time utils.functional.conv2d (forward) and conv2d_backward against PyTorch on the CPU.

Run from the repository root:  .venv/bin/python benchmarks/conv2d_vs_torch.py [--repeats N]

The layer: input (32, 3, 64, 64), weight (16, 3, 3, 3), bias, padding 1, float32 - a first conv
layer on a batch of small colour images.  torch uses 2 threads (the course machine's cores); NumPy
uses whatever its BLAS is configured for.  The four measurements are interleaved (one run of each
per round, after a warm-up round) so that all of them see the same machine load; the table shows
the median and the minimum over the rounds, and the ratios utils / torch.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from utils.functional import conv2d, conv2d_backward

INPUT_SHAPE, WEIGHT_SHAPE, PADDING = (32, 3, 64, 64), (16, 3, 3, 3), 1
TARGETS = {"forward": 2.0, "backward": 1.5}   # median utils time / torch time we aim to stay under


def make_problem(seed: int = 0):
    """Random float32 input, weight, bias and an upstream gradient for the benchmark layer."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(INPUT_SHAPE, dtype=np.float32)
    weight = rng.standard_normal(WEIGHT_SHAPE, dtype=np.float32)
    bias = rng.standard_normal(WEIGHT_SHAPE[0], dtype=np.float32)
    grad_output = rng.standard_normal((INPUT_SHAPE[0], WEIGHT_SHAPE[0]) + INPUT_SHAPE[2:],
                                      dtype=np.float32)
    return x, weight, bias, grad_output


def timed(run) -> float:
    """Wall seconds of one ``run()``."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def contenders(x, weight, bias, grad_output) -> dict:
    """name -> closure returning the seconds of one run of that pass."""
    x_t, w_t, b_t = (torch.from_numpy(a) for a in (x, weight, bias))
    grad_t = torch.from_numpy(grad_output)

    def torch_forward():
        with torch.no_grad():
            return timed(lambda: F.conv2d(x_t, w_t, b_t, padding=PADDING))

    def torch_backward():
        # A fresh graph each time; only the backward pass (all three gradients) is timed.
        leaves = [t.detach().requires_grad_() for t in (x_t, w_t, b_t)]
        out = F.conv2d(*leaves, padding=PADDING)
        return timed(lambda: out.backward(grad_t))

    return {("utils", "forward"): lambda: timed(lambda: conv2d(x, weight, bias, padding=PADDING)),
            ("utils", "backward"): lambda: timed(
                lambda: conv2d_backward(grad_output, x, weight, padding=PADDING)),
            ("torch", "forward"): torch_forward,
            ("torch", "backward"): torch_backward}


def measure(repeats: int) -> dict:
    """(library, pass) -> list of ``repeats`` wall times, measured round-robin after a warm-up."""
    runs = contenders(*make_problem())
    for run in runs.values():
        run()
    times = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            times[key].append(run())
    return times


def report(times: dict, repeats: int) -> dict[str, float]:
    """Print the table; return the median ratios utils / torch per pass."""
    print(f"conv2d input {INPUT_SHAPE}, weight {WEIGHT_SHAPE}, bias, padding {PADDING}, float32; "
          f"{repeats} rounds; torch threads = {torch.get_num_threads()}")
    print(f"{'pass':<9}{'statistic':<10}{'utils (ms)':>11}{'torch (ms)':>11}{'ratio':>8}{'target':>8}")
    ratios = {}
    for name in ("forward", "backward"):
        for label, statistic in (("median", statistics.median), ("min", min)):
            ours, theirs = statistic(times["utils", name]), statistic(times["torch", name])
            target = f"{TARGETS[name]:.1f}x" if label == "median" else ""
            print(f"{name:<9}{label:<10}{ours * 1e3:>11.2f}{theirs * 1e3:>11.2f}"
                  f"{ours / theirs:>7.2f}x{target:>8}")
            ratios.setdefault(name, ours / theirs)
    return ratios


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed rounds")
    repeats = parser.parse_args().repeats
    torch.set_num_threads(2)
    report(measure(repeats), repeats)
