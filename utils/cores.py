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
import math
import os
from pathlib import Path
from typing import Callable, Iterable

import torch


def usable_cores() -> int:
    """The CPUs this process may use: its affinity (``os.cpu_count()`` where that is unknown), fewer
    where a cgroup CPU limit allows less time (:func:`cpu_quota`).  Used first in chapter 08."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def cpu_quota(cgroup_root: str = "/sys/fs/cgroup", own: str = "/proc/self/cgroup") -> float | None:
    """How many CPUs' worth of time a cgroup limit leaves this process, or None (no limit found).

    A container's ``--cpus``, or a JupyterHub spawner's ``cpu_limit``, is such a limit: the process
    still sees every core of the host in its affinity, and a job per core would only queue for the
    allowed share.  The tightest limit of the process's own cgroup and its parents, cgroup v2
    (``cpu.max``: quota period) or v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``).
    Used first in chapter 08.
    """
    try:
        lines = Path(own).read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        try:
            _, controllers, path = line.split(":", 2)
            if controllers == "":                                      # v2: one unified tree
                base = Path(cgroup_root)
            elif "cpu" in controllers.split(","):                      # v1: the cpu controller's tree
                base = next((d for d in (Path(cgroup_root) / "cpu", Path(cgroup_root) / controllers)
                             if d.is_dir()), None)
            else:
                continue
        except (ValueError, OSError):      # a line not of the form id:controllers:path, an unreadable mount
            continue
        if base is None:
            continue
        group = base / path.lstrip("/")
        for directory in (group, *group.parents):
            limits.append(_cgroup_limit(directory, v2=controllers == ""))
            if directory == base:
                break
    limits = [limit for limit in limits if limit is not None]
    return min(limits) if limits else None


def _cgroup_limit(directory: Path, v2: bool) -> float | None:
    """CPUs' worth of time one cgroup directory allows; None for no limit or no such file."""
    names = ("cpu.max",) if v2 else ("cpu.cfs_quota_us", "cpu.cfs_period_us")
    try:
        quota, period = " ".join((directory / name).read_text() for name in names).split()
        quota, period = (None if quota == "max" else int(quota)), int(period)
    except (OSError, ValueError):
        return None
    return quota / period if quota is not None and quota > 0 and period > 0 else None


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
