"""relaxvm itself, behind the same Runner interface as the peers.

Builds with ``relaxvm.compiler.build(model, target, shape_dict)``, runs in
``relaxvm.vm.VirtualMachine``, times with the VM's own ``time_evaluator`` (CUDA events on
a GPU), reads the pool's peak bytes around one run and, from one profiled run, the share
of the time spent in BLAS-bound kernels. Feeds are converted to relaxvm
Tensors on the device once, so timed calls exclude host-to-device copies. While the
compiler is not importable, ``unavailable`` says why and the benchmark goes on with the
peers alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from .base import Feeds, Timing, estimate, plan_repeats

#: Kernels whose time is one BLAS (cuBLAS) matrix product plus small epilogues.
BLAS_KERNELS = frozenset({"matmul", "gemm", "conv2d", "conv1d"})


def import_problem() -> str | None:
    """Why relaxvm's compiler or VM can't be imported, or None when both are there."""
    try:
        from relaxvm.compiler import build  # noqa: F401
        from relaxvm.vm import VirtualMachine  # noqa: F401
    except (ImportError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


class RelaxvmRunner:
    """A loaded VirtualMachine with its feeds on the device."""

    def __init__(self, model: onnx.ModelProto, feeds: Feeds, device: str) -> None:
        import relaxvm
        from relaxvm.compiler import build
        from relaxvm.vm import VirtualMachine
        self.device = relaxvm.device(f"{device}:0")
        shapes = {name: tuple(array.shape) for name, array in feeds.items()}
        self.vm = VirtualMachine(build(model, target=device, shape_dict=shapes), self.device)
        self.feeds = {name: relaxvm.tensor(np.ascontiguousarray(array), device=self.device)
                      for name, array in feeds.items()}
        self.main = self.vm["main"]

    def outputs(self) -> list[np.ndarray]:
        """Run once; every output copied to the host, in graph-output order."""
        return [t.numpy() for t in _flatten(self.main(**self.feeds))]

    def step(self) -> None:
        """Run once and wait for the device."""
        self.main(**self.feeds)
        self.device.sync()

    def time(self, budget_s: float) -> Timing:
        """Median seconds per call from the VM's time_evaluator, sized to the budget."""
        self.step()
        number, repeat = plan_repeats(estimate(self.step), budget_s)
        evaluator = self.vm.time_evaluator("main", self.device, number=number, repeat=repeat)
        return Timing(evaluator(**self.feeds).median, number, repeat)

    def blas_share(self) -> float:
        """The fraction of one profiled run's kernel time spent in the kernels that are
        one BLAS call at heart (matmul, gemm, convolutions as im2col + matmul): the part
        of the latency that only a faster BLAS can shorten."""
        report = self.vm.profile("main", **self.feeds)
        total = blas = 0.0
        for call in report.calls:
            duration = float(call.get("Duration (us)", 0.0))
            total += duration
            if call.get("Name") in BLAS_KERNELS:
                blas += duration
        return blas / total if total else 0.0

    def peak_bytes(self) -> int:
        """Peak bytes allocated from this device's pools during one run (weights included,
        as they stay allocated for the VM's life)."""
        from relaxvm import global_memory_manager
        pools = [a for a in global_memory_manager().allocators() if a.device == self.device]
        for pool in pools:
            pool.reset_peak_stats()
        self.step()
        return sum(pool.stats()["allocated_bytes.peak"] for pool in pools)


class RelaxvmSubject:
    """The engine under test; same shape as a Peer."""

    name = "relaxvm"

    def unavailable(self, device: str) -> str | None:
        """Why relaxvm can't run models on ``device`` here, or None."""
        problem = import_problem()
        if problem:
            return problem
        import relaxvm
        if device == "cuda" and not relaxvm.cuda(0).exist:
            return "no CUDA device visible to relaxvm (CuPy missing or no GPU)"
        return None

    def prepare(self, model: onnx.ModelProto, feeds: Feeds, device: str) -> RelaxvmRunner:
        """Compile for ``device`` and load the VM."""
        return RelaxvmRunner(model, feeds, device)
