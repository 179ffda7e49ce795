"""Runtime support for symbolic shapes: two kernels over the VM's shape heap.

The shape heap (``vm.builtin.alloc_shape_heap``) is a host int64 tensor; the entry
code stores every symbolic input size in it with ``vm.builtin.match_shape``. Sizes the
program derives from them (``batch * sequence``, ``past + 1``) are computed by

* ``shape_func(heap, out, program)``: ``out`` is the heap itself; ``program`` is an
  :mod:`~relaxvm.kernels.exprlang` string ``"h3 = h0 * h1; h4 = h2 + 1"`` whose
  statements fill heap slots. ``vm.builtin.make_shape`` then reads them;
* ``shape_values(heap, out, program)``: writes each statement's value, in order, into
  ``out`` (any device, any integer or float dtype): shape-derived tensors such as a
  ``Range`` limit that the model uses as data.

Programs are parsed once and cached; nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.exprlang import Node, parse_program
from relaxvm.kernels.registry import register_kernel

_HEAP_REF = re.compile(r"h(\d+)$")
IntFn = Callable[[Any], int]


def _compile(node: Node, where: str) -> IntFn:
    """A closure computing ``node`` from a heap array (ints only)."""
    kind = node[0]
    if kind == "num":
        value = node[1]
        if not isinstance(value, int):
            raise ArgumentError(f"{where}: shape programs use ints only, got {value!r}")
        return lambda heap: value
    if kind == "ref":
        m = _HEAP_REF.match(node[1])
        if m is None:
            raise ArgumentError(f"{where}: a name must be a heap slot h<k>, got {node[1]!r}")
        slot = int(m.group(1))
        return lambda heap: int(heap[slot])
    if kind == "neg":
        inner = _compile(node[1], where)
        return lambda heap: -inner(heap)
    if kind == "bin":
        return _binary(node[1], _compile(node[2], where), _compile(node[3], where), where)
    if kind == "call" and node[1] in ("min", "max") and len(node[2]) == 2 and not node[3]:
        a, b = (_compile(arg, where) for arg in node[2])
        pick = min if node[1] == "min" else max
        return lambda heap: pick(a(heap), b(heap))
    raise ArgumentError(f"{where}: unsupported expression {node!r} (ints, h<k>, + - * // %, "
                        f"min, max)")


def _binary(op: str, a: IntFn, b: IntFn, where: str) -> IntFn:
    if op == "+":
        return lambda heap: a(heap) + b(heap)
    if op == "-":
        return lambda heap: a(heap) - b(heap)
    if op == "*":
        return lambda heap: a(heap) * b(heap)
    if op == "//":
        return lambda heap: a(heap) // b(heap)
    if op == "%":
        return lambda heap: a(heap) % b(heap)
    raise ArgumentError(f"{where}: operator {op!r} is not allowed in shape programs")


@functools.lru_cache(maxsize=1024)
def compile_shape_program(program: str, where: str = "shape_func"
                          ) -> tuple[tuple[str, IntFn], ...]:
    """(target, closure) per statement of a shape program."""
    try:
        statements = parse_program(program)
    except ValueError as exc:
        raise ArgumentError(f"{where}: program is malformed: {exc}") from None
    return tuple((target, _compile(node, where)) for target, _, node in statements)


def _heap_array(heap: Any, where: str) -> np.ndarray:
    array = getattr(heap, "array", heap)
    if not isinstance(array, np.ndarray) or array.dtype != np.int64 or array.ndim != 1:
        raise ArgumentError(f"{where}: heap must be a host int64 vector, got "
                            f"{type(array).__name__}")
    return array


@register_kernel("shape_func", "cpu")
@register_kernel("shape_func", "cuda")
def shape_func(heap: Any, out: Any, program: str) -> None:
    """Fill heap slots: each statement ``h<k> = expr`` stores its value in slot k."""
    array = _heap_array(out, "shape_func")
    for target, fn in compile_shape_program(program):
        m = _HEAP_REF.match(target)
        if m is None or int(m.group(1)) >= array.shape[0]:
            raise ArgumentError(f"shape_func: target must be a heap slot h<k> with k < "
                                f"{array.shape[0]}, got {target!r}")
        array[int(m.group(1))] = fn(array)


@register_kernel("shape_values", "cpu")
@register_kernel("shape_values", "cuda")
def shape_values(heap: Any, out: Any, program: str) -> None:
    """Write the program's statement values, in order, into ``out`` (row-major)."""
    array = _heap_array(heap, "shape_values")
    values = [fn(array) for _, fn in compile_shape_program(program, "shape_values")]
    target = out.array
    if len(values) != target.size:
        raise ArgumentError(f"shape_values: program has {len(values)} values but out holds "
                            f"{target.size}")
    host = np.asarray(values, dtype=np.int64).astype(target.dtype).reshape(target.shape)
    if isinstance(target, np.ndarray):
        target[...] = host
    else:
        out.copyfrom(host)
