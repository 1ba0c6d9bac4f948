"""Where a convolution's forward time goes, against the floor NumPy allows (issue 10).

Run from the repository root:

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/forward_floor.py [--repeats 15] [--only NAME ...]

For the layers of ``layer_sweep.py`` whose forward pass went over the 2.0x target in some sweep
(3->64 7x7/2 and the dilated 32->32 at one thread, 16->32 at two; and 64->64, within it, for
contrast), and the depthwise layer's (over 3.0x in some), one thread, float32, best of ``--repeats``
rounds (round-robin), it times:

* ``torch``: ``F.conv2d``, the layer as torch runs it (oneDNN: no im2col matrix);
* ``utils``: ``utils.functional.conv2d``;
* ``im2col``: only utils' im2col copies, every block of the batch (``conv._column_blocks``);
* ``GEMM``: only utils' matrix products (``np.matmul``, OpenBLAS), each on one block filled beforehand
  and kept in cache, as utils' own loop reuses one block buffer;
* ``GEMM in torch``: the same products with ``torch.matmul`` on the same arrays (torch's own BLAS),
  to separate the library's matrix-multiply speed from NumPy's;
* ``copy floor``: the im2col bytes (read + written) at the in-cache copy bandwidth measured now
  (1 MB blocks, ``layer_sweep.copy_bandwidth_gbs``): the least an im2col copy can take here.

For the depthwise layer the same columns time its band products (``_depthwise``): ``im2col`` is its
copies in and out of the stacked planes, ``GEMM`` the band matrix products (see :func:`depthwise_parts`).

Everything is a ratio to torch's layer from the same rounds.  ``GEMM + copy floor`` is the least
utils' im2col layout can take with ``np.matmul``: the products as they run now, plus a copy at full
bandwidth.  ``GEMM`` alone against ``GEMM in torch`` separates what NumPy's BLAS costs from what the
im2col method costs; torch's convolution itself needs no im2col matrix at all.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layer_sweep import (LAYERS, copy_bandwidth_gbs, matmul_peak_gflops, pin_allocator,  # noqa: E402
                         problem)
from utils.functional import _depthwise, conv, conv2d  # noqa: E402

DEFAULT = ("16->32 32² k3 p1", "3->64 112² k7 s2 p3", "32->32 32² k3 p2 d2", "64->64 32² k3 p1",
           "depthwise 128 16² k3 p1")


def check_and_warm_torch(x, w, b, opts: dict) -> None:
    """utils' layer agrees with torch's; then one autograd backward of torch's, as in layer_sweep's
    rounds: here torch's forward of a layer ran 1.5x faster after it (16->32: 7.2-7.8 ms before,
    4.6-5.1 ms after), so without it the ratios would flatter utils."""
    tx, tw, tb = map(torch.from_numpy, (x, w, b))
    with torch.no_grad():
        assert np.allclose(conv2d(x, w, b, **opts), F.conv2d(tx, tw, tb, **opts).numpy(), atol=1e-3)
    leaves = [t.detach().requires_grad_() for t in (tx, tw, tb)]
    F.conv2d(*leaves, **opts).sum().backward()


def parts(layer):
    """The five timed callables of one layer (all on the same arrays) and the bytes its copies move."""
    if layer.options["groups"] > 1:
        return depthwise_parts(layer)
    x, w, b, _ = problem(layer)
    opts = {k: v for k, v in layer.options.items()}
    tx, tw, tb = map(torch.from_numpy, (x, w, b))
    xs, _, geo = conv._prepare(x, w, b, opts["stride"], opts["padding"], opts["dilation"], opts["groups"])
    groups = opts["groups"]
    matrix = conv._forward_matrix(w, groups, geo, b)
    ones = conv._bias_in_product(b, geo)
    n = x.shape[0]
    flat = np.empty((n, groups, layer.out_channels // groups, geo.out_hw[0] * geo.out_hw[1]), np.float32)
    # the products read one filled block, in cache as in utils' own loop (values: the first block's)
    slices = [images for images, _ in conv._column_blocks(xs, geo, groups, ones_row=ones)]
    block = next(conv._column_blocks(xs, geo, groups, ones_row=ones))[1].copy()
    blocks = [(images, block[:images.stop - images.start]) for images in slices]
    t_matrix, t_flat = torch.from_numpy(matrix), torch.from_numpy(flat)
    t_blocks = [(images, torch.from_numpy(part)) for images, part in blocks]
    bytes_moved = 2 * block[0].nbytes * x.shape[0]

    def im2col():
        for _ in conv._column_blocks(xs, geo, groups, ones_row=ones):
            pass

    def gemm():
        for images, block in blocks:
            np.matmul(matrix, block, out=flat[images])

    def gemm_torch():
        with torch.no_grad():
            for images, block in t_blocks:
                torch.matmul(t_matrix, block, out=t_flat[images])

    check_and_warm_torch(x, w, b, opts)
    first = blocks[0][0]
    gemm()
    assert np.allclose(flat[first].reshape(-1), conv2d(x[first], w, b, **opts).reshape(-1), atol=1e-3)
    return {"torch": lambda: F.conv2d(tx, tw, tb, **opts), "utils": lambda: conv2d(x, w, b, **opts),
            "im2col": im2col, "GEMM": gemm, "GEMM in torch": gemm_torch}, bytes_moved


def depthwise_parts(layer):
    """The same five callables for a stride-1 depthwise layer (``_depthwise.forward``'s band products):
    ``im2col`` is its copies (the input into the stacked planes, the valid rows into the NCHW output),
    ``GEMM`` its band products (three per block of channels, on the planes filled beforehand);
    what ``utils`` takes beyond both is the adds of the three products, the NaN check and the bias."""
    x, w, b, _ = problem(layer)
    opts = dict(layer.options)
    tx, tw, tb = map(torch.from_numpy, (x, w, b))
    _, _, geo = conv._prepare(x, w, b, opts["stride"], opts["padding"], opts["dilation"], opts["groups"])
    assert geo.stride == (1, 1), "the band products are the stride-1 path"
    rows = _depthwise._Rows(x.shape, w.shape, geo, x.itemsize, conv.BLOCK_BYTES // 3)
    (tile,), (band,) = rows.tiles, _depthwise._bands(w, rows)      # the sweep's layer: one band
    channels, step = x.shape[1], rows.step
    blocks = [slice(start, min(channels, start + step)) for start in range(0, channels, step)]
    planes = rows.new_planes(x.dtype)           # one buffer, kept in cache, as in utils' own loop
    wide = np.empty((step, rows.multiplier, rows.rows, geo.out_hw[1]), dtype=x.dtype)
    product = np.zeros_like(wide)
    out = np.empty((x.shape[0], w.shape[0]) + geo.out_hw, dtype=x.dtype)
    rows.inside(planes)[...] = x[:, :step].transpose(1, 0, 2, 3)   # the products read the first block
    inputs = [[rows.band_input(planes[:c.stop - c.start], i, tile) for i in range(geo.kernel[0])]
              for c in blocks]
    t_inputs = [[torch.from_numpy(np.ascontiguousarray(a)) for a in per] for per in inputs]
    t_band, t_wide = torch.from_numpy(band), torch.from_numpy(wide)

    def copies():
        for c in blocks:
            rows.inside(planes[:c.stop - c.start])[...] = x[:, c].transpose(1, 0, 2, 3)
            out[:, c] = rows.valid(wide[:c.stop - c.start]).transpose(1, 0, 2, 3)

    def gemm():
        for c, per in zip(blocks, inputs):
            for i, a in enumerate(per):
                np.matmul(a, band[c, :, i], out=wide[:c.stop - c.start])

    def adds():                                 # the three products of each block summed: two adds
        for c in blocks:
            for _ in range(geo.kernel[0] - 1):
                wide[:c.stop - c.start] += product[:c.stop - c.start]

    def gemm_torch():
        with torch.no_grad():
            for c, per in zip(blocks, t_inputs):
                for i, a in enumerate(per):
                    torch.matmul(a, t_band[c, :, i], out=t_wide[:c.stop - c.start])

    check_and_warm_torch(x, w, b, opts)
    return {"torch": lambda: F.conv2d(tx, tw, tb, **opts), "utils": lambda: conv2d(x, w, b, **opts),
            "im2col": copies, "GEMM": gemm, "GEMM in torch": gemm_torch, "adds of the products": adds,
            # the other NumPy method: one multiply and one add of a shifted view per tap
            "tap by tap": lambda: _depthwise.forward_strided(x, w, geo, conv.BLOCK_BYTES, b)
            }, 2 * (x.nbytes + out.nbytes)


COLUMNS = ("torch", "utils", "im2col", "GEMM", "GEMM in torch")


def best_times(runs: dict, repeats: int, back_to_back: bool = False) -> dict:
    """Best of ``repeats`` calls of each: round-robin (as layer_sweep times), or ``back_to_back``
    (all calls of one in a row, its data and code in cache: the fastest each can be)."""
    for run in runs.values():
        run()
    best = {name: float("inf") for name in runs}
    order = ([(name, run) for name, run in runs.items() for _ in range(repeats)] if back_to_back
             else [(name, run) for _ in range(repeats) for name, run in runs.items()])
    for name, run in order:
        start = time.perf_counter()
        run()
        best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(names, repeats: int, back_to_back: bool = False) -> None:
    pinned = pin_allocator()                  # as layer_sweep does: no page faults at every call
    with threadpool_limits(1):
        torch.set_num_threads(1)
        cache_gbs = copy_bandwidth_gbs(1, megabytes=1)
        print(f"1 thread: matmul peak {matmul_peak_gflops():.0f} GFLOP/s; in-cache copy {cache_gbs:.1f} GB/s; "
              f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; best of {repeats}"
              f"{' back to back' if back_to_back else ' round-robin'}; "
              f"glibc mmap threshold {'pinned' if pinned else 'as it is'}\n")
        print("| layer (forward) | torch ms | utils ms | utils | im2col | GEMM | GEMM in torch | copy floor "
              "| GEMM + copy floor |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        others = {}
        for layer in LAYERS:
            if not any(name == layer.name for name in names):
                continue
            runs, bytes_moved = parts(layer)
            best = best_times(runs, repeats, back_to_back)
            ref = best["torch"]
            floor = bytes_moved / (cache_gbs * 1e9)
            cells = [f"{best[k] / ref:.2f}×" for k in ("utils", "im2col", "GEMM", "GEMM in torch")]
            print(f"| {layer.name} | {ref * 1e3:.2f} | {best['utils'] * 1e3:.2f} | " + " | ".join(cells)
                  + f" | {floor / ref:.2f}× | {(best['GEMM'] + floor) / ref:.2f}× |", flush=True)
            others.update({f"{layer.name}, {k}": best[k] / ref for k in best if k not in COLUMNS})
        print("\n(ratios to torch's layer; GEMM = utils' products alone on prefilled blocks, np.matmul; "
              "copy floor = im2col bytes at the in-cache copy bandwidth)")
        for name, ratio in others.items():
            print(f"\n{name}: {ratio:.2f}× torch's layer")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", nargs="+", default=list(DEFAULT))
    parser.add_argument("--back-to-back", action="store_true",
                        help="time each part's calls in a row, not round-robin (see best_times)")
    options = parser.parse_args()
    main(options.only, options.repeats, options.back_to_back)
