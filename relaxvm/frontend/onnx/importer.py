"""``from_onnx``: load an ONNX model safely and convert it into a compiler Graph.

Loading refuses what it cannot trust: a file that does not parse, a model without a
graph, default-domain nodes without a default-domain opset, and external-data paths
that point outside the model's folder (``../../etc/passwd``, absolute paths, symlinks
leading out). Before converting anything, every node is checked against the converter
registry, keyed by (domain, op type), so a model with several unsupported ops fails
once, listing all of them (``domain.Op`` outside the default domain) with node names.
Each converter sees the opset version its node's domain is imported at
(``OnnxNode.opset``); a model of only non-default-domain nodes (``ai.onnx.ml``, say)
needs no default-domain import.
Ops without a converter whose ONNX schema defines them as a function are expanded
into their function bodies (:mod:`relaxvm.frontend.onnx.functions`); control-flow
converters (:mod:`relaxvm.frontend.onnx.control_flow`) convert subgraph nodes through
``Context.convert_node``, the same per-node conversion.

Sequence and optional graph inputs (:mod:`relaxvm.frontend.onnx.sequence`) need their
lengths and emptiness while compiling: ``sequence_lengths`` gives each sequence input's
length, ``empty_optionals`` names the optional inputs given no value. A sequence of
``n`` becomes ``n`` graph inputs named ``name[0]`` ... ``name[n-1]``, a present
optional its content's inputs, an empty optional none; graph outputs of these types
flatten the same way, with their layout in ``metadata["output_layout"]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import onnx
from onnx import external_data_helper, numpy_helper

from relaxvm.compiler.ir import Graph, Value
from relaxvm.compiler.symbolic import Dim, Expr
from relaxvm.errors import ArgumentError, BuildError, UnsupportedOpError
from relaxvm.frontend.onnx import (  # noqa: F401
    control_flow,
    data_dependent,
    elementwise,
    image,
    index,
    linalg,
    ml,
    nn,
    quantize,
    recurrent,
    reduce,
    scatter,
    sequence,
    shape,
    signal,
)
from relaxvm.frontend.onnx.context import (
    AGGREGATE_CONVERTERS,
    Context,
    Item,
    OnnxNode,
    OptionalValue,
    SequenceValue,
    describe,
)
from relaxvm.frontend.onnx.dtypes import dtype_of
from relaxvm.frontend.onnx.functions import (
    MAX_DEPTH,
    body_opset,
    expand,
    function_body,
    has_function,
    inline_model_functions,
    schema_defaults,
)
from relaxvm.frontend.onnx.registry import canonical_domain, get_converter, op_label
from relaxvm.frontend.onnx.sequence import flatten_outputs


# -- loading --------------------------------------------------------------------------------
def load_model(model_or_path: Any) -> onnx.ModelProto:
    """A ModelProto from a ModelProto, bytes, or a path (external data checked, loaded)."""
    if isinstance(model_or_path, onnx.ModelProto):
        _reject_unloaded_external(model_or_path)
        return model_or_path
    if isinstance(model_or_path, (bytes, bytearray)):
        model = _parse(lambda: onnx.load_from_string(bytes(model_or_path)), "the bytes given")
        _reject_unloaded_external(model)
        return model
    if not isinstance(model_or_path, (str, os.PathLike)):
        raise ArgumentError(f"from_onnx: model_or_path must be an onnx.ModelProto, bytes or a "
                            f"path, got {type(model_or_path).__name__}")
    path = Path(model_or_path)
    if not path.is_file():
        raise ArgumentError(f"from_onnx: model_or_path {str(path)!r} is not a file")
    model = _parse(lambda: onnx.load(str(path), load_external_data=False), repr(str(path)))
    check_external_data(model, path.parent)
    try:
        external_data_helper.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError) as exc:
        raise ArgumentError(f"from_onnx: cannot read the external data of {str(path)!r}: "
                            f"{exc}") from None
    return model


def _parse(load: Any, what: str) -> onnx.ModelProto:
    try:
        model = load()
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ...
        raise ArgumentError(f"from_onnx: {what} is not a valid ONNX model: "
                            f"{type(exc).__name__}: {exc}") from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ArgumentError(f"from_onnx: {what} is not a valid ONNX model: it contains no "
                            f"graph")
    return model


def _external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in external_data_helper._get_all_tensors(model)
            if external_data_helper.uses_external_data(t)]


def check_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """ArgumentError when an external-data location escapes ``folder``."""
    base = folder.resolve()
    for tensor in _external_tensors(model):
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (base / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(base):
            raise ArgumentError(f"from_onnx: tensor {tensor.name!r} stores its data at "
                                f"{location!r}, outside the model's folder {str(base)!r}; "
                                f"external data must live beside the model")


def _reject_unloaded_external(model: onnx.ModelProto) -> None:
    pending = [t.name for t in _external_tensors(model) if not t.raw_data]
    if pending:
        raise ArgumentError(f"from_onnx: tensors {pending[:5]} keep their data in external "
                            f"files; pass the model's path so the data can be found")


def model_opsets(model: onnx.ModelProto) -> dict[str, int]:
    """The opset version the model imports for each domain (the default one as ``""``)."""
    return {canonical_domain(e.domain): int(e.version) for e in model.opset_import}


def _all_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    """The graph's nodes and those of every subgraph (If branches, Loop bodies...)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _all_nodes(sub)


def default_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset version the model imports. A model whose nodes all
    belong to other domains may import none; it gets the newest version onnx knows
    (which only function bodies of those domains' ops could read)."""
    version = model_opsets(model).get("")
    if version is not None:
        return version
    if any(canonical_domain(n.domain) == "" for n in _all_nodes(model.graph)):
        raise ArgumentError("from_onnx: the model imports no default-domain (ai.onnx) opset")
    return int(onnx.defs.onnx_opset_version())


def _convertible(node: onnx.NodeProto, opset: int) -> bool:
    if get_converter(node.op_type, node.domain) is not None:
        return True
    return has_function(node.op_type, node.domain, opset)


def check_supported(graph: onnx.GraphProto, opset: int = 0) -> None:
    """One UnsupportedOpError listing every node whose op has no converter and no
    function body (``opset`` 0: converters only)."""
    missing = []
    for node in graph.node:
        if not (_convertible(node, opset) if opset else
                get_converter(node.op_type, node.domain) is not None):
            label = op_label(node.op_type, node.domain)
            missing.append(f"{label} (node {node.name or ', '.join(node.output)!r})")
    if missing:
        raise UnsupportedOpError(f"from_onnx: the model uses {len(missing)} node(s) with "
                                 f"unsupported ops: {'; '.join(missing)}")


# -- inputs ------------------------------------------------------------------------------------
def _tensor_type(type_proto: onnx.TypeProto) -> onnx.TypeProto.Tensor | None:
    """The tensor type inside a tensor, sequence or optional type (None for maps)."""
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        return type_proto.tensor_type
    if kind == "sequence_type":
        return _tensor_type(type_proto.sequence_type.elem_type)
    if kind == "optional_type":
        return _tensor_type(type_proto.optional_type.elem_type)
    return None


def _dims(ttype: onnx.TypeProto.Tensor, given: Any, shape_dict: Mapping[str, Any],
          label: str, suffix: str = "") -> list[Dim]:
    """A tensor input's dims: ``given`` when set, else the declared ones (``dim_param``
    sizes from ``shape_dict``, else symbols named after them plus ``suffix``)."""
    if given is not None:
        return [int(d) for d in given]
    dims: list[Dim] = []
    for i, d in enumerate(ttype.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            size = shape_dict.get(d.dim_param)
            dims.append(int(size) if size is not None else
                        Expr.symbol(_symbol(d.dim_param + suffix)))
        else:
            dims.append(Expr.symbol(_symbol(f"{label}_{i}")))
    return dims


def _symbol(name: str) -> str:
    """A symbol name usable everywhere (identifier characters only)."""
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"s_{cleaned}"


def _check_shape_dict(graph: onnx.GraphProto, shape_dict: Mapping[str, Any]) -> None:
    names = {i.name for i in graph.input}
    types = [t for t in (_tensor_type(i.type) for i in graph.input) if t is not None]
    params = {d.dim_param for t in types for d in t.shape.dim if d.dim_param}
    unknown = sorted(set(shape_dict) - names - params)
    if unknown:
        raise ArgumentError(f"from_onnx: shape_dict keys {unknown} are neither input names "
                            f"({sorted(names)}) nor symbolic dimension names "
                            f"({sorted(params)})")


class _Inputs:
    """What the caller says about the graph inputs: sizes, sequence lengths, empties."""

    def __init__(self, graph: onnx.GraphProto, shape_dict: Mapping[str, Any],
                 lengths: Mapping[str, int], empties: Iterable[str]) -> None:
        self.shape_dict, self.lengths, self.empties = shape_dict, dict(lengths), set(empties)
        kinds = {i.name: i.type for i in graph.input}
        for name in self.lengths:
            ttype = kinds.get(name)
            if ttype is None or "sequence_type" not in (
                    ttype.WhichOneof("value"), ttype.optional_type.elem_type.WhichOneof("value")):
                raise ArgumentError(f"from_onnx: sequence_lengths names {name!r}, which is "
                                    f"not a sequence input")
        for name in self.empties:
            ttype = kinds.get(name)
            if ttype is None or ttype.WhichOneof("value") != "optional_type":
                raise ArgumentError(f"from_onnx: empty_optionals names {name!r}, which is "
                                    f"not an optional input")


def _input_item(ctx: Context, name: str, type_proto: onnx.TypeProto, given: _Inputs) -> Item:
    """The Value, sequence or optional a graph input stands for (adding graph inputs)."""
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        ttype = type_proto.tensor_type
        dtype = dtype_of(ttype.elem_type, f"input {name!r}")
        value = Value(name, _dims(ttype, given.shape_dict.get(name), given.shape_dict, name),
                      dtype)
        ctx.graph.inputs.append(value)
        return value
    if kind == "optional_type":
        if name in given.empties:
            return OptionalValue(None)
        inner = _input_item(ctx, name, type_proto.optional_type.elem_type, given)
        if isinstance(inner, OptionalValue):
            raise UnsupportedOpError(f"from_onnx: input {name!r} is an optional of an "
                                     f"optional, which is not supported")
        return OptionalValue(inner)
    if kind == "sequence_type":
        return _sequence_input(ctx, name, type_proto.sequence_type.elem_type, given)
    raise UnsupportedOpError(f"from_onnx: input {name!r} is a {kind or 'value of no type'}, "
                             f"which is not supported (tensors, sequences and optionals are)")


def _sequence_input(ctx: Context, name: str, elem: onnx.TypeProto, given: _Inputs
                    ) -> SequenceValue:
    """A sequence input as one graph input per element, ``name[k]``."""
    if elem.WhichOneof("value") != "tensor_type":
        raise UnsupportedOpError(f"from_onnx: input {name!r} is a sequence of "
                                 f"{elem.WhichOneof('value')}; only sequences of tensors "
                                 f"are supported")
    shapes = given.shape_dict.get(name)
    length = given.lengths.get(name, None if shapes is None else len(shapes))
    if length is None:
        raise UnsupportedOpError(f"from_onnx: input {name!r} is a sequence; its length must "
                                 f"be known while compiling: pass sequence_lengths="
                                 f"{{{name!r}: n}}")
    if shapes is not None and len(shapes) != length:
        raise ArgumentError(f"from_onnx: shape_dict[{name!r}] gives {len(shapes)} element "
                            f"shapes for a sequence of {length}")
    ttype = elem.tensor_type
    if shapes is None and length and not ttype.HasField("shape"):
        raise UnsupportedOpError(f"from_onnx: input {name!r} is a sequence whose elements "
                                 f"declare no shape; pass shape_dict[{name!r}] = a list of "
                                 f"the element shapes")
    dtype = dtype_of(ttype.elem_type, f"input {name!r}")
    items = []
    for k in range(length):
        dims = _dims(ttype, None if shapes is None else shapes[k], given.shape_dict,
                     f"{name}_{k}", f"_{k}")
        items.append(Value(f"{name}[{k}]", dims, dtype))
    ctx.graph.inputs.extend(items)
    return SequenceValue(items, dtype)


def _add_inputs(ctx: Context, graph: onnx.GraphProto, given: _Inputs) -> None:
    initialized = {t.name for t in graph.initializer}
    for t in graph.initializer:
        ctx.values[t.name] = ctx.const(numpy_helper.to_array(t), name=t.name)
    if graph.sparse_initializer:
        raise UnsupportedOpError("from_onnx: sparse initializers are not supported")
    for info in graph.input:
        if info.name not in initialized:
            ctx.set_item(info.name, _input_item(ctx, info.name, info.type, given))


# -- conversion ----------------------------------------------------------------------------------
def _node_opset(ctx: Context, proto: onnx.NodeProto, opsets: Mapping[str, int]) -> int:
    """The opset version of the node's domain: the context's for the default domain
    (function bodies change it), else the model's import of that domain."""
    domain = canonical_domain(proto.domain)
    if not domain:
        return ctx.opset
    version = opsets.get(domain)
    if version is None:
        raise ArgumentError(f"from_onnx: {ctx.current}: the model imports no opset for "
                            f"domain {domain!r}")
    return version


def _convert_node(ctx: Context, proto: onnx.NodeProto, opsets: Mapping[str, int]) -> None:
    """Convert one node (recursively for function bodies and, through
    ``ctx.convert_node``, for control-flow subgraphs) and bind its outputs; ``opsets``
    gives the imported version of each domain."""
    label = proto.name or f"{proto.op_type}({', '.join(proto.output)})"
    op = op_label(proto.op_type, proto.domain)
    ctx.current = f"{op} node {label}"
    items = [ctx.lookup_item(n, label) if n else None for n in proto.input]
    inputs = [v if isinstance(v, Value) else None for v in items]
    convert = get_converter(proto.op_type, proto.domain)
    aggregates = [(n, v) for n, v in zip(proto.input, items)
                  if v is not None and not isinstance(v, Value)]
    if aggregates and convert is not None:
        convert = AGGREGATE_CONVERTERS.get(proto.op_type) \
            if canonical_domain(proto.domain) == "" else None
        if convert is None:
            name, value = aggregates[0]
            raise UnsupportedOpError(f"from_onnx: {ctx.current}: input {name!r} is a "
                                     f"{describe(value)}, but {op} is converted "
                                     f"for tensor inputs only")
    if convert is None:
        _expand_function(ctx, proto, inputs, label, opsets)
        return
    node = OnnxNode(proto, inputs, _node_opset(ctx, proto, opsets), items)
    result = convert(ctx, node)
    outs = result if isinstance(result, list) else [result]
    for name, value in zip(proto.output, outs):
        if name:
            ctx.set_item(name, value)
    missing = [n for n in proto.output[len(outs):] if n]
    if missing:
        raise UnsupportedOpError(f"from_onnx: {ctx.current}: outputs {missing} are not "
                                 f"supported")


def _expand_function(ctx: Context, proto: onnx.NodeProto, inputs: list[Value | None],
                     label: str, opsets: Mapping[str, int]) -> None:
    """Convert a node through its ONNX function body (see the module docstring)."""
    op = op_label(proto.op_type, proto.domain)
    body = function_body(proto, inputs, ctx.opset) if ctx.depth < MAX_DEPTH else None
    if body is None:
        why = "function bodies nest too deeply" if ctx.depth >= MAX_DEPTH else \
            "it has no converter and no ONNX function body"
        raise UnsupportedOpError(f"from_onnx: {op} node {label!r} is not supported: {why}")
    outer = ctx.opset
    ctx.opset = body_opset(body, outer)
    ctx.depth += 1
    try:
        for inner in expand(proto, body, schema_defaults(proto, outer)):
            _convert_node(ctx, inner, opsets)
    finally:
        ctx.opset = outer
        ctx.depth -= 1
    missing = [n for n in proto.output if n and n not in ctx.values]
    if missing:
        raise UnsupportedOpError(f"from_onnx: {op} node {label!r}: its function body does "
                                 f"not produce outputs {missing}")


def from_onnx(model_or_path: Any, shape_dict: Mapping[str, Any] | None = None,
              sequence_lengths: Mapping[str, int] | None = None,
              empty_optionals: Iterable[str] = ()) -> Graph:
    """Convert an ONNX model (ModelProto, bytes or path) into a compiler Graph.

    ``shape_dict`` fixes sizes: ``{"input_ids": (1, 128)}`` by input name, or
    ``{"batch": 1}`` by symbolic dimension name; for a sequence input, a list of its
    element shapes. Unknown sizes stay symbolic. ``sequence_lengths`` gives each
    sequence input's length (``{"xs": 3}``), ``empty_optionals`` the optional inputs
    given no value (see the module docstring).
    """
    model = inline_model_functions(load_model(model_or_path))
    shape_dict = dict(shape_dict or {})
    graph = model.graph
    _check_shape_dict(graph, shape_dict)
    opsets = model_opsets(model)
    check_supported(graph, opsets.get("", 0))
    ctx = Context(graph.name or "main", default_opset(model))
    ctx.graph.name = "main"
    ctx.convert_node = lambda proto: _convert_node(ctx, proto, opsets)
    _add_inputs(ctx, graph, _Inputs(graph, shape_dict, sequence_lengths or {},
                                    empty_optionals))
    for proto in graph.node:
        _convert_node(ctx, proto, opsets)
    ctx.current = ""
    outputs, layout, names = flatten_outputs(
        [ctx.lookup_item(o.name, "graph output") for o in graph.output],
        [o.name for o in graph.output])
    if not outputs:
        raise UnsupportedOpError("from_onnx: the graph returns no tensors (only empty "
                                 "sequences or optionals), which the VM cannot return")
    ctx.graph.outputs = outputs
    ctx.graph.metadata.update({"opset": ctx.opset, "onnx_graph": graph.name,
                               "output_names": names, "output_layout": layout})
    try:
        ctx.graph.validate()
    except BuildError as exc:
        raise BuildError(f"from_onnx: the converted graph is invalid: {exc}") from None
    return ctx.graph

