"""The "PyTorch eager" peer: an ONNX graph interpreter that runs each node as a torch op.

PyTorch has no ONNX importer, so to time PyTorch eager on exactly the zoo's graphs this
module walks the graph in order and calls the equivalent eager op for each node (the
table in ``torch_ops`` / ``torch_shape_ops``). Weights become torch tensors on the device
once, at load; node attributes are decoded once; each intermediate is dropped after its
last use, as Python frees locals in an eager ``forward``. Per run, the only work besides
the torch calls is one dict lookup per operand.

    program = TorchProgram(model, "cpu")
    outputs = program({"input": torch.randn(1, 784)})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from relaxvm.errors import UnsupportedOpError

from .base import Feeds

try:  # torch is optional: without it the peer reports itself unavailable
    import torch

    from . import torch_shape_ops  # noqa: F401 (registers the shape ops)
    from .torch_ops import OPS
    _IMPORT_ERROR = ""
except ImportError as exc:  # pragma: no cover - exercised only without torch
    _IMPORT_ERROR = f"torch not installed ({exc})"


def _to_torch(array: np.ndarray, device: Any) -> Any:
    # int64 constants are shape arithmetic: keep them on the host, as eager code does.
    host = array.dtype == np.int64
    tensor = torch.from_numpy(np.array(array, copy=True))
    return tensor if host else tensor.to(device)


def _attributes(node: onnx.NodeProto, device: Any) -> dict[str, Any]:
    attrs = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, onnx.TensorProto):
            value = _to_torch(numpy_helper.to_array(value), device)
        elif isinstance(value, bytes):
            value = value.decode()
        attrs[attr.name] = value
    return attrs


def _constant(node: onnx.NodeProto, device: Any) -> Any:
    attrs = _attributes(node, device)
    if "value" in attrs:
        return attrs["value"]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return _to_torch(np.asarray(attrs[key], dtype=dtype), device)
    raise UnsupportedOpError(f"torch_eager Constant {node.name!r}: attribute must be one of "
                             f"value, value_float(s), value_int(s), got {sorted(attrs)}")


class TorchProgram:
    """An ONNX graph prepared for op-by-op execution with eager PyTorch on ``device``."""

    def __init__(self, model: onnx.ModelProto, device: str = "cpu") -> None:
        if _IMPORT_ERROR:
            raise UnsupportedOpError(f"TorchProgram: needs torch, got {_IMPORT_ERROR}")
        graph = model.graph
        self.device = torch.device(device)
        self.constants = {init.name: _to_torch(numpy_helper.to_array(init), self.device)
                          for init in graph.initializer}
        self.input_names = [v.name for v in graph.input if v.name not in self.constants]
        self.output_names = [v.name for v in graph.output]
        self.steps: list[tuple[Any, list[str], list[str], dict[str, Any], list[str]]] = []
        self._compile(graph)

    def _compile(self, graph: onnx.GraphProto) -> None:
        missing = sorted({n.op_type for n in graph.node if n.op_type not in OPS} - {"Constant"})
        if missing:
            raise UnsupportedOpError(f"TorchProgram: every op must have a torch eager "
                                     f"implementation, got unsupported {missing}")
        last_use = {name: i for i, node in enumerate(graph.node) for name in node.input}
        keep = set(self.output_names) | set(self.constants)
        for i, node in enumerate(graph.node):
            if node.op_type == "Constant":
                self.constants[node.output[0]] = _constant(node, self.device)
                continue
            dead = [n for n in dict.fromkeys(node.input)
                    if n and last_use.get(n) == i and n not in keep]
            self.steps.append((OPS[node.op_type], list(node.input), list(node.output),
                               _attributes(node, self.device), dead))

    def __call__(self, feeds: Mapping[str, Any]) -> list[Any]:
        """Run the graph on torch tensors ``feeds``; the graph outputs, in order."""
        env = dict(self.constants)
        env.update(feeds)
        with torch.inference_mode():
            for fn, inputs, outputs, attrs, dead in self.steps:
                results = fn([env[n] if n else None for n in inputs], attrs)
                for name, value in zip(outputs, results, strict=False):
                    env[name] = value
                for name in dead:
                    del env[name]
        return [env[name] for name in self.output_names]


class TorchEagerRunner:
    """A TorchProgram with its feeds already on the device."""

    def __init__(self, program: TorchProgram, feeds: Feeds) -> None:
        self.program = program
        self.feeds = {name: torch.from_numpy(np.array(feeds[name], copy=True))
                      .to(program.device) for name in program.input_names}
        self.cuda = program.device.type == "cuda"

    def outputs(self) -> list[np.ndarray]:
        """Run once; outputs copied to the host."""
        return [t.detach().cpu().numpy() for t in self.program(self.feeds)]

    def step(self) -> None:
        """Run once and wait for the GPU (when on one)."""
        self.program(self.feeds)
        if self.cuda:
            torch.cuda.synchronize(self.program.device)


class TorchEagerPeer:
    """PyTorch eager, op by op, on the CPU or the first CUDA GPU."""

    name = "torch"

    def unavailable(self, device: str) -> str | None:
        """Why torch can't run on ``device`` here, or None."""
        if _IMPORT_ERROR:
            return _IMPORT_ERROR
        if device == "cuda" and not torch.cuda.is_available():
            return f"torch {torch.__version__} has no CUDA device (CPU build or no GPU)"
        return None

    def prepare(self, model: onnx.ModelProto, feeds: Feeds, device: str) -> TorchEagerRunner:
        """Load weights onto the device and bind the feeds."""
        return TorchEagerRunner(TorchProgram(model, device), feeds)
