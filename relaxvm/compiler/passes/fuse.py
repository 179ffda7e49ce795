"""Elementwise fusion: groups of elementwise nodes become one ``fused_elementwise`` node.

A node joins the group of an elementwise producer when it is the producer's only
reader, both run on the same device, and the producer's output is not returned. Groups
may be DAGs (GELU reads its input twice). Each group of two or more nodes is replaced
by one node placed where its last member was, reading the group's outside inputs and
writing the last member's output; its ``program`` attribute spells the chain in the
language of :mod:`relaxvm.kernels.fused`, with one-element constants inlined as
typed literals. On CUDA only ops with a CUDA C form (and supported dtypes) are fused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from relaxvm.compiler.ir import Graph, Node, Value
from relaxvm.compiler.ops.registry import get_op
from relaxvm.devices.device import CUDA
from relaxvm.kernels.fused import cuda_supports, literal, statement
from relaxvm.kernels.registry import kernel_signature

#: Largest group fused into one kernel (keeps programs and CUDA sources small).
MAX_GROUP = 32


def fusible(node: Node) -> bool:
    """Whether ``node`` may join a fused group on its device."""
    op = get_op(node.op)
    if not op.elementwise or node.op == "fused_elementwise" or len(node.outputs) != 1:
        return False
    if any(_tuple_attr(v) for v in node.attrs.values()):
        return False
    if node.device is not None and node.device.device_type == CUDA:
        dtypes = [v.dtype for v in node.inputs if v is not None] + [node.outputs[0].dtype]
        return cuda_supports(node.op, dtypes, node.attrs)
    return True


def _tuple_attr(value: Any) -> bool:
    return isinstance(value, (tuple, list))


def find_groups(graph: Graph) -> list[list[Node]]:
    """Fusible groups (each in execution order), singletons included."""
    users = graph.consumers()
    returned = {v.uid for v in graph.outputs}
    group_of: dict[int, list[Node]] = {}
    groups: list[list[Node]] = []
    for node in graph.nodes:
        if not fusible(node):
            continue
        merged: list[Node] = []
        for v in node.inputs:
            if v is None or v.producer is None:
                continue
            producer = v.producer
            if id(producer) not in group_of or v.uid in returned:
                continue
            if {id(u) for u in users.get(v.uid, [])} != {id(node)}:
                continue
            group = group_of[id(producer)]
            if group is not merged and producer.device == node.device and \
                    len(merged) + len(group) < MAX_GROUP:
                merged = _merge(merged, group, groups)
        merged.append(node)
        if len(merged) == 1:
            groups.append(merged)
        for member in merged:
            group_of[id(member)] = merged
    return groups


def _merge(into: list[Node], group: list[Node], groups: list[list[Node]]) -> list[Node]:
    if not into:
        return group
    for i, g in enumerate(groups):
        if g is group:
            del groups[i]
            break
    into.extend(group)
    return into


def _build(group: list[Node], order: dict[int, int]) -> Node:
    group.sort(key=lambda n: order[id(n)])
    names: dict[int, str] = {}
    inputs: list[Value] = []
    lines = []
    for k, node in enumerate(group):
        args = [_operand(v, names, inputs) for v in node.inputs if v is not None]
        sig = kernel_signature(node.op) if node.op != "cast" else None
        attrs = {} if sig is None else {a: node.attrs[a] for a in sig.attrs if a in node.attrs}
        lines.append(statement(k, node.outputs[0].dtype, node.op, args, attrs))
        names[node.outputs[0].uid] = f"t{k}"
    last = group[-1]
    out = last.outputs[0]
    attrs = {"program": ";".join(lines), "dtype": out.dtype,
             "ops": tuple(n.op for n in group)}
    return Node("fused_elementwise", list(inputs), [out], attrs,
                name="+".join(n.name or n.op for n in group[:3]) + ("+..." if len(group) > 3
                                                                    else ""),
                device=last.device)


def _operand(v: Value, names: dict[int, str], inputs: list[Value]) -> str:
    if v.uid in names:
        return names[v.uid]
    if v.is_constant and v.data is not None and v.data.size == 1 and v.dtype != "bfloat16":
        return literal(np.asarray(v.data).reshape(-1)[0].item(), v.dtype)
    for i, known in enumerate(inputs):
        if known.uid == v.uid:
            return f"x{i}"
    inputs.append(v)
    return f"x{len(inputs) - 1}"


def fuse_elementwise(graph: Graph) -> Graph:
    """Replace every group of two or more fusible nodes by one fused node."""
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    fused_at: dict[int, Node] = {}
    dropped: set[int] = set()
    for group in find_groups(graph):
        if len(group) < 2:
            continue
        node = _build(group, order)
        fused_at[id(group[-1])] = node
        dropped.update(id(n) for n in group[:-1])
    graph.nodes = [fused_at.get(id(n), n) for n in graph.nodes if id(n) not in dropped]
    return graph
