"""Binary kernels with NumPy broadcasting, ``op(a, b, out)``, plus ``where``.

``out`` already has the broadcast shape (the compiler inferred it), so every kernel is
one ufunc writing through ``out=``. Two ops need more than a ufunc to match ONNX:
integer ``divide`` truncates toward zero (NumPy's ``//`` floors) and ``mod`` picks the
sign convention from its ``fmod`` attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
