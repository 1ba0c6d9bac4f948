"""Sweep utils.functional against PyTorch over the layer shapes of a real CNN (issue 10).

Run from the repository root:

    .venv/bin/python benchmarks/layer_sweep.py [--repeats 5] [--threads 1 2] [--only NAME ...]
        [--before DIR] [--default-allocator]

``--before DIR`` also times another copy of ``utils/functional`` (e.g. an older commit's, from
``git archive``) in the same rounds, so that before and after see the same machine load.

For every layer (float32) and every thread count, four passes are timed round-robin after a
warm-up: utils forward, torch forward, utils backward, torch backward (all gradients: input,
weight, bias; for torch a fresh graph each round and only ``backward()`` timed).  Max pooling has
three more pass pairs in the same rounds, because torch's backward reuses the argmax positions
its forward saved (``max_pool2d_with_indices_backward``) while ``max_pool2d_backward`` without
``indices`` searches the maxima again: *forward with indices* (``return_indices=True`` on both
sides), *backward with indices* (utils: ``indices=`` from its own forward; torch: autograd, as
always), and the *pair* forward-with-indices + backward-with-indices, timed as one call (torch: a
fresh graph through ``F.max_pool2d(..., return_indices=True)``, then ``backward()``).  The rows
without indices stay, labelled.  NumPy's BLAS and
torch get the same number of threads (threadpoolctl / ``torch.set_num_threads``).  Printed per row:

* ``ms``: the best round (minimum, the least disturbed by other processes) of utils and torch;
* ``ratio``: utils / torch from the same run (the result; milliseconds depend on the machine);
* ``CPU ratio``: the same from CPU seconds (process_time), which do not count waiting for a core;
* ``GMAC/s``: multiply-adds per second (backward counts 2x the forward's multiply-adds: one GEMM
  for grad_input and one for grad_weight);
* ``%peak``: that rate as a fraction of the machine's measured matmul peak (float32
  ``np.matmul`` of square 512 and 1024 matrices, the best, with the same threads) - 2 FLOP per
  multiply-add;
* ``temp MB``: peak NumPy memory allocated during the utils pass beyond its result
  (tracemalloc), beside ``budget MB`` = the im2col matrix plus the output.

Each table's header gives the machine's state at that thread count: the matmul peak, the copy
bandwidth of 64 MB per thread (main memory) and of 1 MB per thread (in cache), each with every
thread copying at once, and the load average.  On a shared machine (or a VM whose host is busy)
these move by 1.5x from hour to hour: compare ratios from one run.  With two or more threads each
timed pass starts after a 0.3 s pause (``SETTLE_SECONDS``: spinning OpenBLAS threads, see there).

glibc's mmap threshold is pinned first (:func:`pin_allocator`; ``--default-allocator`` leaves it
alone), so that neither library page-faults its arrays in at every call; each table ends with the
most minor page faults of a call whose time is in it (each pass's fastest round), per library.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import importlib.util
import inspect
import math
import os
import re
import resource
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from utils.functional import (conv2d, conv2d_backward, conv_output_size, max_pool2d,
                              max_pool2d_backward)


@dataclass
class Layer:
    """One layer of the sweep, written in the issue's notation and parsed by :func:`parse_layer`.

    ``options`` are the keyword arguments of the call, passed unchanged to both libraries:
    ``conv2d(x, w, b, **options)`` / ``F.conv2d(...)``, or ``max_pool2d(x, **options)``.
    """
    name: str                          # the notation without the batch size
    input_shape: tuple                 # (N, C_in, H, W), square maps
    out_channels: int
    kernel: int
    options: dict
    pool: bool = False                 # max_pool2d instead of a convolution

    def out_size(self) -> int:
        conv = {key: self.options[key] for key in ("stride", "padding", "dilation") if key in self.options}
        return conv_output_size(self.input_shape[2], self.kernel, **conv)

    def macs(self) -> int:
        """Multiply-adds of the forward pass (comparisons for pooling)."""
        n, c_in = self.input_shape[:2]
        per_output = self.kernel ** 2 * (1 if self.pool else c_in // self.options["groups"])
        return n * self.out_channels * self.out_size() ** 2 * per_output

    def im2col_bytes(self) -> int:
        n, c_in = self.input_shape[:2]
        return 0 if self.pool else 4 * n * c_in * self.kernel ** 2 * self.out_size() ** 2


def parse_layer(spec: str) -> Layer:
    """The issue's notation -> Layer: ``"N32 3->16 64² k3 p1"`` (batch, channels in->out, map size,
    kernel, then optional ``sS`` stride, ``pP`` padding, ``dD`` dilation), ``"N16 depthwise 128 16²
    k3 p1"`` (groups = channels), ``"N16 maxpool 3x3 s2 on 64x32²"`` (stride defaults to the kernel,
    as in torch)."""
    batch, *words = spec.split()
    n, name = int(batch.removeprefix("N")), " ".join(words)
    if words[0] == "maxpool":
        kernel = int(words[1].split("x")[0])
        channels, size = map(int, re.fullmatch(r"(\d+)x(\d+)²", words[-1]).groups())
        letters = dict(re.fullmatch(r"([s])(\d+)", w).groups() for w in words[2:-2])
        options = dict(kernel_size=kernel, stride=int(letters.get("s", kernel)))
        return Layer(name, (n, channels, size, size), channels, kernel, options, pool=True)
    if words[0] == "depthwise":
        c_in = c_out = groups = int(words[1])
        words = words[2:]
    else:
        c_in, c_out = map(int, words[0].split("->"))
        groups, words = 1, words[1:]
    size = int(words[0].removesuffix("²"))
    letters = dict(re.fullmatch(r"([kspd])(\d+)", w).groups() for w in words[1:])
    options = dict(stride=int(letters.get("s", 1)), padding=int(letters.get("p", 0)),
                   dilation=int(letters.get("d", 1)), groups=groups)
    return Layer(name, (n, c_in, size, size), c_out, int(letters["k"]), options)


LAYERS = [parse_layer(spec) for spec in (
    "N32 3->16 64² k3 p1",
    "N32 16->32 32² k3 p1",
    "N16 64->64 32² k3 p1",
    "N16 128->128 16² k3 p1",
    "N16 256->256 8² k3 p1",
    "N16 64->128 32² k3 s2 p1",
    "N16 128->256 16² k1",
    "N4 3->64 112² k7 s2 p3",
    "N16 depthwise 128 16² k3 p1",
    "N16 32->32 32² k3 p2 d2",
    "N16 maxpool 2x2 on 64x32²",
    "N16 maxpool 3x3 s2 on 64x32²",
)]
TARGETS = {"regular": 2.0, "depthwise": 3.0, "pool": 2.0, "geomean": 1.5}


def kind(layer: Layer) -> str:
    return "pool" if layer.pool else "depthwise" if layer.options["groups"] > 1 else "regular"


def problem(layer: Layer, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, c_in = layer.input_shape[:2]
    x = rng.standard_normal(layer.input_shape, dtype=np.float32)
    out = layer.out_size()
    grad = rng.standard_normal((n, layer.out_channels, out, out), dtype=np.float32)
    if layer.pool:
        return x, None, None, grad
    per_group = c_in // layer.options["groups"]
    w = rng.standard_normal((layer.out_channels, per_group, layer.kernel, layer.kernel),
                            dtype=np.float32) / math.sqrt(per_group * layer.kernel ** 2)
    b = rng.standard_normal(layer.out_channels, dtype=np.float32)
    return x, w, b, grad


def load_functional(directory: str):
    """Import a copy of the utils/functional package from ``directory`` under another name."""
    spec = importlib.util.spec_from_file_location(
        "functional_before", os.path.join(directory, "__init__.py"),
        submodule_search_locations=[directory])
    module = importlib.util.module_from_spec(spec)
    import sys
    sys.modules["functional_before"] = module
    spec.loader.exec_module(module)
    return module


BEFORE = None       # the --before copy of utils.functional, if any


POOL_PASSES = ("forward", "backward", "forward+indices", "backward+indices", "pair")
LABELS = {"forward": "forward (no indices)", "backward": "backward (search, no indices)",
          "forward+indices": "forward with indices", "backward+indices": "backward with indices",
          "pair": "forward + backward, with indices"}
FACTORS = {"forward": 1, "backward": 2, "forward+indices": 1, "backward+indices": 2, "pair": 3}
# torch passes that build their autograd graph untimed before each timed call
TWO_STAGE = {("torch", "backward"), ("torch", "backward+indices")}


def pass_names(layer: Layer) -> tuple[str, ...]:
    return POOL_PASSES if layer.pool else ("forward", "backward")


def passes(layer: Layer):
    """{(library, pass): zero-argument function running that pass once}."""
    runs = _passes(layer, conv2d, conv2d_backward, max_pool2d, max_pool2d_backward)
    if BEFORE is not None:
        old = _passes(layer, BEFORE.conv2d, BEFORE.conv2d_backward, BEFORE.max_pool2d,
                      BEFORE.max_pool2d_backward)
        runs.update({("before", p): run for (library, p), run in old.items() if library == "utils"})
    return runs


def _passes(layer: Layer, conv2d, conv2d_backward, max_pool2d, max_pool2d_backward):
    x, w, b, grad = problem(layer)
    xt, gt = torch.from_numpy(x), torch.from_numpy(grad)
    args = layer.options
    if layer.pool:

        def torch_backward():
            leaf = xt.detach().requires_grad_()
            out = F.max_pool2d(leaf, **args)
            return lambda: out.backward(gt)

        def torch_pair():
            leaf = xt.detach().requires_grad_()
            out, _ = F.max_pool2d(leaf, **args, return_indices=True)
            out.backward(gt)
            return leaf.grad

        def utils_pair():
            _, indices = max_pool2d(x, **args, return_indices=True)
            return max_pool2d_backward(grad, x, **args, indices=indices)
        runs = {("utils", "forward"): lambda: max_pool2d(x, **args),
                ("torch", "forward"): lambda: F.max_pool2d(xt, **args),
                ("utils", "backward"): lambda: max_pool2d_backward(grad, x, **args),
                ("torch", "backward"): torch_backward,
                ("utils", "forward+indices"): lambda: max_pool2d(x, **args, return_indices=True),
                ("torch", "forward+indices"): lambda: F.max_pool2d(xt, **args, return_indices=True)}
        if "indices" not in inspect.signature(max_pool2d_backward).parameters:
            return runs                               # a --before copy without indices=
        _, indices = max_pool2d(x, **args, return_indices=True)
        np.testing.assert_array_equal(indices, F.max_pool2d(xt, **args, return_indices=True)[1])
        np.testing.assert_allclose(utils_pair(), torch_pair().numpy(), rtol=1e-6, atol=1e-6)
        runs.update({
            ("utils", "backward+indices"): lambda: max_pool2d_backward(grad, x, **args,
                                                                       indices=indices),
            ("torch", "backward+indices"): torch_backward,
            ("utils", "pair"): utils_pair, ("torch", "pair"): torch_pair})
        return runs
    wt, bt = torch.from_numpy(w), torch.from_numpy(b)

    def torch_backward():
        leaves = [t.detach().requires_grad_() for t in (xt, wt, bt)]
        out = F.conv2d(*leaves, **args)
        return lambda: out.backward(gt)
    return {("utils", "forward"): lambda: conv2d(x, w, b, **args),
            ("torch", "forward"): lambda: F.conv2d(xt, wt, bt, **args),
            ("utils", "backward"): lambda: conv2d_backward(grad, x, w, **args),
            ("torch", "backward"): torch_backward}


# With several threads, a pause before each timed pass.  OpenBLAS's worker threads keep spinning on
# a core for 0.1-0.3 s after a multi-threaded product (its THREAD_TIMEOUT), and that core is then
# missing from whatever runs next: here a torch 16->32 convolution at 2 threads took 10.6-13.6 ms
# right after a 512x512 OpenBLAS product at 2 threads and 5.6-7.8 ms after a 0.3 s pause, and ours
# 9.9-10.1 against 6.9-8.2 ms.  The ``--before`` code multiplies with OpenBLAS threads, so
# without the pause it slowed the pass after it (torch's as well as ours).
SETTLE = {"seconds": 0.0}
SETTLE_SECONDS = 0.3


# glibc's malloc gives blocks over its mmap threshold (128 kB at first) their own pages, and returns
# them at free(), so a pass that allocates its output page-faults it in again on every call.  It
# raises the threshold by itself once such a block is freed, so whether a pass faulted depended on
# what ran before it.  Measured here (eighth session): torch's depthwise forward took 0.7-3 ms with
# 480 minor faults a call and 0.31 ms with none, its backward 2.6 ms against 1.2 ms; the sweep's
# depthwise ratio moved from 1.8x to 3.3x between runs.  Pinned, both libraries reuse heap pages.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3        # glibc's mallopt parameters (malloc.h)
PINNED_MMAP_BYTES = 32 << 20                         # glibc's largest allowed threshold on 64-bit
FAULTS = {}                                          # (library, pass) -> minor faults of each timed run
ALLOCATOR = {"state": "glibc's default allocator (mmap threshold free to move)"}


def pin_allocator() -> bool | None:
    """Fix glibc's mmap threshold at 32 MB (and trim at twice that), so no pass page-faults its
    arrays in at each call.  False if ``mallopt`` refused a value, None where there is no
    ``mallopt`` (not glibc); the sweep runs either way and says which."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return None
    return all(mallopt(option, value) == 1 for option, value in
               ((M_MMAP_THRESHOLD, PINNED_MMAP_BYTES), (M_TRIM_THRESHOLD, 2 * PINNED_MMAP_BYTES)))


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def seconds(key, run) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; torch's backward builds its graph untimed first.

    CPU seconds (the whole process, all its threads) do not count the time the process waited for
    a core, so on a busy machine they are the steadier measure of how much work each library does.
    """
    if key in TWO_STAGE:
        run = run()
    if SETTLE["seconds"]:
        time.sleep(SETTLE["seconds"])
    faults = minor_faults()
    start, start_cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    if key is not None:
        FAULTS.setdefault(key, []).append(minor_faults() - faults)
    return wall, cpu


def temporary_mb(run) -> float:
    """Peak traced allocation during ``run()`` minus the size of what it returns, in MB."""
    tracemalloc.start()
    result = run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    results = result if isinstance(result, tuple) else (result,)
    return (peak - sum(r.nbytes for r in results)) / 1e6


def matmul_peak_gflops(repeats: int = 10, sizes=(512, 1024)) -> float:
    """Best GFLOP/s of a float32 (size x size) @ (size x size) np.matmul over a few sizes.

    Short products: on a shared machine a short run is more often undisturbed, and 512 is already
    large enough for OpenBLAS to reach its peak; 1024 in case a busy moment spoilt every 512 run."""
    rng = np.random.default_rng(0)
    best = 0.0
    for size in sizes:
        a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
        a @ b
        seconds_best = min(seconds(None, lambda: a @ b)[0] for _ in range(repeats))
        best = max(best, 2 * size ** 3 / seconds_best / 1e9)
    return best


def copy_bandwidth_gbs(threads: int = 1, repeats: int = 10, megabytes: int = 64) -> float:
    """Best GB/s (bytes read + written) of ``np.copyto`` between two float32 arrays of
    ``megabytes`` per thread, in ``threads`` Python threads at once (NumPy releases the GIL in
    copies), each copying its own arrays.

    64 MB is the main-memory bound that a NumPy pass over data not in cache cannot beat; 1 MB
    (an im2col block, ``conv.BLOCK_BYTES``) stays in a core's cache and is copied 64 times per
    measurement, so that handing the work to the threads (~0.1 ms) does not count.  Measured at
    each thread count, so the table says whether a second thread makes the copies around the
    matrix products any faster on this machine (the products' own scaling is the matmul peak's)."""
    arrays = [(np.empty(megabytes << 18, dtype=np.float32), np.ones(megabytes << 18, dtype=np.float32))
              for _ in range(threads)]
    times = max(1, 64 // megabytes)
    pool = concurrent.futures.ThreadPoolExecutor(threads)

    def copy_own(pair) -> None:
        for _ in range(times):
            np.copyto(*pair)

    def copy() -> None:
        if threads == 1:
            copy_own(arrays[0])
        else:
            list(pool.map(copy_own, arrays))

    copy()
    best = min(seconds(None, copy)[0] for _ in range(repeats))
    pool.shutdown()
    return 2 * threads * times * arrays[0][0].nbytes / best / 1e9


def measure(layer: Layer, repeats: int) -> dict:
    runs = passes(layer)
    for key, run in runs.items():
        seconds(key, run)
    times = {key: [] for key in runs}
    FAULTS.clear()
    for _ in range(repeats):
        for key, run in runs.items():
            times[key].append(seconds(key, run))
    row = {key: min(wall for wall, _ in values) for key, values in times.items()}
    row["cpu"] = {key: min(cpu for _, cpu in values) for key, values in times.items()}
    # the faults of the round each minimum comes from (the first round grows the heap: faults)
    row["faults"] = {key: FAULTS[key][-repeats:][int(np.argmin([wall for wall, _ in times[key]]))]
                     for key in runs}
    row["temp"] = {p: temporary_mb(runs["utils", p]) for p in pass_names(layer)}
    return row


def sweep(layers, threads: int, repeats: int) -> list[float]:
    with threadpool_limits(threads):
        torch.set_num_threads(threads)
        SETTLE["seconds"] = SETTLE_SECONDS if threads > 1 else 0.0
        peak = matmul_peak_gflops()
        print(f"\n### {threads} thread(s): matmul peak {peak:.0f} GFLOP/s; "
              f"copy bandwidth {copy_bandwidth_gbs(threads):.1f} GB/s (64 MB a thread), "
              f"{copy_bandwidth_gbs(threads, megabytes=1):.1f} GB/s (1 MB a thread, in cache); "
              f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {repeats} rounds, min")
        before = " before ratio | before CPU ratio |" if BEFORE is not None else ""
        print(f"| layer | pass |{before} utils ms | torch ms | ratio | CPU ratio | utils GMAC/s "
              "| torch GMAC/s | utils %peak | torch %peak | temp MB | budget MB |")
        print("|---|---|" + ("---:|---:|" if before else "") + "---:|" * 10)
        ratios, before_ratios, faults = [], [], {}
        for layer in layers:
            row = measure(layer, repeats)
            for (library, _), count in row["faults"].items():
                faults[library] = max(faults.get(library, 0), count)
            out_mb = 4 * layer.input_shape[0] * layer.out_channels * layer.out_size() ** 2 / 1e6
            for p in pass_names(layer):
                ours, theirs = row["utils", p], row["torch", p]
                rates = [FACTORS[p] * layer.macs() / t / 1e9 for t in (ours, theirs)]
                # output (+ int64 indices, twice its bytes) forward; twice the output backward
                outputs = {"forward": 1, "backward": 2, "forward+indices": 3,
                           "backward+indices": 2, "pair": 5}[p]
                budget = layer.im2col_bytes() / 1e6 + out_mb * outputs
                ratio = ours / theirs
                cpu_ratio = row["cpu"]["utils", p] / max(row["cpu"]["torch", p], 1e-6)
                if kind(layer) == "regular":
                    ratios.append(ratio)
                flag = "" if ratio <= TARGETS[kind(layer)] else " ✗"
                old = ""
                if BEFORE is not None and ("before", p) not in row:
                    old = " – | – |"
                elif BEFORE is not None:
                    old_cpu = row["cpu"]["before", p] / max(row["cpu"]["torch", p], 1e-6)
                    old = f" {row['before', p] / theirs:.2f}× | {old_cpu:.2f}× |"
                    if kind(layer) == "regular":
                        before_ratios.append(row["before", p] / theirs)
                print(f"| {layer.name} | {LABELS[p] if layer.pool else p} |{old} {ours * 1e3:.2f} | {theirs * 1e3:.2f} | "
                      f"{ratio:.2f}×{flag} | {cpu_ratio:.2f}× | {rates[0]:.1f} | {rates[1]:.1f} | "
                      f"{100 * 2 * rates[0] / peak:.0f}% | {100 * 2 * rates[1] / peak:.0f}% | "
                      f"{row['temp'][p]:.1f} | {budget:.1f} |", flush=True)
        if ratios:
            geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
            print(f"\ngeometric mean of the regular layers' ratios (forward and backward): "
                  f"{geomean:.2f}× (target {TARGETS['geomean']}×); "
                  + (f"before: {math.exp(sum(map(math.log, before_ratios)) / len(before_ratios)):.2f}×; "
                     if before_ratios else "") +
                  f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print("most minor page faults in a timed call whose time is in the table: " + ", ".join(f"{library} {count:.0f}" for library, count in
                                             sorted(faults.items())) + f"; {ALLOCATOR['state']}")
        return ratios


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per pass")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", default=None,
                        help="substrings of layer names to run (default: all)")
    parser.add_argument("--before", default=None,
                        help="directory of another utils/functional to time in the same rounds")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's mmap threshold to move as it likes (see pin_allocator)")
    options = parser.parse_args()
    if not options.default_allocator:
        ALLOCATOR["state"] = {True: "glibc mmap threshold pinned at 32 MB",
                              False: "mallopt refused the 32 MB threshold: allocator as it is",
                              None: "no glibc mallopt here: allocator as it is"}[pin_allocator()]
    if options.before:
        BEFORE = load_functional(options.before)
    chosen = [layer for layer in LAYERS
              if options.only is None or any(s in layer.name for s in options.only)]
    for threads in options.threads:
        sweep(chosen, threads, options.repeats)
