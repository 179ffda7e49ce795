"""Symbolic dimensions: integer polynomials over named sizes such as ``batch``.

ONNX models name unknown sizes (``batch``, ``sequence``); shapes computed from them
are sums and products (``past + 1``, ``batch * sequence``) and, rarely, quotients or
minima (convolution output sizes, clamped slices). A :class:`Expr` keeps them in one
canonical form so that two spellings of the same size compare equal:

* a polynomial: a map from monomials (sorted tuples of atoms) to integer coefficients;
* an atom is a symbol name (``"batch"``) or an opaque operation that does not reduce
  to a polynomial: ``("//", a, b)``, ``("%", a, b)``, ``("min", a, b)``, ``("max", a, b)``.

A dimension in the graph is either a plain ``int`` or an ``Expr`` that is not constant;
:func:`simplify` turns constant expressions back into ints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

Atom = Union[str, tuple]  # noqa: UP007
Monomial = tuple  # sorted tuple of atoms; () is the constant term
Dim = Union[int, "Expr"]  # noqa: UP007  (a forward reference)


def _atom_key(atom: Atom) -> str:
    return atom if isinstance(atom, str) else repr(atom)


class Expr:
    """An immutable integer polynomial over symbols and opaque atoms."""

    __slots__ = ("terms", "_hash")

    def __init__(self, terms: Mapping[Monomial, int]) -> None:
        self.terms = {m: c for m, c in terms.items() if c != 0}
        self._hash = hash(frozenset(self.terms.items()))

    # -- construction -----------------------------------------------------------------
    @staticmethod
    def symbol(name: str) -> Expr:
        """The expression that is just the size ``name``."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"Expr.symbol: name must be a non-empty str, got {name!r}")
        return Expr({(name,): 1})

    @staticmethod
    def lift(value: Dim) -> Expr:
        """An Expr for an int or an Expr."""
        if isinstance(value, Expr):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Expr.lift: expected an int or Expr, got {value!r}")
        return Expr({(): value})

    # -- queries ------------------------------------------------------------------------
    @property
    def is_constant(self) -> bool:
        return all(m == () for m in self.terms)

    @property
    def constant(self) -> int:
        return self.terms.get((), 0)

    @property
    def symbol_name(self) -> str | None:
        """The name when the expression is exactly one symbol, else None."""
        if len(self.terms) == 1:
            (monomial, coeff), = self.terms.items()
            if coeff == 1 and len(monomial) == 1 and isinstance(monomial[0], str):
                return monomial[0]
        return None

    def symbols(self) -> set[str]:
        """Every symbol name the expression depends on, inside opaque atoms too."""
        found: set[str] = set()
        for monomial in self.terms:
            for atom in monomial:
                _collect_symbols(atom, found)
        return found

    def evaluate(self, env: Mapping[str, int]) -> int:
        """The value with each symbol replaced by ``env[symbol]`` (KeyError if missing)."""
        total = 0
        for monomial, coeff in self.terms.items():
            term = coeff
            for atom in monomial:
                term *= _eval_atom(atom, env)
            total += term
        return total

    # -- arithmetic -----------------------------------------------------------------------
    def __add__(self, other: Dim) -> Dim:
        terms = dict(self.terms)
        for m, c in Expr.lift(other).terms.items():
            terms[m] = terms.get(m, 0) + c
        return simplify(Expr(terms))

    __radd__ = __add__

    def __neg__(self) -> Dim:
        return simplify(Expr({m: -c for m, c in self.terms.items()}))

    def __sub__(self, other: Dim) -> Dim:
        return self + (-Expr.lift(other))

    def __rsub__(self, other: Dim) -> Dim:
        return Expr.lift(other) + (-self)

    def __mul__(self, other: Dim) -> Dim:
        terms: dict[Monomial, int] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in Expr.lift(other).terms.items():
                m = tuple(sorted(m1 + m2, key=_atom_key))
                terms[m] = terms.get(m, 0) + c1 * c2
        return simplify(Expr(terms))

    __rmul__ = __mul__

    def __floordiv__(self, other: Dim) -> Dim:
        return floordiv(self, other)

    def __rfloordiv__(self, other: Dim) -> Dim:
        return floordiv(other, self)

    def __mod__(self, other: Dim) -> Dim:
        return mod(self, other)

    def __int__(self) -> int:
        """Only constants convert; a symbolic size has no int value while compiling."""
        if self.is_constant:
            return self.constant
        raise TypeError(f"size {self} is symbolic; an int is needed here")

    # -- identity ---------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, int) and not isinstance(other, bool):
            return self.is_constant and self.constant == other
        return isinstance(other, Expr) and self.terms == other.terms

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Expr({str(self)!r})"

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for monomial in sorted(self.terms, key=lambda m: (len(m), [_atom_key(a) for a in m])):
            parts.append(_term_text(monomial, self.terms[monomial]))
        text = " + ".join(parts)
        return text.replace("+ -", "- ")


def _term_text(monomial: Monomial, coeff: int) -> str:
    if not monomial:
        return str(coeff)
    body = "*".join(_atom_text(a) for a in monomial)
    if coeff == 1:
        return body
    if coeff == -1:
        return f"-{body}"
    return f"{coeff}*{body}"


def _atom_text(atom: Atom) -> str:
    if isinstance(atom, str):
        return atom
    op, a, b = atom
    if op in ("min", "max"):
        return f"{op}({a}, {b})"
    return f"({_operand_text(a)} {op} {_operand_text(b)})"


def _operand_text(value: Any) -> str:
    """An operand of ``//`` or ``%``: a sum such as ``a - b`` in parentheses, so that
    ``(a - b) // c`` does not read as ``a - b // c``."""
    text = str(value)
    return text if text.lstrip("-").replace("_", "").isalnum() or \
        (text.startswith("(") and text.endswith(")")) else f"({text})"


def _collect_symbols(atom: Atom, found: set[str]) -> None:
    if isinstance(atom, str):
        found.add(atom)
        return
    for part in atom[1:]:
        if isinstance(part, Expr):
            found |= part.symbols()


def _eval_atom(atom: Atom, env: Mapping[str, int]) -> int:
    if isinstance(atom, str):
        return int(env[atom])
    op, a, b = atom
    x, y = evaluate(a, env), evaluate(b, env)
    if op == "//":
        return x // y
    if op == "%":
        return x % y
    return min(x, y) if op == "min" else max(x, y)


def simplify(expr: Expr) -> Dim:
    """``expr`` as an int when it is constant, else unchanged."""
    return expr.constant if expr.is_constant else expr


def sym(name: str) -> Expr:
    """Shorthand for :meth:`Expr.symbol`."""
    return Expr.symbol(name)


def as_dim(value: Any) -> Dim:
    """A dimension from an int, a NumPy integer, a symbol name or an Expr."""
    if isinstance(value, Expr):
        return simplify(value)
    if isinstance(value, str):
        return Expr.symbol(value)
    if isinstance(value, bool):
        raise TypeError(f"as_dim: a dimension must be an int, str or Expr, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TypeError(f"as_dim: a dimension must be an int, str or Expr, got {value!r}") \
            from None


def is_static(dims: Any) -> bool:
    """True when every dimension is a plain int."""
    return all(isinstance(d, int) for d in dims)


def evaluate(value: Dim, env: Mapping[str, int]) -> int:
    """The int value of a dimension under ``env``."""
    return value.evaluate(env) if isinstance(value, Expr) else int(value)


def _exact_quotient(a: Expr, b: Expr) -> Dim | None:
    """``a / b`` when ``b`` is one term and divides every term of ``a`` exactly."""
    if len(b.terms) != 1:
        return None
    (bm, bc), = b.terms.items()
    out: dict[Monomial, int] = {}
    for m, c in a.terms.items():
        rest = list(m)
        for atom in bm:
            if atom not in rest:
                return None
            rest.remove(atom)
        if c % bc:
            return None
        out[tuple(rest)] = c // bc
    return simplify(Expr(out))


def floordiv(a: Dim, b: Dim) -> Dim:
    """``a // b``: exact where possible, an opaque atom otherwise."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    if b == 1:
        return a
    quotient = _exact_quotient(Expr.lift(a), Expr.lift(b))
    if quotient is not None:
        return quotient
    return Expr({(("//", a, b),): 1})


def mod(a: Dim, b: Dim) -> Dim:
    """``a % b`` (0 when the division is exact)."""
    if isinstance(a, int) and isinstance(b, int):
        return a % b
    if _exact_quotient(Expr.lift(a), Expr.lift(b)) is not None:
        return 0
    return Expr({(("%", a, b),): 1})


def dim_min(a: Dim, b: Dim) -> Dim:
    """``min(a, b)``; decided at compile time when the difference is a constant."""
    diff = Expr.lift(a) - b
    if isinstance(diff, int):
        return a if diff <= 0 else b
    return Expr({(("min", a, b),): 1})


def dim_max(a: Dim, b: Dim) -> Dim:
    """``max(a, b)``; decided at compile time when the difference is a constant."""
    diff = Expr.lift(a) - b
    if isinstance(diff, int):
        return a if diff >= 0 else b
    return Expr({(("max", a, b),): 1})


def prod(dims: Any) -> Dim:
    """The product of dimensions (1 for none)."""
    total: Dim = 1
    for d in dims:
        total = total * d
    return total


def dim_text(value: Dim) -> str:
    """How a dimension prints in shapes: ``3`` or ``batch*sequence``."""
    return str(value)
