"""Does a second thread speed up the NumPy calls of max pooling's backward?  (benchmarks/README.md,
"Fourth session".)

Run from the repository root: ``.venv/bin/python benchmarks/scatter_threads.py``

Each of two threads works on its own arrays (a 4 MB float32 target, 262144 positions and values, as in
``max_pool2d_backward(..., indices=...)`` on the sweep's 16x64x32x32 map), 20 times per measurement;
printed: the best of 5 of doing both serially and in two threads at once.  ``np.add.at`` (what
``utils.functional._max_search.scatter_to_indices`` uses) holds the GIL, so two threads are no faster;
``np.bincount`` and ``fill`` release it.
"""
from __future__ import annotations

import concurrent.futures
import time

import numpy as np

SIZE = 1 << 20


def best_ms(run, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    work = [(np.zeros(SIZE, np.float32), rng.integers(0, SIZE, SIZE // 4), rng.random(SIZE // 4, dtype=np.float32))
            for _ in range(2)]
    calls = {"np.add.at": lambda t, i, v: np.add.at(t, i, v),
             "np.bincount": lambda t, i, v: np.bincount(i, weights=v, minlength=SIZE),
             "fill": lambda t, i, v: t.fill(0)}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for name, call in calls.items():
            def twenty(arrays, call=call):
                for _ in range(20):
                    call(*arrays)
            serial = best_ms(lambda: [twenty(a) for a in work])
            threaded = best_ms(lambda: list(pool.map(twenty, work)))
            print(f"{name:12s} serial {serial:6.1f} ms   two threads {threaded:6.1f} ms   ({serial / threaded:.2f}x)")


if __name__ == "__main__":
    main()
