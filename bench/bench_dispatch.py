"""VM dispatch overhead: relaxvm against TVM's Relax VM in the same process.

(a) us per call of a 3-op program (matmul, relu, add on 32x32 float32; NumPy kernels), with
    the parameter checks TVM's compiled program runs (check_tensor_info and match_shape on
    each of the 3 inputs), so both sides do the same work;
(b) ns per instruction over a chain of 1000 calls of a trivial registered Python function,
    and of a builtin (shape_of);
(c) us per call of an empty function.

TVM (the ``bench`` extra's apache-tvm) builds the same programs with its ExecBuilder /
relax.build on llvm. Targets, as ratios relaxvm / TVM: (a) <= 0.5, (b) <= 1.0 for the
Python function and <= 2.0 for the builtin, (c) <= 1.0.

    python bench/bench_dispatch.py [--csv out.csv] [--json out.json] [--quick] [--no-tvm]

``--quick`` uses ~1/20 of the timing budget (a smoke run; numbers are noisier).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import print_table, write_outputs  # noqa: E402

import relaxvm  # noqa: E402
from relaxvm.vm import ExecBuilder, VirtualMachine  # noqa: E402

CHAIN = 1000


@dataclass(frozen=True)
class Budget:
    """Timing budget of one measurement: a calibration run, then ``repeats`` timed loops
    lasting ~``min_time`` in all."""
    min_time: float = 0.2
    repeats: int = 5
    calibrate: float = 0.02


FULL, QUICK = Budget(), Budget(min_time=0.01, repeats=3, calibrate=0.002)


def best_per_call(fn: Callable[[], Any], budget: Budget = FULL) -> float:
    """Seconds per call: the best of the budget's timed loops."""
    fn()
    n, start = 1, time.perf_counter()
    while time.perf_counter() - start < budget.calibrate:
        fn()
        n += 1
    per = (time.perf_counter() - start) / n
    loops = max(1, int(budget.min_time / budget.repeats / max(per, 1e-9)))
    best = float("inf")
    for _ in range(budget.repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t0) / loops)
    return best


# -- relaxvm programs ----------------------------------------------------------------------
def ours_three_op(ib: Any, f32: Any) -> None:
    with ib.function("main", num_inputs=3, param_names=["x", "w", "b"]):
        for i, name in enumerate("xwb"):   # what TVM's relax.build emits for each input
            ctx = f"main: parameter {name} expects float32[32, 32]"
            ib.emit_call("vm.builtin.check_tensor_info", args=[ib.r(i), ib.imm(2), f32, ctx])
            ib.emit_call("vm.builtin.match_shape", args=[ib.r(i), ib.void_arg(), ib.imm(2),
                                                         ib.imm(0), ib.imm(32), ib.imm(0),
                                                         ib.imm(32), ctx])
        ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (3 * 4096,), ib.imm(0),
                                                         relaxvm.DataType("uint8")], dst=ib.r(3))
        for i, reg in enumerate((4, 5, 6)):
            ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(3), ib.imm(i * 4096), (32, 32),
                                                          f32], dst=ib.r(reg))
        ib.emit_call("matmul", args=[ib.r(0), ib.r(1), ib.r(4)])
        ib.emit_call("relu", args=[ib.r(4), ib.r(5)])
        ib.emit_call("add", args=[ib.r(5), ib.r(2), ib.r(6)])
        ib.emit_ret(ib.r(6))


def build_chain(ib: Any, name: str, callee: str) -> None:
    with ib.function(name, num_inputs=1, param_names=["x"]):
        for _ in range(CHAIN):
            ib.emit_call(callee, args=[ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))


def build_empty(ib: Any) -> None:
    with ib.function("empty", num_inputs=1, param_names=["x"]):
        ib.emit_ret(ib.r(0))


def relaxvm_numbers(budget: Budget = FULL) -> dict[str, float]:
    relaxvm.vm.register_func("bench.identity", lambda x: x, override=True)
    ib = ExecBuilder()
    ours_three_op(ib, relaxvm.DataType("float32"))
    build_chain(ib, "chain_py", "bench.identity")
    build_chain(ib, "chain_builtin", "vm.builtin.shape_of")
    build_empty(ib)
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    rng = np.random.default_rng(0)
    x, w, b = (relaxvm.tensor(rng.standard_normal((32, 32), dtype=np.float32)) for _ in range(3))
    main, chain_py, chain_b, empty = (vm[n] for n in ("main", "chain_py", "chain_builtin",
                                                       "empty"))
    expected = np.maximum(x.numpy() @ w.numpy(), 0) + b.numpy()
    np.testing.assert_allclose(main(x, w, b).numpy(), expected, rtol=1e-5, atol=1e-5)
    _expect_rejected(main, x, w, relaxvm.tensor(np.zeros((32, 3), np.float32)))
    xn, wn, bn = x.array, w.array, b.array
    out = [np.empty((32, 32), np.float32) for _ in range(3)]

    def numpy_three_op() -> None:
        np.matmul(xn, wn, out=out[0])
        np.maximum(out[0], 0, out=out[1])
        np.add(out[1], bn, out=out[2])

    return {
        "profile_overhead_us": profile_overhead_us(vm, x, budget),
        "three_op_us": best_per_call(lambda: main(x, w, b), budget) * 1e6,
        "numpy_three_op_us": best_per_call(numpy_three_op, budget) * 1e6,
        "chain_py_ns": best_per_call(lambda: chain_py(x), budget) * 1e9 / CHAIN,
        "chain_builtin_ns": best_per_call(lambda: chain_b(x), budget) * 1e9 / CHAIN,
        "empty_us": best_per_call(lambda: empty(x), budget) * 1e6,
    }


def _expect_rejected(main: Callable[..., Any], *args: Any) -> None:
    """The parameter checks run: a wrong shape must fail (as TVM's program does)."""
    try:
        main(*args)
    except ValueError:
        return
    raise AssertionError("the 3-op program accepted a float32[32, 3] input")


def profile_overhead_us(vm: Any, x: Any, budget: Budget = FULL) -> float:
    """Host time profile() adds per op: the timed run of the 1000-call chain, minus plain."""
    from relaxvm.vm.profiler import _profile_translation, _Recorder
    translation, state = _profile_translation(vm)
    profiled = translation.functions[vm.exe.func_map["chain_py"]]
    plain = vm["chain_py"]

    def timed_run() -> None:
        state["recorder"] = _Recorder()
        profiled(x)

    overhead = best_per_call(timed_run, budget) - best_per_call(lambda: plain(x), budget)
    state["recorder"] = None
    return overhead * 1e6 / CHAIN


# -- TVM peer -----------------------------------------------------------------------------
def _tvm_three_op_module() -> Any:
    """matmul -> relu -> add on 32x32 float32, in TVMScript (parsed from this file)."""
    from tvm.script import ir as I
    from tvm.script import relax as R

    @I.ir_module
    class ThreeOp:
        @R.function
        def main(x: R.Tensor((32, 32), "float32"), w: R.Tensor((32, 32), "float32"),
                 b: R.Tensor((32, 32), "float32")) -> R.Tensor((32, 32), "float32"):
            with R.dataflow():
                mm = R.matmul(x, w)
                r = R.nn.relu(mm)
                out = R.add(r, b)
                R.output(out)
            return out

    return ThreeOp


def tvm_numbers(budget: Budget = FULL) -> dict[str, float] | None:
    try:
        import tvm
        from tvm import relax
    except Exception:
        return None
    from tvm.relax.exec_builder import ExecBuilder as TVMBuilder
    tvm.register_global_func("bench.identity", lambda x: x, override=True)
    dev = tvm.cpu()
    ib = TVMBuilder()
    build_chain(ib, "chain_py", "bench.identity")
    build_chain(ib, "chain_builtin", "vm.builtin.shape_of")
    build_empty(ib)
    vm = relax.VirtualMachine(ib.get(), dev)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((32, 32), dtype=np.float32) for _ in range(3)]
    x, w, b = (tvm.runtime.tensor(a, dev) for a in arrays)
    exe = tvm.compile(_tvm_three_op_module(), target="llvm")
    vm3 = relax.VirtualMachine(exe, dev)
    main = vm3["main"]
    np.testing.assert_allclose(main(x, w, b).numpy(),
                               np.maximum(arrays[0] @ arrays[1], 0) + arrays[2], rtol=1e-4,
                               atol=1e-4)
    chain_py, chain_b, empty = (vm[n] for n in ("chain_py", "chain_builtin", "empty"))
    return {
        "three_op_us": best_per_call(lambda: main(x, w, b), budget) * 1e6,
        "chain_py_ns": best_per_call(lambda: chain_py(x), budget) * 1e9 / CHAIN,
        "chain_builtin_ns": best_per_call(lambda: chain_b(x), budget) * 1e9 / CHAIN,
        "empty_us": best_per_call(lambda: empty(x), budget) * 1e6,
    }


ROWS = [
    ("(a) 3-op program, us/call", "three_op_us", 0.5),
    ("(b) 1000 calls of a Python function, ns/instr", "chain_py_ns", 1.0),
    ("(b) 1000 calls of shape_of builtin, ns/instr", "chain_builtin_ns", 2.0),
    ("(c) empty function, us/call", "empty_us", 1.0),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv")
    parser.add_argument("--json")
    parser.add_argument("--no-tvm", action="store_true", help="skip the TVM peer")
    parser.add_argument("--quick", action="store_true",
                        help="short timing budgets (a smoke run; noisier numbers)")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    print("measuring relaxvm ...", file=sys.stderr)
    ours = relaxvm_numbers(budget)
    theirs = None if args.no_tvm else (print("measuring TVM ...", file=sys.stderr) or
                                      tvm_numbers(budget))
    rows = []
    for label, key, target in ROWS:
        peer = theirs.get(key) if theirs else None
        ratio = ours[key] / peer if peer else None
        rows.append({"benchmark": label, "relaxvm": round(ours[key], 3),
                     "tvm": None if peer is None else round(peer, 3),
                     "ratio": None if ratio is None else round(ratio, 3),
                     "target": f"<= {target}",
                     "status": "n/a" if ratio is None else ("PASS" if ratio <= target
                                                              else "MISS")})
    overhead = ours["profile_overhead_us"]
    rows.append({"benchmark": "(d) profile() host overhead per op, us", "relaxvm":
                 round(overhead, 3), "tvm": None, "ratio": None, "target": "<= 5 us",
                 "status": "PASS" if overhead <= 5 else "MISS"})
    rows.append({"benchmark": "NumPy alone: the 3 ops with out=, us", "relaxvm":
                 round(ours["numpy_three_op_us"], 3), "tvm": None, "ratio": None, "target": "",
                 "status": ""})
    print_table(rows, title="relaxvm VM dispatch vs TVM (same process)")
    if theirs is None and not args.no_tvm:
        print("TVM peer not installed (pip install 'relaxvm[bench]', which includes "
              "apache-tvm); ratios omitted")
    write_outputs(rows, args.csv, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
