"""cumprod (ONNX CumProd) against a float64 running product, every flag combination."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_harness import check, dtype_params, random_array, run_kernel, skip_unsupported, wide

from relaxvm.errors import ArgumentError


def reference_cumprod(x: np.ndarray, axis: int, exclusive: int, reverse: int) -> np.ndarray:
    """ONNX CumProd spelled out: flip, shift in a 1 for exclusive, running product."""
    a = wide(x)
    if reverse:
        a = np.flip(a, axis)
    if exclusive:
        ones = np.ones_like(np.take(a, [0], axis=axis))
        a = np.concatenate([ones, np.delete(a, -1, axis=axis)], axis=axis)
    out = np.cumprod(a, axis=axis)
    return np.flip(out, axis) if reverse else out


@pytest.mark.parametrize("dtype", dtype_params("cumprod"))
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumprod_matches_onnx_semantics(dev: Any, dtype: str, axis: int, exclusive: int,
                                        reverse: int) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(24), (3, 6, 4), dtype, 0.5, 1.5)
    expected = reference_cumprod(x, axis, exclusive, reverse)
    got = run_kernel("cumprod", dev, [x], x.shape, dtype, [axis, exclusive, reverse])
    check("cumprod", got, expected, dtype)


def test_cumprod_of_int32_stays_int32(dev: Any) -> None:
    x = np.array([1, 2, 3, 4], np.int32)
    got = run_kernel("cumprod", dev, [x], x.shape, "int32", [0, 1, 1])
    np.testing.assert_array_equal(got, np.array([24, 12, 4, 1], np.int32))


def test_cumprod_rejects_bad_axis(dev: Any) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"cumprod: axis must be in \[-2, 2\) for a 2-d "
                                            r"tensor, got 3"):
        run_kernel("cumprod", dev, [x], x.shape, "float32", [3])
