"""Constant-pool values: what an executable may hold as a constant, and how to handle one.

Constant pool values are host objects: ``numpy.ndarray`` (tensors, any numeric dtype, bool,
float16, ml_dtypes' bfloat16...), :class:`~relaxvm.objects.Shape`,
:class:`~relaxvm.objects.DataType`, ``str``, ``int`` (64-bit), ``float``, ``bool``,
``None`` and ``tuple`` (an Array of constants, nested) — the last is our extension over
TVM so kernel attributes such as float lists can be constants.

This module holds everything that is about one constant (or a pool of them) rather than
about the executable: normalising a value into canonical form (the builder), spotting a
non-canonical one (validation, saving), structural keys for dedup and equality, and the
text forms used by ``Executable.stats()`` and ``Executable.as_python()``. It imports
nothing from :mod:`relaxvm.vm.executable`, which re-exports these names.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.objects import DataType, Shape

MAX_NESTING = 32  # deepest Array-in-Array nesting of a constant (bounds recursion)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def tensor_dtype_supported(dtype: np.dtype) -> bool:
    """True for dtypes a tensor constant may have: bool, ints, floats, complex, and the
    ml_dtypes extension types (bfloat16, float8...). Object, string and record dtypes
    cannot be saved portably."""
    return dtype.kind in "biufc" or (dtype.kind == "V" and dtype.type.__module__ == "ml_dtypes")


def _normalize_array(arr: np.ndarray) -> np.ndarray:
    if not tensor_dtype_supported(arr.dtype):
        raise ValueError(f"tensor dtype {arr.dtype} is not supported (expected bool, int, "
                         f"uint, float, complex or an ml_dtypes type such as bfloat16)")
    dtype = arr.dtype.newbyteorder("=") if arr.dtype.kind in "iufc" else arr.dtype
    return np.array(arr, dtype=dtype, order="C", copy=True)


def normalize_constant(obj: Any, depth: int = 0) -> Any:
    """``obj`` in the canonical form the constant pool stores.

    A relaxvm Tensor becomes its host ``.numpy()`` copy, arrays are copied (C order,
    native byte order), NumPy scalars become Python scalars, lists become tuples.
    Raises ValueError naming the offending value for anything else.
    """
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        if not INT64_MIN <= int(obj) <= INT64_MAX:
            raise ValueError(f"int constant {int(obj)} does not fit in 64 bits")
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if obj is None or isinstance(obj, (Shape, DataType)):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, np.dtype):
        return DataType(obj)
    if isinstance(obj, np.ndarray):
        return _normalize_array(obj)
    if isinstance(obj, (tuple, list)):
        if depth >= MAX_NESTING:
            raise ValueError(f"Array constants nest deeper than {MAX_NESTING} levels")
        return tuple(normalize_constant(item, depth + 1) for item in obj)
    if hasattr(obj, "numpy") and hasattr(obj, "device") and hasattr(obj, "storage"):
        return _normalize_array(obj.numpy())
    raise ValueError(f"a constant must be a tensor, numpy array, Shape, DataType, str, int, "
                     f"float, bool, None or a tuple of those, got {type(obj).__name__}")


def constant_defect(obj: Any, depth: int = 0) -> str | None:
    """Why ``obj`` is not a canonical constant-pool value, or None when it is.

    Cheap (no copies), so loading and saving large tensors stays fast."""
    if isinstance(obj, np.ndarray):
        if not tensor_dtype_supported(obj.dtype):
            return f"tensor dtype {obj.dtype} is not supported"
        if not obj.dtype.isnative and obj.dtype.itemsize > 1:
            return f"tensor dtype {obj.dtype.str} is not in native byte order"
        return None
    if isinstance(obj, int) and not isinstance(obj, bool):
        ok = INT64_MIN <= obj <= INT64_MAX
        return None if ok else f"int constant {obj} does not fit in 64 bits"
    if obj is None or isinstance(obj, (bool, float, str)):  # str covers DataType
        return None
    if type(obj) is tuple:
        if depth >= MAX_NESTING:
            return f"Array constants nest deeper than {MAX_NESTING} levels"
        return next((p for item in obj if (p := constant_defect(item, depth + 1))), None)
    if isinstance(obj, Shape) and all(INT64_MIN <= d <= INT64_MAX for d in obj):
        return None
    return (f"{type(obj).__name__} is not a constant-pool type (tensor, Shape, DataType, "
            f"str, int, float, bool, None or tuple)")


def constant_key(obj: Any, digest: bool = False) -> Any:
    """A hashable structural key: equal keys mean interchangeable constants.

    Tensors compare by dtype, shape and bytes; ``1``, ``1.0`` and ``True`` differ; floats
    compare by bit pattern (0.0 differs from -0.0), and every NaN equals every NaN.
    ``digest=True`` keys tensors by a BLAKE2b digest of their bytes instead of the bytes,
    so a dedup table does not hold a second copy of every weight.
    """
    if isinstance(obj, np.ndarray):
        data = obj.tobytes()
        return ("tensor", obj.dtype.name, obj.shape,
                hashlib.blake2b(data).digest() if digest else data)
    if isinstance(obj, Shape):
        return ("shape", tuple(obj))
    if isinstance(obj, DataType):
        return ("dtype", str(obj))
    if isinstance(obj, tuple):
        return ("tuple", tuple(constant_key(item, digest) for item in obj))
    if isinstance(obj, float):
        return ("float", "nan" if obj != obj else struct.pack("<d", obj))
    return (type(obj).__name__, obj)


def constant_pools_equal(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """True when two constant pools hold interchangeable constants in the same order.

    Compares by :func:`constant_key` (so tensors by bytes, ``1`` unlike ``1.0``), which
    ``==`` on the raw values cannot do: NumPy arrays compare element-wise."""
    return len(a) == len(b) and all(constant_key(x) == constant_key(y)
                                    for x, y in zip(a, b, strict=True))


def render_constant(obj: Any) -> str:
    """A constant as ``stats()`` prints it (TVM's style: tensors by shape or ``scalar``)."""
    if isinstance(obj, np.ndarray):
        return f"[{', '.join(map(str, obj.shape))}]" if obj.ndim else "scalar"
    if isinstance(obj, Shape):
        return f"shapetuple[{', '.join(map(str, obj))}]"
    if isinstance(obj, DataType):
        return str(obj)
    if isinstance(obj, str):
        return f'"{obj}"'
    if isinstance(obj, tuple):
        return "(" + ", ".join(render_constant(item) for item in obj) + ")"
    return repr(obj)


def python_constant(obj: Any) -> str:
    """Python source that rebuilds ``obj`` exactly (used by ``as_python``).

    Tensors become ``host_array(dtype, shape, hex)`` calls; ``host_array`` lives in
    :mod:`relaxvm.vm.builder`, which the generated source imports."""
    if isinstance(obj, np.ndarray):
        return f"host_array({obj.dtype.name!r}, {list(obj.shape)}, {obj.tobytes().hex()!r})"
    if isinstance(obj, Shape):
        return f"Shape({list(obj)})"
    if isinstance(obj, DataType):
        return f"DataType({str(obj)!r})"
    if isinstance(obj, tuple):
        items = [python_constant(item) for item in obj]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(obj, float) and not np.isfinite(obj):
        return f"float({repr(obj)!r})"
    return repr(obj)
