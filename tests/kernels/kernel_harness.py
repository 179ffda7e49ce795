"""Run a kernel on a device the way the VM does, and compare with a float64 reference.

``run_kernel("add", dev, [a, b], out_shape, out_dtype)`` puts NumPy inputs on ``dev``,
allocates ``out``, calls the kernel positionally and returns ``out`` as a host array.
``check`` compares it with a reference at the documented tolerance of the kernel and
dtype (:mod:`relaxvm.kernels.coverage`), so the tests and ``docs/kernels.md`` agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import relaxvm
from relaxvm.kernels import get_kernel
from relaxvm.kernels.coverage import CPU_ONLY_DTYPES, dtypes_tested, tolerance
from relaxvm.objects import numpy_dtype


def dtype_params(kernel: str) -> list[Any]:
    """pytest params over the dtypes ``kernel`` is documented as tested with."""
    return [pytest.param(d, id=d) for d in dtypes_tested(kernel)]


def skip_unsupported(dev: relaxvm.Device, dtype: str) -> None:
    """Skip CPU-only dtypes (bfloat16) on CUDA."""
    if dev.device_type != 1 and dtype in CPU_ONLY_DTYPES:
        pytest.skip(f"{dtype} is tested on the CPU only (CuPy has no {dtype})")


def random_array(rng: np.random.Generator, shape: Sequence[int], dtype: str,
                 low: float = -3.0, high: float = 3.0) -> np.ndarray:
    """Uniform values in [low, high) rounded to ``dtype`` (ints: integers in that range)."""
    np_dtype = numpy_dtype(dtype)
    if np_dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np_dtype.kind in "iu":
        return rng.integers(int(low), int(high), size=shape).astype(np_dtype)
    return rng.uniform(low, high, size=shape).astype(np_dtype)


def to_device(value: Any, dev: relaxvm.Device) -> Any:
    """NumPy arrays become Tensors on ``dev``; tuples recurse; anything else passes."""
    if isinstance(value, np.ndarray):
        return relaxvm.tensor(value, dev)
    if isinstance(value, tuple):
        return tuple(to_device(v, dev) for v in value)
    return value


def run_kernel(name: str, dev: relaxvm.Device, inputs: Sequence[Any],
               out_shape: Sequence[int], out_dtype: Any, attrs: Sequence[Any] = ()
               ) -> np.ndarray:
    """Call kernel ``name`` on ``dev`` as ``kernel(*inputs, out, *attrs)``; return out."""
    out = relaxvm.empty(tuple(out_shape), numpy_dtype(out_dtype), dev)
    result = get_kernel(name, dev.device_type)(*[to_device(v, dev) for v in inputs], out,
                                                *attrs)
    assert result is None, f"{name} must return None (destination passing), got {result!r}"
    return out.numpy()


def run_multi(name: str, dev: relaxvm.Device, inputs: Sequence[Any],
              outs: Sequence[tuple[Sequence[int], Any]], attrs: Sequence[Any] = ()
              ) -> list[np.ndarray]:
    """Like :func:`run_kernel` for kernels with a tuple of outputs (``outs``)."""
    tensors = tuple(relaxvm.empty(tuple(s), numpy_dtype(d), dev) for s, d in outs)
    get_kernel(name, dev.device_type)(*[to_device(v, dev) for v in inputs], tensors, *attrs)
    return [t.numpy() for t in tensors]


def wide(array: np.ndarray) -> np.ndarray:
    """float64 copy for references (bfloat16 and float16 included); ints/bools unchanged."""
    array = np.asarray(array)
    if array.dtype.kind in "biu":
        return array
    return array.astype(np.float64)


def check(kernel: str, got: np.ndarray, expected: np.ndarray, dtype: str) -> None:
    """``got`` equals ``expected`` within the documented tolerance of (kernel, dtype)."""
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{kernel}: shape {got.shape} != {expected.shape}"
    rtol, atol = tolerance(kernel, dtype)
    if got.dtype.kind in "biu" or (rtol == 0 and atol == 0):
        exp = expected.astype(got.dtype) if expected.dtype.kind in "biu" else expected
        np.testing.assert_array_equal(wide(got), wide(exp), err_msg=f"{kernel} {dtype}")
        return
    np.testing.assert_allclose(wide(got), wide(expected), rtol=rtol, atol=atol,
                               err_msg=f"{kernel} {dtype}")
