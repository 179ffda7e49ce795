"""Binary kernels with NumPy broadcasting, ``op(a, b, out)``, plus ``where``.

``out`` already has the broadcast shape (the compiler inferred it), so every kernel is
one ufunc writing through ``out=``. Two ops need more than a ufunc to match ONNX:
integer ``divide`` truncates toward zero (NumPy's ``//`` floors) and ``mod`` picks the
sign convention from its ``fmod`` attribute.

``bitshift_left`` and ``bitshift_right`` are ONNX BitShift: a right shift of a signed
type is arithmetic, a left shift discards bits past the sign bit, and shift amounts
that are negative or at least the bit width give the sign fill alone (-1 for a right
shift of a negative value, 0 otherwise), which plain C shifts leave undefined.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.registry import register_builder, register_template

#: Kernels that are exactly one binary ufunc: kernel name -> ufunc name.
BINARY_UFUNCS = {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "power": "power",
    "maximum": "maximum", "minimum": "minimum", "equal": "equal", "not_equal": "not_equal",
    "less": "less", "less_equal": "less_equal", "greater": "greater",
    "greater_equal": "greater_equal", "logical_and": "logical_and",
    "logical_or": "logical_or", "logical_xor": "logical_xor", "bitwise_and": "bitwise_and",
    "bitwise_or": "bitwise_or", "bitwise_xor": "bitwise_xor",
}


def _binary_builder(name: str, ufunc: str) -> Callable[[Any], Callable[..., None]]:
    def build(xp: Any) -> Callable[..., None]:
        func = getattr(xp, ufunc)

        def kernel(a: Any, b: Any, out: Any) -> None:
            func(a.array, b.array, out=out.array)

        kernel.__name__ = kernel.__qualname__ = name
        kernel.__doc__ = f"out = {ufunc}(a, b), broadcasting"
        return kernel

    return build


for _name, _ufunc in BINARY_UFUNCS.items():
    register_builder(_name)(_binary_builder(_name, _ufunc))


@register_builder("divide")
def _build_divide(xp: Any) -> Callable[..., None]:
    true_divide, fmod, subtract, floor_divide = (
        xp.true_divide, xp.fmod, xp.subtract, xp.floor_divide)

    def divide(a: Any, b: Any, out: Any) -> None:
        """out = a / b: true division for floats, truncation toward zero for ints (ONNX)."""
        x, y, o = a.array, b.array, out.array
        if o.dtype.kind not in "iu":  # floats, including ml_dtypes' bfloat16 (kind "V")
            true_divide(x, y, out=o)
            return
        # a - fmod(a, b) is an exact multiple of b, so floor division truncates here.
        subtract(x, fmod(x, y), out=o)
        floor_divide(o, y, out=o)

    return divide


@register_template("mod")
def mod(xp: Any, a: Any, b: Any, out: Any, fmod: int = 0) -> None:
    """ONNX Mod: fmod=0 takes the divisor's sign (Python ``%``), fmod=1 the dividend's (C)."""
    if fmod == 0:
        xp.remainder(a.array, b.array, out=out.array)
    elif fmod == 1:
        xp.fmod(a.array, b.array, out=out.array)
    else:
        raise ArgumentError(f"mod: fmod must be 0 or 1, got {fmod!r}")


@register_template("where")
def where(xp: Any, cond: Any, a: Any, b: Any, out: Any) -> None:
    """out = a where cond is true, b elsewhere (all three broadcast to out's shape).

    Two masked copies instead of ``xp.where`` avoid a temporary the size of ``out``;
    ``out`` must not share memory with ``a`` (the first copy writes ``b`` over it).
    """
    o = out.array
    xp.copyto(o, b.array)
    xp.copyto(o, a.array, where=cond.array)


def _shift_amounts(xp: Any, kernel: str, a: Any, b: Any, out: Any) -> tuple[Any, Any]:
    """(amounts with the out-of-range ones replaced by 0, mask of the in-range ones)."""
    x, s, o = a.array, b.array, out.array
    if o.dtype.kind not in "iu" or x.dtype != o.dtype or s.dtype.kind not in "iu":
        raise ArgumentError(f"{kernel}: a, b and out must be integer tensors with a's dtype "
                            f"in out, got {x.dtype.name}, {s.dtype.name} and {o.dtype.name}")
    width = 8 * o.dtype.itemsize
    valid = (s >= 0) & (s < width) if s.dtype.kind == "i" else s < width
    return xp.where(valid, s, 0).astype(o.dtype), valid


@register_template("bitshift_left")
def bitshift_left(xp: Any, a: Any, b: Any, out: Any) -> None:
    """out = a << b, broadcasting (ONNX BitShift LEFT): bits shifted past the top
    (the sign bit included) are dropped; b < 0 or b >= the bit width gives 0."""
    amounts, valid = _shift_amounts(xp, "bitshift_left", a, b, out)
    o = out.array
    unsigned = np.dtype(f"u{o.dtype.itemsize}")
    xp.left_shift(a.array.view(unsigned), amounts.view(unsigned), out=o.view(unsigned))
    xp.copyto(o, 0, where=~valid)


@register_template("bitshift_right")
def bitshift_right(xp: Any, a: Any, b: Any, out: Any) -> None:
    """out = a >> b, broadcasting (ONNX BitShift RIGHT): arithmetic for signed types;
    b < 0 or b >= the bit width gives -1 for negative a and 0 otherwise."""
    amounts, valid = _shift_amounts(xp, "bitshift_right", a, b, out)
    x, o = a.array, out.array
    xp.right_shift(x, amounts, out=o)
    if o.dtype.kind == "i":
        fill = xp.where(x < 0, o.dtype.type(-1), o.dtype.type(0))
        xp.copyto(o, xp.broadcast_to(fill, o.shape), where=~valid)
    else:
        xp.copyto(o, 0, where=~valid)
