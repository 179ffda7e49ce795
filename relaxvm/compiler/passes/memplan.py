"""Static memory planning: intermediates share one arena per device, at fixed offsets.

Every value gets a storage kind:

* ``input`` / ``const``: the caller's tensor or a constant; nothing to allocate;
* ``view``: a ``reshape`` whose result is not returned is a view of its input (no copy);
* ``arena``: an intermediate with a static shape, placed at an offset in its device's
  arena, one ``alloc_storage`` per device per call;
* ``own``: returned values (they must outlive the call without pinning the arena),
  symbolic shapes (sizes known only at run time) and ``to_device`` copies (the builtin
  allocates them) get their own pooled storage;
* ``kernel``: outputs of ``returns_outputs`` ops (``nonzero``, ``unique``...), whose
  sizes only the kernel learns: it allocates them itself and returns them, so they
  stay out of the plan (returned from the graph or not).

Lifetimes are intervals of node indices, inclusive at both ends, so an output never
shares bytes with an input of the same node (kernels may write ``out`` before they have
read all of their inputs). A view keeps its base alive for as long as it is used.
Offsets come from a greedy first-fit over several orders (largest first, earliest
first, longest-lived first), keeping the smallest arena. The lower bound is the
largest total of aligned sizes alive at one time; the plan reports both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relaxvm.compiler.ir import Graph, Value
from relaxvm.compiler.ops.registry import get_op
from relaxvm.devices.device import CUDA
from relaxvm.errors import BuildError

#: Byte alignment of arena offsets, per device type (CUDA libraries like 256).
ALIGNMENT = {CUDA: 256}
DEFAULT_ALIGNMENT = 64


def align(n: int, alignment: int) -> int:
    """``n`` rounded up to a multiple of ``alignment``."""
    return (n + alignment - 1) // alignment * alignment


@dataclass
class Interval:
    """One arena tensor: its value uid, size in bytes (aligned) and lifetime."""

    uid: int
    size: int
    start: int
    end: int
    offset: int = -1


@dataclass
class MemoryPlan:
    """Where every value lives; see the module docstring."""

    kind: dict[int, str] = field(default_factory=dict)
    base: dict[int, Value] = field(default_factory=dict)  # view uid -> viewed value
    offset: dict[int, int] = field(default_factory=dict)
    arena_size: dict[Any, int] = field(default_factory=dict)  # device -> bytes
    lower_bound: dict[Any, int] = field(default_factory=dict)  # device -> bytes
    last_use: dict[int, int] = field(default_factory=dict)
    intervals: dict[Any, list[Interval]] = field(default_factory=dict)

    @property
    def planned_bytes(self) -> int:
        """Bytes of the planned arenas, summed over devices."""
        return sum(self.arena_size.values())

    @property
    def lower_bound_bytes(self) -> int:
        """The most bytes of arena tensors alive at one time."""
        return sum(self.lower_bound.values())

    @property
    def unplanned_bytes(self) -> int:
        """What allocating every arena tensor separately would hold at once at most."""
        return sum(i.size for items in self.intervals.values() for i in items)


def _kinds(graph: Graph, plan: MemoryPlan) -> None:
    returned = {v.uid for v in graph.outputs}
    for v in graph.inputs:
        plan.kind[v.uid] = "input"
    for node in graph.nodes:
        for arg in node.inputs:
            if arg is not None and arg.is_constant:
                plan.kind[arg.uid] = "const"
        returns = get_op(node.op).returns_outputs
        for out in node.outputs:
            if returns:
                plan.kind[out.uid] = "kernel"
            elif node.op == "reshape" and out.uid not in returned:
                plan.kind[out.uid] = "view"
                base = node.inputs[0]
                if base is None:
                    raise BuildError(f"plan_memory: reshape node {node.name} has no input")
                plan.base[out.uid] = base
            elif out.uid in returned or not out.is_static or node.op == "to_device":
                plan.kind[out.uid] = "own"
            else:
                plan.kind[out.uid] = "arena"
    for v in graph.outputs:
        plan.kind.setdefault(v.uid, "const" if v.is_constant else "input")


def _root(uid: int, plan: MemoryPlan) -> int:
    while plan.kind.get(uid) == "view":
        uid = plan.base[uid].uid
    return uid


def _lifetimes(graph: Graph, plan: MemoryPlan) -> dict[int, tuple[int, int]]:
    end = len(graph.nodes)
    born: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, node in enumerate(graph.nodes):
        for out in node.outputs:
            born[out.uid] = i
            last[out.uid] = i
        for v in node.inputs:
            if v is not None:
                last[v.uid] = i
    for v in graph.outputs:
        last[v.uid] = end
    plan.last_use = dict(last)
    spans: dict[int, tuple[int, int]] = {}
    for uid, b in born.items():
        root = _root(uid, plan)
        if plan.kind.get(root) != "arena":
            continue
        s, e = spans.get(root, (born.get(root, b), last.get(root, b)))
        spans[root] = (min(s, b), max(e, last.get(uid, b)))
    return spans


def _first_fit(items: list[Interval], key: Callable[[Interval], Any]) -> int:
    placed: list[Interval] = []
    top = 0
    for item in sorted(items, key=key):
        busy = sorted((p.offset, p.offset + p.size) for p in placed
                      if p.start <= item.end and item.start <= p.end)
        offset = 0
        for lo, hi in busy:
            if offset + item.size <= lo:
                break
            offset = max(offset, hi)
        item.offset = offset
        placed.append(item)
        top = max(top, offset + item.size)
    return top


_ORDERS: tuple[Callable[[Interval], Any], ...] = (
    lambda i: (-i.size, i.start), lambda i: (i.start, -i.size),
    lambda i: (-(i.end - i.start), -i.size), lambda i: (-i.size * (i.end - i.start + 1),))


def place_offsets(items: list[Interval]) -> int:
    """Assign ``offset`` to every interval; returns the arena size (best of several orders)."""
    best, best_offsets = -1, []
    for order in _ORDERS:
        size = _first_fit(items, order)
        if best < 0 or size < best:
            best, best_offsets = size, [i.offset for i in items]
    for item, offset in zip(items, best_offsets):
        item.offset = offset
    return max(best, 0)


def peak_live(items: list[Interval]) -> int:
    """The largest total size of intervals alive at the same time."""
    events = sorted({i.start for i in items})
    return max((sum(i.size for i in items if i.start <= t <= i.end) for t in events), default=0)


def plan_memory(graph: Graph) -> MemoryPlan:
    """Plan storage for every value of ``graph`` (devices must be placed)."""
    plan = MemoryPlan()
    _kinds(graph, plan)
    spans = _lifetimes(graph, plan)
    values = {out.uid: out for node in graph.nodes for out in node.outputs}
    by_device: dict[Any, list[Interval]] = {}
    for uid, (start, end) in spans.items():
        v = values[uid]
        device_type = v.device.device_type if v.device is not None else None
        alignment = ALIGNMENT.get(device_type, DEFAULT_ALIGNMENT)  # type: ignore[arg-type]
        size = align(max(v.static_nbytes, 1), alignment)
        by_device.setdefault(v.device, []).append(Interval(uid, size, start, end))
    for device, items in by_device.items():
        plan.arena_size[device] = place_offsets(items)
        plan.lower_bound[device] = peak_live(items)
        plan.intervals[device] = items
        plan.offset.update({i.uid: i.offset for i in items})
    return plan


def check_plan(plan: MemoryPlan) -> None:
    """AssertionError-free check used by tests: raise ValueError when two tensors that
    are alive together overlap in the same arena."""
    for device, items in plan.intervals.items():
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                live = a.start <= b.end and b.start <= a.end
                overlap = a.offset < b.offset + b.size and b.offset < a.offset + a.size
                if live and overlap:
                    raise ValueError(f"check_plan: on {device}, tensors {a.uid} and {b.uid} "
                                     f"are alive together but share bytes")
