"""Kernel throughput: relaxvm kernels against plain NumPy on the CPU, and against measured
hardware ceilings on the GPU.

CPU: each kernel writes into a preallocated output; the peer is plain NumPy doing the
same op the way a user would (a fresh output every call). ``speedup`` = NumPy time /
kernel time. For the 32x32 rows, ``overhead_ns`` is the kernel's time minus the raw
NumPy call with ``out=``: the Python cost of going through the kernel (target < 1 us).

CUDA (when CuPy and a GPU are present): achieved GB/s or TFLOP/s per kernel, against
ceilings measured in the same run: a 256 MiB device-to-device copy (bandwidth) and a
4096^3 ``cupy.matmul`` (cuBLAS). Targets: elementwise kernels at 64 MiB >= 80% of copy
bandwidth; matmul at 4096^3 >= 90% of cuBLAS.

Profile overhead (each device): a VM program that chains N small ``add`` calls runs plain
and under ``profile()``; ``overhead_us`` = (wall time of profile's timed run - plain run) /
calls, against the target of <= 5 us of host time per op (PASS / MISS).

    python bench/bench_kernels.py [--device cpu|cuda|all] [--quick] [--filter TEXT]
                                  [--csv out.csv] [--json out.json]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]  # bench/common.py, and relaxvm from this checkout
from common import add_output_args, print_table, write_outputs  # noqa: E402

import relaxvm  # noqa: E402
from relaxvm.kernels import get_kernel  # noqa: E402

OVERHEAD_TARGET_NS = 1000.0
COPY_TARGET = 0.80
CUBLAS_TARGET = 0.90
PROFILE_TARGET_US = 5.0


@dataclass
class Case:
    """One benchmark: a kernel call, its plain-NumPy peer and the work it does."""

    name: str
    kernel: str
    inputs: list[Any]                      # NumPy arrays, tuples of them, or None
    out_shape: tuple[int, ...]
    attrs: tuple[Any, ...] = ()
    peer: Callable[..., Any] | None = None      # plain NumPy, fresh output
    raw: Callable[..., Any] | None = None       # same op with out= (overhead rows)
    nbytes: int = 0                             # bytes read + written
    flops: int = 0
    target: str = ""                            # "copy" or "cublas" on the GPU
    out_dtype: Any = np.float32
    extra: dict[str, Any] = field(default_factory=dict)


def _rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]


def _erf(x: np.ndarray) -> np.ndarray:
    from relaxvm.kernels.erf import erf_into
    out = np.empty_like(x)
    erf_into(x, out)
    return out


def _conv_peer(x: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    win = _windows(xp, w.shape[2], 1)  # n, c, oh, ow, kh, kw
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def overhead_cases() -> list[Case]:
    """32x32 float32: the VM benchmark's three ops, to measure per-call Python cost."""
    a, b = _rand(32, 32), _rand(32, 32)
    nb = a.nbytes
    return [
        Case("relu 32x32", "relu", [a], (32, 32), peer=lambda x: np.maximum(x, 0),
             raw=lambda x, o: np.maximum(x, 0, out=o), nbytes=2 * nb),
        Case("add 32x32", "add", [a, b], (32, 32), peer=np.add,
             raw=lambda x, y, o: np.add(x, y, out=o), nbytes=3 * nb),
        Case("matmul 32x32", "matmul", [a, b], (32, 32), peer=np.matmul,
             raw=lambda x, y, o: np.matmul(x, y, out=o), flops=2 * 32 ** 3),
    ]


def cpu_cases(quick: bool) -> list[Case]:
    """Model-sized work: elementwise at 1M floats, ResNet/BERT-shaped layers."""
    n = 1 << 18 if quick else 1 << 20
    x, y = _rand(n), _rand(n)
    img = _rand(1, 64, 56, 56)
    w3, w1, dw = _rand(64, 64, 3, 3), _rand(128, 64, 1, 1), _rand(64, 1, 3, 3)
    seq, emb = _rand(128, 768), _rand(12, 128, 128)
    g, bta = _rand(768), _rand(768)
    table, ids = _rand(30522, 768), np.arange(0, 30522, 239, dtype=np.int64)[:128]
    gelu_peer = (lambda v: 0.5 * v * (1 + _erf(v * np.float32(0.7071067811865476))))
    return overhead_cases() + [
        Case(f"relu {n >> 10}K", "relu", [x], (n,), peer=lambda v: np.maximum(v, 0),
             nbytes=8 * n),
        Case(f"add {n >> 10}K", "add", [x, y], (n,), peer=np.add, nbytes=12 * n),
        Case(f"sigmoid {n >> 10}K", "sigmoid", [x], (n,), nbytes=8 * n,
             peer=lambda v: 1 / (1 + np.exp(-v))),
        Case(f"gelu {n >> 10}K", "gelu", [x], (n,), peer=gelu_peer, nbytes=8 * n),
        Case("matmul 512", "matmul", [_rand(512, 512), _rand(512, 512)], (512, 512),
             peer=np.matmul, flops=2 * 512 ** 3),
        Case("dense 1x784x512", "gemm", [_rand(1, 784), _rand(512, 784), _rand(512)],
             (1, 512), (1.0, 1.0, 0, 1), peer=lambda a, w, c: a @ w.T + c,
             flops=2 * 784 * 512),
        Case("conv3x3 64x56x56", "conv2d", [img, w3, None], (1, 64, 56, 56),
             ((1, 1), (1, 1, 1, 1)), peer=lambda a, w, _: _conv_peer(a, w, 1),
             flops=2 * 64 * 64 * 9 * 56 * 56),
        Case("conv1x1 64->128", "conv2d", [img, w1, None], (1, 128, 56, 56),
             peer=lambda a, w, _: _conv_peer(a, w, 0), flops=2 * 64 * 128 * 56 * 56),
        Case("depthwise3x3 64", "conv2d", [img, dw, None], (1, 64, 56, 56),
             ((1, 1), (1, 1, 1, 1), (1, 1), 64), flops=2 * 64 * 9 * 56 * 56,
             peer=lambda a, w, _: (_windows(np.pad(a, [(0, 0)] * 2 + [(1, 1)] * 2), 3, 1)
                                   * w[None, :, 0, None, None]).sum(axis=(-2, -1))),
        Case("maxpool3x3s2 64x56", "max_pool2d", [img], (1, 64, 28, 28),
             ((3, 3), (2, 2), (1, 1, 1, 1)),
             peer=lambda a: _windows(np.pad(a, [(0, 0)] * 2 + [(1, 1)] * 2,
                                            constant_values=-np.inf), 3, 2).max(axis=(-2, -1))),
        Case("softmax 12x128x128", "softmax", [emb], emb.shape, (-1,), nbytes=2 * emb.nbytes,
             peer=lambda v: (lambda e: e / e.sum(-1, keepdims=True))(
                 np.exp(v - v.max(-1, keepdims=True)))),
        Case("layer_norm 128x768", "layer_norm", [seq, g, bta], seq.shape, (-1, 1e-5),
             nbytes=2 * seq.nbytes,
             peer=lambda v, s, b: (v - v.mean(-1, keepdims=True))
             / np.sqrt(v.var(-1, keepdims=True) + 1e-5) * s + b),
        Case("sum axis=1 1024x1024", "sum", [_rand(1024, 1024)], (1024, 1), ((1,), 1),
             peer=lambda v: v.sum(axis=1, keepdims=True), nbytes=4 << 20),
        Case("transpose 1024x1024", "transpose", [_rand(1024, 1024)], (1024, 1024),
             peer=lambda v: np.ascontiguousarray(v.T), nbytes=8 << 20),
        Case("take 128 of 30522x768", "take", [table, ids], (128, 768), (0,),
             peer=lambda t, i: t[i], nbytes=2 * 128 * 768 * 4),
    ]


def per_call_s(fn: Callable[[], Any], budget_s: float, repeats: int = 5) -> float:
    """Best-of-``repeats`` seconds per call of ``fn`` (loops sized to the budget)."""
    fn()
    loops, elapsed = 1, 0.0
    while elapsed < budget_s / (4 * repeats) and loops < 1 << 20:
        loops *= 4
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
    loops = max(1, int(loops * budget_s / repeats / max(elapsed, 1e-9)))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def kernel_call(case: Case, dev: relaxvm.Device) -> Callable[[], Any]:
    """A zero-argument closure that runs the case's kernel on ``dev``."""
    def place(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return relaxvm.tensor(v, dev)
        return tuple(place(t) for t in v) if isinstance(v, tuple) else v

    args = [place(v) for v in case.inputs]
    out = relaxvm.empty(case.out_shape, case.out_dtype, dev)
    kernel, attrs = get_kernel(case.kernel, dev.device_type), case.attrs
    return lambda: kernel(*args, out, *attrs)


def run_cpu_case(case: Case, budget_s: float) -> dict[str, Any]:
    """Time one case on cpu:0 and its NumPy peer; one output row."""
    t_kernel = per_call_s(kernel_call(case, relaxvm.cpu(0)), budget_s)
    row: dict[str, Any] = {"device": "cpu", "case": case.name, "kernel_us": t_kernel * 1e6}
    arrays, peer, raw = case.inputs, case.peer, case.raw
    t_peer = per_call_s(lambda: peer(*arrays), budget_s) if peer is not None else None
    row["numpy_us"] = None if t_peer is None else t_peer * 1e6
    row["speedup"] = None if t_peer is None else t_peer / t_kernel
    row["GB/s"] = case.nbytes / t_kernel / 1e9 if case.nbytes else None
    row["GFLOP/s"] = case.flops / t_kernel / 1e9 if case.flops else None
    row["overhead_ns"], row["status"] = None, None
    if raw is not None:
        out = np.empty(case.out_shape, case.out_dtype)
        t_raw = per_call_s(lambda: raw(*arrays, out), budget_s)
        row["overhead_ns"] = (t_kernel - t_raw) * 1e9
        row["status"] = "PASS" if row["overhead_ns"] < OVERHEAD_TARGET_NS else "FAIL"
    return row


def run_cpu(quick: bool, pattern: str) -> list[dict[str, Any]]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load:.1f} on {os.cpu_count()} cores; multithreaded BLAS "
              f"stalls on a busy machine (try OPENBLAS_NUM_THREADS=1)", file=sys.stderr)
    budget = 0.05 if quick else 0.2
    rows = []
    for case in cpu_cases(quick):
        if pattern in case.name:
            rows.append(run_cpu_case(case, budget))
    return rows


# -- profile() overhead ---------------------------------------------------------------------

def chain_program(ops: int, shape: tuple[int, ...]) -> Any:
    """main(x): ``ops`` adds ping-ponging between two buffers of one storage, returning
    the last (3 allocation calls + ``ops`` kernel calls)."""
    from relaxvm.vm import ExecBuilder
    f32, nbytes = relaxvm.DataType("float32"), 4 * math.prod(shape)
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("vm.builtin.alloc_storage", args=[
            ib.vm_state(), (2 * nbytes,), ib.imm(0), relaxvm.DataType("uint8")], dst=ib.r(1))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(1), ib.imm(0), shape, f32],
                     dst=ib.r(2))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(1), ib.imm(nbytes), shape, f32],
                     dst=ib.r(3))
        ib.emit_call("add", args=[ib.r(0), ib.r(0), ib.r(2)])
        for i in range(1, ops):
            src, dst = (2, 3) if i % 2 else (3, 2)
            ib.emit_call("add", args=[ib.r(src), ib.r(0), ib.r(dst)])
        ib.emit_ret(ib.r(2 if ops % 2 else 3))
    return ib.get()


def profile_case(quick: bool) -> tuple[str, int, tuple[int, ...]]:
    """(case name, number of adds, shape) of the profile-overhead chain."""
    ops = 32 if quick else 256
    return f"profile: {ops} x add 32x32", ops, (32, 32)


def profile_overhead_row(dev: relaxvm.Device, quick: bool) -> dict[str, Any]:
    """Host time profile() adds per op on ``dev``: best timed run minus best plain run."""
    from relaxvm.vm import VirtualMachine
    name, ops, shape = profile_case(quick)
    vm = VirtualMachine(chain_program(ops, shape), dev)
    x = relaxvm.tensor(_rand(*shape), dev)
    calls = ops + 3
    plain_us = per_call_s(lambda: vm["main"](x), 0.05 if quick else 0.3) * 1e6
    profiled_us = min(vm.profile("main", x).device_metrics[str(dev)]["Host (us)"]
                      for _ in range(3 if quick else 10))
    overhead = (profiled_us - plain_us) / calls
    return {"device": dev.type_name, "case": name,
            "plain_us/op": plain_us / calls, "profiled_us/op": profiled_us / calls,
            "overhead_us": overhead, "target": f"<= {PROFILE_TARGET_US:g} us",
            "status": "PASS" if overhead <= PROFILE_TARGET_US else "MISS"}


def run_profile(devices: list[relaxvm.Device], quick: bool, pattern: str) -> list[dict[str, Any]]:
    """One profile-overhead row per device (when ``pattern`` matches its case name)."""
    if pattern not in profile_case(quick)[0]:
        return []
    return [profile_overhead_row(dev, quick) for dev in devices]


# -- CUDA ---------------------------------------------------------------------------------

def gpu_seconds(cp: Any, fn: Callable[[], Any], budget_s: float = 0.2) -> float:
    """Device seconds per call: CUDA events around a block of calls, best of 3."""
    fn()
    cp.cuda.Device().synchronize()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    loops, elapsed = 1, 0.0
    while elapsed < budget_s / 10 and loops < 1 << 16:
        loops *= 2
        elapsed = _event_block(cp, fn, loops, start, stop)
    return min(_event_block(cp, fn, loops, start, stop) / loops for _ in range(3))


def _event_block(cp: Any, fn: Callable[[], Any], loops: int, start: Any, stop: Any) -> float:
    start.record()
    for _ in range(loops):
        fn()
    stop.record()
    stop.synchronize()
    return cp.cuda.get_elapsed_time(start, stop) / 1e3


def gpu_ceilings(cp: Any, quick: bool) -> dict[str, float]:
    """Copy bandwidth (bytes/s, read + write) and cuBLAS float32 matmul (flop/s)."""
    nbytes = (64 if quick else 256) << 20
    src, dst = cp.ones(nbytes // 4, cp.float32), cp.empty(nbytes // 4, cp.float32)
    copy_s = gpu_seconds(cp, lambda: dst.data.copy_from_device_async(src.data, nbytes))
    n = 2048 if quick else 4096
    a, b = cp.ones((n, n), cp.float32), cp.ones((n, n), cp.float32)
    mm_s = gpu_seconds(cp, lambda: cp.matmul(a, b))
    return {"copy": 2 * nbytes / copy_s, "cublas": 2 * n ** 3 / mm_s, "matmul_n": n}


def gpu_cases(quick: bool, mm_n: int) -> list[Case]:
    """64 MiB elementwise and normalisation, a 4096^3 matmul, a ResNet-sized conv."""
    n = (16 if quick else 64) << 18  # float32 elements: 16 or 64 MiB
    x, y = _rand(n), _rand(n)
    rows = _rand(n // 4096, 4096)
    nb = 4 * n
    mib = f"{nb >> 20}MiB"
    return [
        Case(f"relu {mib}", "relu", [x], (n,), nbytes=2 * nb, target="copy"),
        Case(f"add {mib}", "add", [x, y], (n,), nbytes=3 * nb, target="copy"),
        Case(f"sigmoid {mib}", "sigmoid", [x], (n,), nbytes=2 * nb, target="copy"),
        Case(f"gelu {mib}", "gelu", [x], (n,), nbytes=2 * nb, target="copy"),
        Case("softmax rows x 4096", "softmax", [rows], rows.shape, (-1,), nbytes=2 * nb),
        Case("layer_norm rows x 4096", "layer_norm", [rows, _rand(4096), _rand(4096)],
             rows.shape, (-1, 1e-5), nbytes=2 * nb),
        Case(f"matmul {mm_n}^3", "matmul", [_rand(mm_n, mm_n), _rand(mm_n, mm_n)],
             (mm_n, mm_n), flops=2 * mm_n ** 3, target="cublas"),
        Case("conv3x3 32x64x56x56", "conv2d", [_rand(32, 64, 56, 56), _rand(64, 64, 3, 3), None],
             (32, 64, 56, 56), ((1, 1), (1, 1, 1, 1)), flops=2 * 32 * 64 * 64 * 9 * 56 * 56),
    ]


def run_gpu_case(cp: Any, case: Case, ceilings: dict[str, float]) -> dict[str, Any]:
    """Time one case on cuda:0; report achieved rate and its ratio to the ceiling."""
    seconds = gpu_seconds(cp, kernel_call(case, relaxvm.cuda(0)))
    row: dict[str, Any] = {"device": "cuda", "case": case.name, "kernel_us": seconds * 1e6}
    row["GB/s"] = case.nbytes / seconds / 1e9 if case.nbytes else None
    row["TFLOP/s"] = case.flops / seconds / 1e12 if case.flops else None
    ceiling = ceilings["copy"] if case.nbytes else ceilings["cublas"]
    row["of_ceiling"] = (case.nbytes or case.flops) / seconds / ceiling
    goal = {"copy": COPY_TARGET, "cublas": CUBLAS_TARGET}.get(case.target)
    row["target"] = goal
    row["status"] = None if goal is None else ("PASS" if row["of_ceiling"] >= goal else "FAIL")
    return row


def run_gpu(quick: bool, pattern: str) -> list[dict[str, Any]]:
    import cupy as cp
    ceilings = gpu_ceilings(cp, quick)
    rows: list[dict[str, Any]] = [
        {"device": "cuda", "case": "ceiling: D2D copy", "GB/s": ceilings["copy"] / 1e9},
        {"device": "cuda", "case": f"ceiling: cupy.matmul {int(ceilings['matmul_n'])}^3",
         "TFLOP/s": ceilings["cublas"] / 1e12}]
    for case in gpu_cases(quick, int(ceilings["matmul_n"])):
        if pattern in case.name:
            rows.append(run_gpu_case(cp, case, ceilings))
    return rows


def cuda_available() -> bool:
    try:
        import cupy
        return bool(cupy.cuda.is_available())
    except Exception:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter timing")
    parser.add_argument("--filter", default="", help="only cases whose name contains TEXT")
    add_output_args(parser)
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    profiled: list[relaxvm.Device] = []
    if args.device in ("cpu", "all"):
        cpu_rows = run_cpu(args.quick, args.filter)
        if cpu_rows:
            print_table(cpu_rows, title="kernels on cpu:0 (speedup = plain NumPy time / "
                                        "kernel time)")
        rows += cpu_rows
        profiled.append(relaxvm.cpu(0))
    if args.device in ("cuda", "all"):
        if cuda_available():
            gpu_rows = run_gpu(args.quick, args.filter)
            if gpu_rows:
                print_table(gpu_rows, title="kernels on cuda:0 (of_ceiling = achieved / "
                                            "measured ceiling)")
            rows += gpu_rows
            profiled.append(relaxvm.cuda(0))
        else:
            print("cuda: skipped (CuPy or a GPU is missing)\n", file=sys.stderr)
    profile_rows = run_profile(profiled, args.quick, args.filter)
    if profile_rows:
        print_table(profile_rows, title=f"profile() host overhead per op (target <= "
                                        f"{PROFILE_TARGET_US:g} us)")
    rows += profile_rows
    write_outputs(rows, args.csv, args.json, {"quick": args.quick})
    return 1 if any(r.get("status") in ("FAIL", "MISS") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
