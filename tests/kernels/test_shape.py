"""reshape, transpose, concat, split, expand, tile, trilu and range against index loops."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from kernel_harness import (
    check,
    dtype_params,
    random_array,
    run_kernel,
    run_multi,
    skip_unsupported,
    wide,
)

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels import get_kernel


def _values(dtype: str, shape: Any, seed: int = 71) -> np.ndarray:
    return random_array(np.random.default_rng(seed), shape, dtype, -50, 50)


@pytest.mark.parametrize("dtype", dtype_params("reshape"))
def test_reshape_keeps_c_order(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = _values(dtype, (2, 3, 4))
    got = run_kernel("reshape", dev, [x], (4, 6), dtype)
    check("reshape", got, np.array(wide(x).ravel().tolist()).reshape(4, 6), dtype)


def test_reshape_rejects_size_change(dev: Any) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"reshape: x has 6 elements \[2, 3\] but out has 8 "
                                            r"\[2, 4\]"):
        run_kernel("reshape", dev, [x], (2, 4), "float32")


@pytest.mark.parametrize("dtype", dtype_params("transpose"))
@pytest.mark.parametrize("perm", [None, (1, 0, 2), (2, 0, 1), (0, 2, 1)], ids=str)
def test_transpose_moves_every_element(dev: Any, dtype: str, perm: Any) -> None:
    skip_unsupported(dev, dtype)
    x = _values(dtype, (2, 3, 4))
    order = perm if perm is not None else (2, 1, 0)
    out_shape = tuple(x.shape[p] for p in order)
    expected = np.empty(out_shape)
    for idx in itertools.product(*[range(d) for d in out_shape]):
        src = [0, 0, 0]
        for out_axis, in_axis in enumerate(order):
            src[in_axis] = idx[out_axis]
        expected[idx] = wide(x)[tuple(src)]
    got = run_kernel("transpose", dev, [x], out_shape, dtype, [perm])
    check("transpose", got, expected, dtype)


def test_transpose_rejects_non_permutation(dev: Any) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"transpose: perm must be a permutation of "
                                            r"range\(2\), got \(0, 0\)"):
        run_kernel("transpose", dev, [x], (2, 3), "float32", [(0, 0)])


@pytest.mark.parametrize("dtype", dtype_params("concat"))
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_joins_along_axis(dev: Any, dtype: str, axis: int) -> None:
    skip_unsupported(dev, dtype)
    parts = [_values(dtype, (2, 3), 1), _values(dtype, (2, 3), 2), _values(dtype, (2, 3), 3)]
    ax = axis % 2
    if ax == 0:
        expected = [row for p in parts for row in wide(p).tolist()]
    else:
        expected = [sum((wide(p)[r].tolist() for p in parts), []) for r in range(2)]
    out_shape = (6, 3) if ax == 0 else (2, 9)
    got = run_kernel("concat", dev, [tuple(parts)], out_shape, dtype, [axis])
    check("concat", got, np.array(expected), dtype)


@pytest.mark.parametrize("dtype", dtype_params("split"))
def test_split_sizes_come_from_outputs(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = _values(dtype, (3, 7))
    got = run_multi("split", dev, [x], [((3, 2), dtype), ((3, 4), dtype), ((3, 1), dtype)],
                    [1])
    columns = wide(x).T.tolist()
    for piece, (lo, hi) in zip(got, [(0, 2), (2, 6), (6, 7)], strict=False):
        check("split", piece, np.array(columns[lo:hi]).T, dtype)


def test_split_rejects_lengths_that_do_not_add_up(dev: Any) -> None:
    x = np.ones((3, 7), np.float32)
    with pytest.raises(ArgumentError, match=r"split: outs have lengths \[2, 2\] on axis 1, which "
                                            r"sum to 4, but x has 7"):
        run_multi("split", dev, [x], [((3, 2), "float32"), ((3, 2), "float32")], [1])


@pytest.mark.parametrize("dtype", dtype_params("expand"))
def test_expand_broadcasts(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = _values(dtype, (3, 1))
    got = run_kernel("expand", dev, [x], (2, 3, 4), dtype)
    expected = [[[wide(x)[i, 0]] * 4 for i in range(3)]] * 2
    check("expand", got, np.array(expected), dtype)


@pytest.mark.parametrize("dtype", dtype_params("tile"))
@pytest.mark.parametrize("repeats", [(2, 3), (1, 1), (3, 1)], ids=str)
def test_tile_repeats_each_axis(dev: Any, dtype: str, repeats: Any) -> None:
    skip_unsupported(dev, dtype)
    x = _values(dtype, (2, 3))
    out_shape = (2 * repeats[0], 3 * repeats[1])
    expected = np.empty(out_shape)
    for i, j in itertools.product(range(out_shape[0]), range(out_shape[1])):
        expected[i, j] = wide(x)[i % 2, j % 3]
    got = run_kernel("tile", dev, [x], out_shape, dtype, [repeats])
    check("tile", got, expected, dtype)


def test_tile_rejects_wrong_repeat_count(dev: Any) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"tile: repeats must have one entry per axis of x "
                                            r"\[2, 3\]"):
        run_kernel("tile", dev, [x], (4, 3), "float32", [(2,)])


@pytest.mark.parametrize("dtype", dtype_params("trilu"))
@pytest.mark.parametrize("upper, k", [(1, 0), (1, 1), (1, -2), (0, 0), (0, -1), (0, 2)])
def test_trilu_keeps_one_triangle_of_batched_matrices(dev: Any, dtype: str, upper: int,
                                                      k: int) -> None:
    skip_unsupported(dev, dtype)
    x = _values(dtype, (2, 4, 5))
    expected = wide(x).copy()
    for b, i, j in itertools.product(range(2), range(4), range(5)):
        keep = (j - i >= k) if upper else (j - i <= k)
        if not keep:
            expected[b, i, j] = 0
    got = run_kernel("trilu", dev, [x], x.shape, dtype, [upper, k])
    check("trilu", got, expected, dtype)


@pytest.mark.parametrize("dtype", dtype_params("range"))
def test_range_from_tensor_or_python_scalars(dev: Any, dtype: str) -> None:
    start, delta = (3, -2) if dtype == "int64" else (0.5, 0.25)
    n = 7
    expected = np.array([start + i * delta for i in range(n)])
    for args in ([start, start + n * delta, delta],
                 [np.array(start, dtype), np.array(start + n * delta, dtype),
                  np.array(delta, dtype)]):
        got = run_kernel("range", dev, args, (n,), dtype)
        check("range", got, expected, dtype)


def test_range_on_host_scalars_fills_device_output(dev: Any) -> None:
    host = [relaxvm.tensor(np.array(v, np.int64)) for v in (1, 9, 2)]
    out = relaxvm.empty((4,), "int64", dev)
    get_kernel("range", "cpu")(*host, out)
    np.testing.assert_array_equal(out.numpy(), [1, 3, 5, 7])


def test_range_rejects_zero_delta(dev: Any) -> None:
    with pytest.raises(ArgumentError, match="range: delta must be non-zero, got 0"):
        run_kernel("range", dev, [0, 5, 0], (5,), "int64")
