"""The TVM peer: Relax's ONNX importer, ``tvm.compile(target="llvm")``, Relax's VM.

This is TVM's untuned default path (no MetaSchedule tuning, no dlight schedules), the
one a user gets from the documented three calls. Before import the model's input shapes
are frozen to the feeds' and its shape arithmetic folded (``onnx_fold``), because the
importer cannot follow ``Shape -> Range`` chains to a ``Reshape``. CPU only: TVM's CUDA
path needs GPU schedules this benchmark does not write.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from .base import Feeds
from .onnx_fold import fold_shapes, freeze_inputs

try:
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
    _IMPORT_ERROR = ""
except ImportError as exc:  # pragma: no cover - exercised only without TVM
    _IMPORT_ERROR = f"apache-tvm not installed ({exc})"


def _flatten(value: Any) -> list[Any]:
    """TVM returns a Tensor, or an Array (possibly nested) of them; flatten in order."""
    if hasattr(value, "numpy"):
        return [value]
    return [leaf for item in value for leaf in _flatten(item)]


class TvmRunner:
    """A compiled Relax VM with its arguments converted to TVM tensors once."""

    def __init__(self, vm: Any, args: list[Any]) -> None:
        self.main = vm["main"]
        self.args = args

    def outputs(self) -> list[np.ndarray]:
        """Run once; outputs copied to NumPy."""
        return [t.numpy() for t in _flatten(self.main(*self.args))]

    def step(self) -> None:
        """Run once (the llvm target executes synchronously)."""
        self.main(*self.args)


def build_vm(model: onnx.ModelProto, feeds: Feeds) -> tuple[Any, list[str]]:
    """Import, compile for llvm and load; returns the VM and its input names in order."""
    shapes = {name: tuple(array.shape) for name, array in feeds.items()}
    prepared = fold_shapes(freeze_inputs(model, shapes))
    mod = from_onnx(prepared, shape_dict=shapes, keep_params_in_input=False)
    executable = tvm.compile(mod, target="llvm")
    weights = {init.name for init in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in weights]
    return relax.VirtualMachine(executable, tvm.cpu()), names


class TvmRelaxPeer:
    """TVM 0.27's Relax ONNX path on the CPU (llvm)."""

    name = "tvm"

    def unavailable(self, device: str) -> str | None:
        """Why TVM can't run on ``device`` here, or None."""
        if _IMPORT_ERROR:
            return _IMPORT_ERROR
        if device != "cpu":
            return "the TVM peer is CPU only (untuned CUDA needs schedules)"
        return None

    def prepare(self, model: onnx.ModelProto, feeds: Feeds, device: str) -> TvmRunner:
        """Build (slow: seconds for CNNs) and bind the feeds as TVM tensors."""
        vm, names = build_vm(model, feeds)
        return TvmRunner(vm, [tvm.runtime.tensor(np.ascontiguousarray(feeds[n]))
                              for n in names])
