"""Allocator speed: nanoseconds per alloc+free pair at 4 KiB, 1 MiB and 64 MiB.

CPU: relaxvm's PooledAllocator (warm, so every alloc is a cache hit) and NaiveAllocator,
with plain ``np.empty`` as the peer. Target: pooled <= 1 us per pair.
CUDA (when CuPy and a GPU are present): PooledAllocator on cuda:0 against raw
cudaMalloc+cudaFree (``cupy.cuda.Memory``) and against CuPy's own MemoryPool. Targets:
pooled >= 50x faster than cudaMalloc+cudaFree, and within 1.5x of CuPy's pool.

    python bench/bench_alloc.py [--device cpu|cuda|all] [--quick | --budget SECONDS]
                                [--csv out.csv] [--json out.json]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]  # bench/common.py, and relaxvm from this checkout
from common import add_output_args, print_table, write_outputs  # noqa: E402

import relaxvm  # noqa: E402
from relaxvm.memory import NaiveAllocator, PooledAllocator  # noqa: E402

SIZES = [("4 KiB", 4 << 10), ("1 MiB", 1 << 20), ("64 MiB", 64 << 20)]
CPU_TARGET_NS = 1000.0
CUDA_SPEEDUP_TARGET = 50.0
CUDA_VS_CUPY_TARGET = 1.5


def ns_per_pair(run: Callable[[int], Any], budget_s: float, repeats: int = 5) -> float:
    """Best-of-``repeats`` nanoseconds per pair; ``run(k)`` performs k alloc+free pairs."""
    k, elapsed = 1, 0.0
    while elapsed < budget_s / (4 * repeats) and k < 1 << 22:
        k *= 4
        start = time.perf_counter()
        run(k)
        elapsed = time.perf_counter() - start
    loops = max(1, int(k * budget_s / repeats / max(elapsed, 1e-9)))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run(loops)
        best = min(best, (time.perf_counter() - start) / loops)
    return best * 1e9


def allocator_pairs(allocator: Any, nbytes: int) -> Callable[[int], None]:
    """k alloc+free pairs through a relaxvm allocator, bound to locals for speed."""
    alloc, free = allocator.alloc, allocator.free

    def run(k: int) -> None:
        for _ in range(k):
            free(alloc(nbytes))
    return run


def numpy_pairs(nbytes: int) -> Callable[[int], None]:
    """k ``np.empty`` calls whose result dies at once (NumPy frees it)."""
    empty, uint8 = np.empty, np.uint8

    def run(k: int) -> None:
        for _ in range(k):
            empty(nbytes, uint8)
    return run


def cpu_rows(budget_s: float) -> list[dict[str, Any]]:
    rows = []
    for label, nbytes in SIZES:
        print(f"cpu {label} ...", file=sys.stderr)
        pooled = PooledAllocator(relaxvm.cpu(0))
        pooled.free(pooled.alloc(nbytes))  # warm: every measured alloc is a cache hit
        peer = ns_per_pair(numpy_pairs(nbytes), budget_s)
        naive = ns_per_pair(allocator_pairs(NaiveAllocator(relaxvm.cpu(0)), nbytes), budget_s)
        ours = ns_per_pair(allocator_pairs(pooled, nbytes), budget_s)
        check_all_hits(pooled)
        rows.append({"device": "cpu", "size": label, "np.empty ns": peer, "naive ns": naive,
                     "pooled ns": ours, "pooled / np.empty": ours / peer,
                     "naive / pooled": naive / ours,
                     "target": f"pooled <= {CPU_TARGET_NS:.0f} ns",
                     "status": "PASS" if ours <= CPU_TARGET_NS else "FAIL"})
    return rows


def cuda_rows(budget_s: float) -> list[dict[str, Any]]:
    import cupy
    rows = []
    with cupy.cuda.Device(0):
        for label, nbytes in SIZES:
            print(f"cuda:0 {label} ...", file=sys.stderr)
            raw = ns_per_pair(cupy_raw_pairs(cupy, nbytes), budget_s)
            theirs = ns_per_pair(cupy_pool_pairs(cupy, nbytes), budget_s)
            pooled = PooledAllocator(relaxvm.cuda(0))
            pooled.free(pooled.alloc(nbytes))
            ours = ns_per_pair(allocator_pairs(pooled, nbytes), budget_s)
            check_all_hits(pooled)
            pooled.empty_cache()
            speedup, vs_cupy = raw / ours, ours / theirs
            ok = speedup >= CUDA_SPEEDUP_TARGET and vs_cupy <= CUDA_VS_CUPY_TARGET
            rows.append({"device": "cuda:0", "size": label, "cudaMalloc+Free ns": raw,
                         "CuPy pool ns": theirs, "pooled ns": ours,
                         "speedup vs cudaMalloc": speedup, "pooled / CuPy pool": vs_cupy,
                         "target": f">= {CUDA_SPEEDUP_TARGET:.0f}x, <= {CUDA_VS_CUPY_TARGET}x",
                         "status": "PASS" if ok else "FAIL"})
    return rows


def cupy_raw_pairs(cupy: Any, nbytes: int) -> Callable[[int], None]:
    """k cudaMalloc+cudaFree pairs: a ``cupy.cuda.Memory`` frees itself when it dies."""
    memory = cupy.cuda.Memory

    def run(k: int) -> None:
        for _ in range(k):
            memory(nbytes)
    return run


def cupy_pool_pairs(cupy: Any, nbytes: int) -> Callable[[int], None]:
    """k malloc+free pairs through a private, warm CuPy MemoryPool."""
    pool = cupy.cuda.MemoryPool()
    malloc = pool.malloc
    malloc(nbytes)

    def run(k: int) -> None:
        for _ in range(k):
            malloc(nbytes)
    return run


def check_all_hits(pool: PooledAllocator) -> None:
    stats = pool.stats()
    if stats["num_cache_misses"] != 1:
        print(f"warning: {stats['num_cache_misses']} misses in a pool meant to always hit",
              file=sys.stderr)


def cuda_usable() -> bool:
    try:
        return relaxvm.cuda(0).exist
    except Exception:
        return False


def positive_seconds(text: str) -> float:
    """argparse type for --budget: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--budget must be a number of seconds > 0, "
                                         f"got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="shorter timing loops (0.1 s)")
    parser.add_argument("--budget", type=positive_seconds, metavar="SECONDS",
                        help="timing budget per measurement (default 0.4, --quick 0.1); the "
                             "smoke test uses a tiny one")
    add_output_args(parser)
    args = parser.parse_args(argv)
    budget = args.budget if args.budget is not None else 0.1 if args.quick else 0.4
    rows: list[dict[str, Any]] = []
    if args.device in ("cpu", "all"):
        cpu = cpu_rows(budget)
        print_table(cpu, title="CPU: ns per alloc+free pair (best of 5)")
        rows += cpu
    if args.device in ("cuda", "all"):
        if cuda_usable():
            gpu = cuda_rows(budget)
            print_table(gpu, title=f"CUDA ({relaxvm.cuda(0).device_name}): ns per alloc+free "
                                   f"pair (best of 5)")
            rows += gpu
        else:
            print("CUDA: skipped (needs CuPy and a GPU: pip install 'relaxvm[cuda12]')")
    write_outputs(rows, args.csv, args.json, meta={"benchmark": "bench_alloc"})
    return 0 if all(r["status"] == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
