"""``build``: ONNX model or Graph -> passes -> bytecode -> Executable.

Pipeline (``opt_level`` picks the optional passes)::

    from_onnx -> infer_shapes -> [fold_constants -> reduce_strength -> fold_batch_norm]
              -> eliminate_dead_code
              -> place_devices -> [fold_transposes -> fuse_elementwise]
              -> plan_memory -> codegen

* ``opt_level=0``: no folding, no fusion, every tensor in its own pooled storage
  (the unplanned baseline);
* ``opt_level=1``: constant folding, strength reduction (``x ** 3`` -> ``x * x * x``),
  batch-norm folding into convolutions, and the static memory plan;
* ``opt_level=2`` (default): also elementwise fusion.

:func:`memory_report` returns the plan's numbers (planned peak against the lower
bound: the most bytes simultaneously alive) without generating code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import relaxvm.compiler.ops  # noqa: F401  (registers the op table)
from relaxvm.compiler.codegen import generate
from relaxvm.compiler.ir import Graph, clone
from relaxvm.compiler.passes.algebra import fold_batch_norm, reduce_strength
from relaxvm.compiler.passes.fuse import fuse_elementwise
from relaxvm.compiler.passes.layout import fold_transposes
from relaxvm.compiler.passes.memplan import MemoryPlan, plan_memory
from relaxvm.compiler.passes.placement import place_devices
from relaxvm.compiler.passes.simplify import eliminate_dead_code, fold_constants, infer_shapes
from relaxvm.compiler.symbolic import Expr
from relaxvm.devices.device import Device
from relaxvm.devices.device import device as parse_device
from relaxvm.errors import ArgumentError

OPT_LEVELS = (0, 1, 2)


@dataclass
class Lowered:
    """A graph after every pass, with its devices and memory plan (before codegen)."""

    graph: Graph
    plan: MemoryPlan
    devices: list[Device]


def resolve_devices(target: Any) -> list[Device]:
    """The executable's device list for ``target``: "cpu", "cuda", "cuda:1", a Device,
    or a list of those (the first is the default compute device)."""
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    if not items:
        raise ArgumentError("build: target must name at least one device, got an empty list")
    devices = []
    for item in items:
        if isinstance(item, Device):
            devices.append(item)
            continue
        try:
            devices.append(parse_device(item))
        except Exception:
            raise ArgumentError(f"build: target must be 'cpu', 'cuda', a device such as "
                                f"'cuda:0', or a list of devices, got {item!r}") from None
    return devices


def _graph(model_or_graph: Any, shape_dict: Mapping[str, Any] | None) -> Graph:
    if isinstance(model_or_graph, Graph):
        if shape_dict:
            raise ArgumentError("build: shape_dict applies to ONNX models; a Graph already "
                                "has its shapes")
        return clone(model_or_graph)
    from relaxvm.frontend.onnx import from_onnx
    return from_onnx(model_or_graph, shape_dict)


def lower(model_or_graph: Any, target: Any = "cpu", shape_dict: Mapping[str, Any] | None = None,
          opt_level: int = 2, placement: Mapping[str, Any] | None = None) -> Lowered:
    """Run every pass; returns the final graph and its memory plan."""
    if opt_level not in OPT_LEVELS:
        raise ArgumentError(f"build: opt_level must be one of {OPT_LEVELS}, got {opt_level!r}")
    devices = resolve_devices(target)
    graph = infer_shapes(_graph(model_or_graph, shape_dict))
    if opt_level >= 1:
        graph = fold_batch_norm(reduce_strength(fold_constants(graph)))
    graph = eliminate_dead_code(graph)
    placed = {k: v if isinstance(v, Device) else parse_device(v)
              for k, v in (placement or {}).items()}
    graph = place_devices(graph, devices, placed)
    if opt_level >= 2:
        graph = fuse_elementwise(fold_transposes(graph))
    graph.validate()
    plan = plan_memory(graph)
    if opt_level == 0:
        _unplan(plan)
    return Lowered(graph, plan, devices)


def _unplan(plan: MemoryPlan) -> None:
    """Turn every arena tensor into its own allocation (the opt_level=0 baseline)."""
    for uid, kind in list(plan.kind.items()):
        if kind == "arena":
            plan.kind[uid] = "own"
    plan.arena_size.clear()
    plan.intervals.clear()
    plan.offset.clear()


def build(model_or_graph: Any, target: Any = "cpu", shape_dict: Mapping[str, Any] | None = None,
          opt_level: int = 2, placement: Mapping[str, Any] | None = None) -> Any:
    """Compile an ONNX model (ModelProto, bytes, path) or a Graph into an Executable.

    ``target`` is "cpu", "cuda", a device, or a list of devices (the VM must then be
    created with the same list, in the same order). ``placement`` maps node names or op
    names to devices from that list. The Executable also carries, as plain attributes
    that are not saved, ``input_specs`` (name -> (shape, dtype), symbolic sizes as 1)
    and ``memory_plan`` (see :func:`memory_report`).
    """
    lowered = lower(model_or_graph, target, shape_dict, opt_level, placement)
    exe: Any = generate(lowered.graph, lowered.plan, lowered.devices).get()
    exe.input_specs = {v.name: (tuple(d if isinstance(d, int) else 1 for d in v.shape),
                                v.dtype) for v in lowered.graph.inputs}
    exe.memory_plan = plan_summary(lowered)
    return exe


def plan_summary(lowered: Lowered) -> dict[str, Any]:
    """The numbers of a memory plan; ``ratio`` is planned peak / lower bound."""
    plan = lowered.plan
    kinds = list(plan.kind.values())
    lower_bound = plan.lower_bound_bytes
    return {
        "planned_peak_bytes": plan.planned_bytes,
        "lower_bound_bytes": lower_bound,
        "unplanned_bytes": plan.unplanned_bytes,
        "ratio": round(plan.planned_bytes / lower_bound, 4) if lower_bound else 1.0,
        "arenas": len(plan.arena_size),
        "planned_tensors": kinds.count("arena"),
        "own_tensors": kinds.count("own"),
        "kernel_tensors": kinds.count("kernel"),  # allocated by returns_outputs kernels
        "views": kinds.count("view"),
        "symbolic_sizes": sorted({s for v in lowered.graph.inputs for d in v.shape
                                  if isinstance(d, Expr) for s in d.symbols()}),
    }


def memory_report(model_or_graph: Any, target: Any = "cpu",
                  shape_dict: Mapping[str, Any] | None = None, opt_level: int = 2
                  ) -> dict[str, Any]:
    """Plan a model's memory without generating code; see :func:`plan_summary`."""
    return plan_summary(lower(model_or_graph, target, shape_dict, opt_level))


__all__ = ["Lowered", "build", "lower", "memory_report", "plan_summary", "resolve_devices"]
