"""A small builder for ONNX graphs that look like torch.onnx exports.

Every model in the zoo is written against this one class, so naming, seeding and model
assembly are decided once: nodes are named ``/scope/OpType`` with outputs
``/scope/OpType_output_0`` (torch's convention), parameters are initializers named with
dotted module paths (``encoder.layer.0.attention.query.weight``), and shape constants are
``Constant`` nodes rather than initializers, so counting initializers counts parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from relaxvm.errors import BuildError

#: The opset every zoo model declares, and the IR version torch.onnx writes with it.
OPSET = 17
IR_VERSION = 8

#: Metadata keys that example_inputs() reads back (see relaxvm.models.inputs).
DIM_KEY = "relaxvm.dim."
RANGE_KEY = "relaxvm.range."

Dims = Sequence["int | str"]


class GraphBuilder:
    """Accumulates the nodes, parameters, inputs and outputs of one ONNX graph.

    ``rng`` is a seeded ``numpy.random.Generator``; models draw every weight from it in
    a fixed order, so one seed always gives the same model.
    """

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.metadata: dict[str, str] = {}
        self._scopes: list[str] = []
        self._names: set[str] = set()

    # -- naming ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Prefix node names (``/name/...``) and parameter names (``name.``) inside the block."""
        self._scopes.append(name)
        try:
            yield
        finally:
            self._scopes.pop()

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    # -- parameters and constants ---------------------------------------------------------

    def param(self, name: str, array: np.ndarray) -> str:
        """Add ``array`` as an initializer named after the current scope; return its name."""
        full = self._unique(".".join([*self._scopes, name]))
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), full))
        return full

    def normal(self, name: str, shape: Sequence[int], std: float, mean: float = 0.0) -> str:
        """A float32 parameter drawn from N(mean, std**2)."""
        data = self.rng.standard_normal(tuple(shape), dtype=np.float32) * np.float32(std)
        return self.param(name, data + np.float32(mean))

    def uniform(self, name: str, shape: Sequence[int], low: float, high: float) -> str:
        """A float32 parameter drawn from U(low, high)."""
        data = self.rng.uniform(low, high, size=tuple(shape)).astype(np.float32)
        return self.param(name, data)

    def const(self, value: Any, dtype: Any = None) -> str:
        """A ``Constant`` node holding ``value`` (int lists become int64, floats float32)."""
        array = np.asarray(value, dtype=dtype)
        if dtype is None and array.dtype == np.float64:
            array = array.astype(np.float32)
        tensor = numpy_helper.from_array(array, "value")
        return self.op("Constant", value=tensor)

    # -- nodes ----------------------------------------------------------------------------

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        """Append one single-output node; return its output name."""
        return self.op_n(op_type, *inputs, outputs=1, **attrs)[0]

    def op_n(self, op_type: str, *inputs: str, outputs: int, **attrs: Any) -> list[str]:
        """Append one node with ``outputs`` outputs (e.g. ``Split``); return their names."""
        node_name = self._unique("/" + "/".join([*self._scopes, op_type]))
        out_names = [self._unique(f"{node_name}_output_{i}") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), out_names, name=node_name,
                                           **attrs))
        return out_names

    def rename(self, old: str, new: str) -> str:
        """Rename tensor ``old`` to ``new`` everywhere (used to give graph outputs real names)."""
        if new in self._names:
            raise BuildError(f"GraphBuilder.rename: new name must be unused, got {new!r} "
                             "which already names a tensor")
        self._names.add(new)
        for node in self.nodes:
            for field in (node.input, node.output):
                for i, name in enumerate(field):
                    if name == old:
                        field[i] = new
        return new

    # -- graph interface ------------------------------------------------------------------

    def add_input(self, name: str, elem_type: int, dims: Dims, default: dict | None = None,
                  value_range: tuple[int, int] | None = None) -> str:
        """Declare a graph input; ``default`` gives concrete sizes for its symbolic dims and
        ``value_range`` the [low, high) of valid integer values, both stored as metadata."""
        self._names.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(dims)))
        for dim, size in (default or {}).items():
            self.metadata[DIM_KEY + dim] = str(int(size))
        if value_range is not None:
            self.metadata[RANGE_KEY + name] = f"{value_range[0]},{value_range[1]}"
        return name

    def add_output(self, tensor: str, name: str, dims: Dims,
                   elem_type: int = TensorProto.FLOAT) -> str:
        """Expose ``tensor`` as graph output ``name`` with the declared (symbolic) shape."""
        if tensor != name:
            self.rename(tensor, name)
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, list(dims)))
        return name

    def to_model(self, doc: str) -> onnx.ModelProto:
        """Assemble the ModelProto (opset 17, IR version 8) with the collected metadata."""
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs,
                                  self.initializers, doc_string=doc)
        model = helper.make_model(graph, producer_name="relaxvm.models", producer_version="1",
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model.doc_string = doc
        helper.set_model_props(model, self.metadata)
        return model
