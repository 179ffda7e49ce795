"""A reference evaluator: run a Graph on NumPy with the CPU kernels, no VM involved.

Constant folding uses :func:`run_node` to compute nodes whose inputs are all known;
tests use :func:`evaluate` to check the frontend and every pass against onnxruntime
before (and independently of) code generation. Symbolic sizes are bound from the
actual input shapes, so a graph with ``batch`` runs at any batch size. Ops flagged
``returns_outputs`` (``nonzero``, ``unique``...) return their outputs; the sizes of those
bind the node's fresh symbols for the nodes after it (:func:`bind_returned`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import relaxvm.compiler.ops  # noqa: F401  (registers the op table)
import relaxvm.kernels  # noqa: F401  (registers the kernels)
from relaxvm.compiler.ir import Graph, Node, Value
from relaxvm.compiler.ops.registry import get_op
from relaxvm.compiler.symbolic import Expr
from relaxvm.compiler.symbolic import evaluate as eval_dim
from relaxvm.devices.device import cpu
from relaxvm.errors import ArgumentError, BuildError
from relaxvm.kernels.dynamic_dims import compute as compute_dims
from relaxvm.kernels.registry import REQUIRED, get_kernel, kernel_signature
from relaxvm.objects import numpy_dtype
from relaxvm.tensor import Tensor

Env = dict[str, int]


def resolve(value: Any, env: Mapping[str, int]) -> Any:
    """``value`` with every symbolic dim replaced by its int under ``env``."""
    if isinstance(value, Expr):
        return value.evaluate(env)
    if isinstance(value, tuple):
        return tuple(resolve(v, env) for v in value)
    if isinstance(value, list):
        return [resolve(v, env) for v in value]
    return value


def bind_symbols(values: Sequence[Value], arrays: Sequence[np.ndarray],
                 env: Env | None = None, where: str = "evaluate") -> Env:
    """Symbol values read from the arrays' shapes; ArgumentError on a mismatch."""
    env = {} if env is None else env
    for v, a in zip(values, arrays):
        shape = np.shape(a)
        if len(shape) != len(v.shape):
            raise ArgumentError(f"{where}: input {v.name} expects {v.type_text()}, got shape "
                                f"{list(shape)}")
        for dim, actual in zip(v.shape, shape):
            _bind_dim(v, dim, int(actual), env, where)
    return env


def _bind_dim(v: Value, dim: Any, actual: int, env: Env, where: str) -> None:
    name = dim.symbol_name if isinstance(dim, Expr) else None
    if name is not None:
        if env.setdefault(name, actual) == actual:
            return
    elif isinstance(dim, Expr):
        try:
            if dim.evaluate(env) == actual:
                return
        except KeyError:
            return
    elif dim == actual:
        return
    raise ArgumentError(f"{where}: input {v.name} expects {v.type_text()}, got a dimension "
                        f"of {actual} where {dim} is {eval_dim(dim, env)}")


def _tensor(array: np.ndarray | None) -> Tensor | None:
    return None if array is None else Tensor(array, cpu(0))


def node_attrs(node: Node, kernel: str, env: Mapping[str, int]) -> list[Any]:
    """The node's attributes in the kernel's positional order, defaults filled in."""
    out = []
    for name, default in kernel_signature(kernel).attrs.items():
        value = node.attrs.get(name, default)
        if value is REQUIRED:
            raise BuildError(f"{node.name or node.op}: attribute {name} of {kernel} is "
                             f"required")
        out.append(resolve(value, env))
    return out


def run_node(node: Node, arrays: Sequence[np.ndarray | None], env: Mapping[str, int]
             ) -> list[np.ndarray]:
    """Compute one node's outputs with the CPU kernels."""
    if node.op == "shape_values":
        out = node.outputs[0]
        values = [eval_dim(d, env) for d in node.attrs["values"]]
        return [np.asarray(values, numpy_dtype(out.dtype)).reshape(resolve(out.shape, env))]
    if node.op == "to_device":
        return [np.array(arrays[0], copy=True)]
    op = get_op(node.op)
    kernel_name = op.kernel_name or node.op
    if op.returns_outputs:
        return _run_returning(node, kernel_name, arrays, env)
    outs = [np.empty(resolve(v.shape, env), numpy_dtype(v.dtype)) for v in node.outputs]
    args: list[Any] = [_tensor(a) for a in arrays]
    if get_op(node.op).variadic:
        args = [tuple(args)]
    sig = kernel_signature(kernel_name)
    out_arg: Any = tuple(_tensor(o) for o in outs) if sig.output == "outs" else _tensor(outs[0])
    get_kernel(kernel_name, "cpu")(*args, out_arg, *node_attrs(node, kernel_name, env))
    return outs


def _run_returning(node: Node, kernel: str, arrays: Sequence[np.ndarray | None],
                   env: Mapping[str, int]) -> list[np.ndarray]:
    """Call a kernel that allocates and returns its outputs (``out=None``)."""
    result = get_kernel(kernel, "cpu")(*[_tensor(a) for a in arrays], None,
                                       *node_attrs(node, kernel, env))
    results = result if isinstance(result, tuple) else (result,)
    if len(results) != len(node.outputs):
        raise BuildError(f"{node.name or node.op}: kernel {kernel} returned {len(results)} "
                         f"outputs, the node has {len(node.outputs)}")
    return [np.asarray(t.array) for t in results]


def bind_returned(node: Node, arrays: Sequence[np.ndarray], env: Env) -> Env:
    """Bind the fresh symbols of a ``returns_outputs`` node from its outputs' shapes."""
    return bind_symbols(node.outputs, arrays, env, f"evaluate: {node.name or node.op}")


def bind_runtime_dims(node: Node, arrays: Sequence[np.ndarray | None]) -> Env:
    """The symbol values a ``bind_dims`` node derives from its inputs' data."""
    values = compute_dims(node.attrs["rule"], arrays, node.attrs.get("params", ()))
    return dict(zip(node.attrs["symbols"], values, strict=True))


def evaluate(graph: Graph, inputs: Sequence[Any] | Mapping[str, Any]) -> list[np.ndarray]:
    """Run ``graph`` on host arrays (a list in input order, or a dict by name)."""
    if isinstance(inputs, Mapping):
        missing = [v.name for v in graph.inputs if v.name not in inputs]
        if missing:
            raise ArgumentError(f"evaluate: missing inputs {missing}")
        inputs = [inputs[v.name] for v in graph.inputs]
    if len(inputs) != len(graph.inputs):
        raise ArgumentError(f"evaluate: graph {graph.name} takes {len(graph.inputs)} inputs, "
                            f"got {len(inputs)}")
    arrays = [np.asarray(a, numpy_dtype(v.dtype)) for v, a in zip(graph.inputs, inputs)]
    env = bind_symbols(graph.inputs, arrays)
    values: dict[int, np.ndarray] = {v.uid: a for v, a in zip(graph.inputs, arrays)}
    for node in graph.nodes:
        ins = [None if v is None else (v.data if v.is_constant else values[v.uid])
               for v in node.inputs]
        if node.op == "bind_dims":
            env.update(bind_runtime_dims(node, ins))
            continue
        outs = run_node(node, ins, env)
        if get_op(node.op).returns_outputs:
            bind_returned(node, outs, env)
        for v, a in zip(node.outputs, outs):
            values[v.uid] = a
    return [values[v.uid] if v.data is None else v.data for v in graph.outputs]
