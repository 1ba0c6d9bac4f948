"""Several trainings at once, one core each (chapters 08 and 09).

The chapters fix torch at one thread, because trained weights change with the thread count.  A machine
with more cores can still train several seeds at the same time: each job runs in its own Python thread
with torch at the caller's thread count there too (torch releases the GIL while it computes, so the
threads share the cores, not one core).  Each job runs the same operations, in the same order, on the
same number of threads as it would alone, so its results are bit-identical to the plain loop's
(``tests/test_cores.py`` checks it on the chapters' models); only the wall time changes.

Two conditions make that true, and both are the caller's to keep: the jobs share no model or optimizer,
and no job draws random numbers from torch's *global* generator while it runs (build and seed the models
before; :func:`utils.models.train` takes the batch order from its own seeded generator).  Jobs that
reseed the global generator (``train`` does) would leave it in a state that depends on which finished
last, so :func:`map_on_cores` puts it back as it was before the call.
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import Callable, Iterable

import torch


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity; ``os.cpu_count()`` where that is unknown).
    Used first in chapter 08."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


def map_on_cores(function: Callable, *iterables: Iterable, workers: int | None = None) -> list:
    """``list(map(function, *iterables))``, with up to ``workers`` calls running at once.

    Each call runs in a thread of its own with torch at the caller's thread count
    (``torch.get_num_threads()``).  ``workers`` defaults to every job at once, up to two per core
    (usable cores / torch threads): three seeds on two cores then take about half the time of the loop,
    where two workers leave a core idle while the third seed trains alone (measured: 12.8 s as a loop,
    7.0 s with two workers, 5.7 s with three).  One worker is the plain loop, in this thread.
    Results come back in the order of the items; the first exception (in item order) is raised here.
    torch's global random generator is left as it was before the call (see the module docstring).

    >>> map_on_cores(lambda a, b: a * b, [1, 2, 3], [4, 5, 6])
    [4, 10, 18]

    Used first in chapter 08.
    """
    jobs = list(zip(*iterables))
    threads = torch.get_num_threads()
    if workers is None:
        workers = min(len(jobs), 2 * max(1, usable_cores() // threads))
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")

    def run(job):
        torch.set_num_threads(threads)      # a new thread may start at torch's default count
        return function(*job)

    state = torch.random.get_rng_state()    # restored on every path, so that no later cell depends on the cores
    try:
        if workers == 1 or len(jobs) < 2:
            return [function(*job) for job in jobs]
        with concurrent.futures.ThreadPoolExecutor(min(workers, len(jobs)), "map-on-cores") as pool:
            return list(pool.map(run, jobs))
    finally:
        torch.random.set_rng_state(state)
