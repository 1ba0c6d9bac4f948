"""Convolutions on several cores: the batch split between threads, NumPy's BLAS at one thread each.

A multi-threaded BLAS splits each matrix product between its threads, but the im2col copies
around the products run on one core, and the products of a small layer are too short to be worth
the threads' synchronisation (benchmarks/README.md: 16->32 channels on 32x32 maps ran 2-3x slower
than torch at two threads, 1.5-2x at one).  Here instead each of ``k`` Python threads runs the
one-thread code on its share of the images (NumPy releases the GIL inside copies and products),
with the BLAS set to one thread for the duration and restored after; ``k`` is the number of
threads NumPy's BLAS was set to (``threadpoolctl.threadpool_limits``), so one BLAS thread means
the plain serial call.  Every image is computed exactly as in the serial call; only sums over
the batch (grad_weight) add the shares in another order.

Used first in chapter 02 (section 7, BLAS threads).
"""
from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

# Each thread gets at least this many multiply-adds, or fewer threads are used: below it the
# threads' start-up and hand-over (~0.1 ms) cost more than they save.
MIN_MACS_PER_THREAD = 20_000_000
PARTS_PER_THREAD = 2

_lock = threading.Lock()                 # the BLAS thread count is global: one section at a time
_state: dict = {}


def _blas_libraries() -> list:
    if "blas" not in _state:
        _state["blas"] = ThreadpoolController().select(user_api="blas").lib_controllers
    return _state["blas"]


def shares() -> int:
    """How many threads are splitting a batch right now (1 outside :func:`map_images`): each
    share's blocks get that fraction of the block budget, so the temporary memory stays that of
    the serial call.

    Used first in chapter 02.
    """
    return _state.get("parts", 1)


def map_images(function, n: int, macs: int) -> list:
    """``[function(images) for images in parts]``: ``parts`` are slices covering ``range(n)``, one
    per thread NumPy's BLAS may use (fewer if ``n`` or the ``macs`` multiply-adds are too few),
    run in parallel with the BLAS at one thread each; one part, run directly, otherwise.

    Used first in chapter 02.
    """
    libraries = _blas_libraries()
    threads = min(max([library.num_threads for library in libraries] + [1]), n,
                  macs // max(MIN_MACS_PER_THREAD, 1))
    if threads < 2 or not _lock.acquire(blocking=False):   # nested or concurrent: run serially
        return [function(slice(0, n))]
    try:
        saved = [library.num_threads for library in libraries]
        for library in libraries:
            library.set_num_threads(1)
        try:
            _state["parts"] = threads
            # PARTS_PER_THREAD parts per thread, taken in turn by whichever thread is free: on a
            # shared machine, a thread whose core is busy with another program does fewer
            parts = min(n, PARTS_PER_THREAD * threads, macs // max(MIN_MACS_PER_THREAD, 1))
            bounds = np.linspace(0, n, parts + 1).round().astype(int)
            if "pool" not in _state or _state["pool"]._max_workers != threads:
                _state["pool"] = concurrent.futures.ThreadPoolExecutor(threads, "utils-conv")
            return list(_state["pool"].map(function, [slice(a, b) for a, b in
                                                      zip(bounds[:-1], bounds[1:])]))
        finally:
            _state["parts"] = 1
            for library, count in zip(libraries, saved):
                library.set_num_threads(count)
    finally:
        _lock.release()
