"""Small runtime value types shared by tensors, the VM and the executable format.

``Shape`` is a tuple of ints (TVM's ShapeTuple) and ``DataType`` a dtype name (TVM's
DataType); both subclass the Python built-in they resemble, so they compare and print
naturally, while the VM and the file format can still tell them from plain tuples and
strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


class Shape(tuple):
    """An immutable tuple of non-negative ints: the shape of a tensor."""

    __slots__ = ()

    def __new__(cls, dims: Iterable[int] = ()) -> Shape:
        values = tuple(dims)
        for d in values:
            if d.__class__ is not int:
                if isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)):
                    values = tuple(int(v) for v in values)
                    break
                raise TypeError(f"Shape: dimensions must be ints, got {d!r} in {values!r}")
        return tuple.__new__(cls, values)

    def __repr__(self) -> str:
        return f"Shape({list(self)})"

    @property
    def numel(self) -> int:
        """The number of elements of a tensor of this shape."""
        n = 1
        for d in self:
            n *= d
        return n


_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "int": "int32",
            "long": "int64", "bool8": "bool", "uint1": "bool"}


class DataType(str):
    """A dtype name such as ``"float32"`` or ``"bfloat16"``."""

    __slots__ = ()

    def __new__(cls, value: Any) -> DataType:
        if isinstance(value, DataType):
            return value
        name = dtype_name(value)
        return str.__new__(cls, name)

    def __repr__(self) -> str:
        return f"DataType({str(self)!r})"

    @property
    def numpy(self) -> np.dtype:
        """The matching NumPy dtype (ml_dtypes' for bfloat16 and the low-bit types)."""
        return numpy_dtype(self)

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return numpy_dtype(self).itemsize


def _ml_dtype(name: str) -> np.dtype | None:
    try:
        import ml_dtypes
    except ImportError:
        return None
    scalar = getattr(ml_dtypes, name, None)
    return None if scalar is None else np.dtype(scalar)


_NUMPY_DTYPES: dict[str, np.dtype] = {}

#: The float8 dtype names (ml_dtypes) that ONNX's ``saturate`` attribute applies to.
FLOAT8_DTYPES = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz")
#: Low-bit integer dtype names -> their (min, max) value range.
LOW_BIT_INT_RANGES = {"int4": (-8, 7), "uint4": (0, 15), "int2": (-2, 1), "uint2": (0, 3)}
#: Every low-bit dtype name relaxvm knows (all ml_dtypes types, one byte per element).
LOW_BIT_DTYPES = FLOAT8_DTYPES + ("float8_e8m0fnu", "float4_e2m1fn", "float6_e2m3fn",
                                  "float6_e3m2fn") + tuple(LOW_BIT_INT_RANGES)


def low_bit_available(name: str) -> bool:
    """Whether the installed ml_dtypes provides the low-bit dtype ``name``."""
    return _ml_dtype(name) is not None


def is_ml_dtype(dtype: Any) -> bool:
    """True for ml_dtypes' extension dtypes (bfloat16, float8, int4...), which CuPy and
    NumPy's C type tables do not know."""
    try:
        found = numpy_dtype(dtype)
    except TypeError:
        return False
    return found.type.__module__.split(".")[0] == "ml_dtypes"


def numpy_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype for a name, a NumPy dtype or a scalar type (bfloat16 via ml_dtypes)."""
    if isinstance(dtype, str):
        cached = _NUMPY_DTYPES.get(dtype)
        if cached is not None:
            return cached
        name = _ALIASES.get(dtype, dtype)
        try:
            result = np.dtype(name)
        except TypeError:
            found = _ml_dtype(name)
            if found is None:
                raise TypeError(f"unknown dtype {dtype!r}; expected a NumPy dtype name such as "
                                f"'float32', or an ml_dtypes type such as 'bfloat16', "
                                f"'float8_e4m3fn' or 'int4' (needs the ml_dtypes package)"
                                ) from None
            result = found
        _NUMPY_DTYPES[dtype] = result
        return result
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}") from None


def dtype_name(dtype: Any) -> str:
    """The canonical name (``"float32"``) of anything :func:`numpy_dtype` accepts."""
    return numpy_dtype(dtype).name
