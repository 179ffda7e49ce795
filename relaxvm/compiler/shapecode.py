"""Symbolic sizes at run time: which heap slot holds what, and the shape program.

Input sizes are stored in the shape heap by ``vm.builtin.match_shape``, sizes read from
tensor data by ``bind_dims``; every other expression the program needs (output shapes,
byte counts, symbolic attributes) gets a slot filled by the ``shape_func`` kernel, whose
programs this module writes: one after the input checks, and one after each
``bind_dims`` for the sizes that need its symbols. ``make_shape`` then assembles Shapes
from immediates and slots.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relaxvm.compiler.symbolic import Dim, Expr
from relaxvm.errors import BuildError
from relaxvm.kernels.exprlang import format_number

#: match_shape codes (TVM): assert == immediate, store to heap, no-op, assert == heap.
ASSERT_IMM, STORE, NO_OP, ASSERT_LOAD = 0, 1, 2, 3
#: make_shape codes (TVM): immediate, load from heap.
USE_IMM, LOAD = 0, 1


class ShapeHeap:
    """Slot assignment for symbols (bound from inputs) and derived expressions."""

    def __init__(self) -> None:
        self.symbols: dict[str, int] = {}
        self.derived: dict[Expr, int] = {}
        self.computed: set[Expr] = set()
        self.size = 0
        self.frozen = False

    def bind_symbol(self, name: str) -> tuple[int, bool]:
        """(slot, first_time) for an input symbol."""
        if name in self.symbols:
            return self.symbols[name], False
        self.symbols[name] = self.size
        self.size += 1
        return self.symbols[name], True

    def slot(self, expr: Expr) -> int:
        """The slot holding ``expr`` (a symbol's own slot, or a new derived slot)."""
        name = expr.symbol_name
        if name is not None and name in self.symbols:
            return self.symbols[name]
        missing = expr.symbols() - set(self.symbols)
        if missing:
            raise BuildError(f"codegen: size {expr} depends on {sorted(missing)}, which no "
                             f"input shape defines")
        if expr not in self.derived:
            if self.frozen:
                raise BuildError(f"codegen: size {expr} was not collected before the shape "
                                 f"programs were written")
            self.derived[expr] = self.size
            self.size += 1
        return self.derived[expr]

    def shape_codes(self, dims: Iterable[Dim]) -> list[int]:
        """make_shape (code, value) pairs, flattened."""
        codes: list[int] = []
        for d in dims:
            codes += [LOAD, self.slot(d)] if isinstance(d, Expr) else [USE_IMM, int(d)]
        return codes

    def program(self, available: Iterable[str] | None = None) -> str:
        """The shape_func program filling every derived slot not yet filled whose symbols
        are all ``available`` (every symbol when None); empty when there is none. Sizes
        over symbols bound at run time (``bind_dims``) are filled right after the binding."""
        known = set(self.symbols) if available is None else set(available)
        ready = [(expr, slot) for expr, slot in self.derived.items()
                 if expr not in self.computed and expr.symbols() <= known]
        self.computed.update(expr for expr, _ in ready)
        return ";".join(f"h{slot}={expr_text(expr, self.symbols)}" for expr, slot in ready)


def expr_text(value: Any, symbols: dict[str, int]) -> str:
    """``value`` in the shape-program language, symbols read from their heap slots."""
    if not isinstance(value, Expr):
        return format_number(int(value))
    if not value.terms:
        return "0"
    terms = []
    for monomial, coeff in value.terms.items():
        factors = [_atom_text(a, symbols) for a in monomial]
        if coeff != 1 or not factors:
            factors.insert(0, format_number(coeff))
        terms.append("*".join(factors))
    return "(" + "+".join(terms) + ")"


def _atom_text(atom: Any, symbols: dict[str, int]) -> str:
    if isinstance(atom, str):
        if atom not in symbols:
            raise BuildError(f"codegen: size {atom} is not defined by any input shape")
        return f"h{symbols[atom]}"
    op, a, b = atom
    left, right = expr_text(a, symbols), expr_text(b, symbols)
    if op in ("min", "max"):
        return f"{op}({left},{right})"
    return f"({left}{op}{right})"
