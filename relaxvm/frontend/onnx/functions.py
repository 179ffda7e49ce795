"""ONNX ops defined as functions: expanded into their bodies while importing.

Many newer ONNX ops (Attention, RotaryEmbedding, SwiGLU, Gelu before opset 20, the loss
ops, ...) come with a *function body* in their schema: a small graph of simpler ops that
defines them. When no converter handles such an op, the importer asks onnx for the body
(:func:`function_body`), renames its values so they cannot collide with the model's,
substitutes the node's attributes for the body's attribute references, and converts the
body's nodes one by one, so nested function ops expand as well. Some bodies depend on
the node (its attributes and input types); onnx builds those on request from the input
types the importer has already inferred.

Functions defined in the model itself (``ModelProto.functions``) are inlined with onnx's
own inliner when the model loads.

Bodies may hold control-flow nodes (If, Loop, Scan) whose subgraphs read the body's
values by name; :func:`rename_free` renames those outer-scope references too, and
:mod:`relaxvm.frontend.onnx.control_flow` uses the same helpers to inline subgraphs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import onnx
from onnx import helper

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.dtypes import ONNX_DTYPES
from relaxvm.frontend.onnx.registry import DEFAULT_DOMAINS

#: Function bodies nest (a body may use another function op); deeper means a cycle.
MAX_DEPTH = 16

_ONNX_CODES = {name: code for code, name in ONNX_DTYPES.items()}
_ids = itertools.count()


def schema_of(op_type: str, domain: str, opset: int) -> Any:
    """The op's ``onnx.defs.OpSchema`` at ``opset``, or None when onnx does not define it
    (typed Any: onnx's stubs lack the function-body accessors used here)."""
    try:
        return onnx.defs.get_schema(op_type, opset, domain if domain != "ai.onnx" else "")
    except onnx.defs.SchemaError:
        return None


def has_function(op_type: str, domain: str, opset: int) -> bool:
    """Whether the op has a function body (static or built from the node)."""
    schema = schema_of(op_type, domain, opset)
    return schema is not None and (schema.has_function or schema.has_context_dependent_function)


def _type_proto(value: Value | None) -> onnx.TypeProto:
    if value is None:
        return onnx.TypeProto()
    code = _ONNX_CODES.get(value.dtype, onnx.TensorProto.UNDEFINED)
    dims = [d if isinstance(d, int) else str(d) for d in value.shape]
    return helper.make_tensor_type_proto(code, dims)


def _version_for(versions: Sequence[int], opset: int) -> int | None:
    """The newest body version that is not newer than the model's opset."""
    usable = [v for v in versions if v <= opset]
    return max(usable) if usable else None


def _parse(raw: bytes | onnx.FunctionProto) -> onnx.FunctionProto | None:
    if isinstance(raw, onnx.FunctionProto):
        body = raw
    else:
        body = onnx.FunctionProto()
        body.ParseFromString(raw)
    return body if body.node else None


def function_body(node: onnx.NodeProto, inputs: Sequence[Value | None], opset: int
                  ) -> onnx.FunctionProto | None:
    """The function body defining ``node`` at ``opset``, or None when there is none."""
    schema = schema_of(node.op_type, node.domain, opset)
    if schema is None:
        return None
    if schema.has_function:
        version = _version_for(schema.function_opset_versions, opset)
        if version is None:
            return _parse(schema.function_body)
        return _parse(schema.get_function_with_opset_version(version))
    if schema.has_context_dependent_function:
        types = [_type_proto(v).SerializeToString() for v in inputs]
        version = _version_for(schema.context_dependent_function_opset_versions, opset)
        if version is None:
            return _parse(schema.get_context_dependent_function(node.SerializeToString(), types))
        return _parse(schema.get_context_dependent_function_with_opset_version(
            version, node.SerializeToString(), types))
    return None


def body_opset(body: onnx.FunctionProto, default: int) -> int:
    """The default-domain opset the body's nodes are written for."""
    for entry in body.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return default


def schema_defaults(node: onnx.NodeProto, opset: int) -> dict[str, onnx.AttributeProto]:
    """The default values the op's schema gives its attributes."""
    schema = schema_of(node.op_type, node.domain, opset)
    if schema is None:
        return {}
    out = {}
    for name, attr in schema.attributes.items():
        default = attr.default_value
        if default is not None and default.type != onnx.AttributeProto.UNDEFINED:
            out[name] = default
    return out


def expand(node: onnx.NodeProto, body: onnx.FunctionProto,
           defaults: dict[str, onnx.AttributeProto] | None = None) -> list[onnx.NodeProto]:
    """The body's nodes with values renamed into the caller's namespace and attribute
    references replaced by the node's attributes, else the body's or the schema's
    defaults (``defaults``); a reference to an attribute without any is dropped."""
    prefix = f"{node.op_type}#{next(_ids)}/"
    names: dict[str, str] = {"": ""}
    for formal, actual in zip(body.input, node.input):
        names[formal] = actual
    for formal in body.input[len(node.input):]:
        names[formal] = ""  # an optional input the node leaves out
    for formal, actual in zip(body.output, node.output):
        names[formal] = actual
    given = {a.name: a for a in node.attribute}
    defaults = {**(defaults or {}), **{a.name: a for a in body.attribute_proto}}
    out = []
    for inner in body.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(inner)
        del copy.input[:]
        del copy.output[:]
        copy.input.extend(names.setdefault(n, prefix + n) for n in inner.input)
        copy.output.extend(names.setdefault(n, prefix + n) for n in inner.output)
        copy.name = prefix + (inner.name or inner.op_type)
        attrs = []
        for attr in inner.attribute:
            if attr.ref_attr_name:
                source = given.get(attr.ref_attr_name) or defaults.get(attr.ref_attr_name)
                if source is None:
                    continue
                resolved = onnx.AttributeProto()
                resolved.CopyFrom(source)
                resolved.name = attr.name
                attrs.append(resolved)
            else:
                attrs.append(attr)
        del copy.attribute[:]
        copy.attribute.extend(attrs)
        rename_free(copy, lambda n: names.setdefault(n, prefix + n))
        out.append(copy)
    return out


def graph_locals(graph: onnx.GraphProto) -> set[str]:
    """The names a subgraph defines itself: its inputs, initializers and node outputs
    (these shadow the enclosing scopes' names)."""
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    names.update(t.values.name for t in graph.sparse_initializer)
    for node in graph.node:
        names.update(o for o in node.output if o)
    return names


def rename_free(node: onnx.NodeProto, rename: Callable[[str], str]) -> None:
    """Rename, in place, the names that ``node``'s subgraph attributes (If branches, Loop
    and Scan bodies, nested to any depth) read from enclosing scopes; names a subgraph
    defines itself are left alone."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            _rename_graph(attr.g, rename)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for graph in attr.graphs:
                _rename_graph(graph, rename)


def _rename_graph(graph: onnx.GraphProto, rename: Callable[[str], str]) -> None:
    local = graph_locals(graph)

    def outer(name: str) -> str:
        return name if not name or name in local else rename(name)

    for node in graph.node:
        renamed = [outer(n) for n in node.input]
        del node.input[:]
        node.input.extend(renamed)
        rename_free(node, outer)
    for out in graph.output:
        out.name = outer(out.name)


def inline_model_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its own functions (``ModelProto.functions``) inlined."""
    if not model.functions:
        return model
    import onnx.inliner
    return onnx.inliner.inline_local_functions(model)
