"""Shared kernel helpers: axes, precision, window views, zero and scratch caches."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from relaxvm.errors import ArgumentError
from relaxvm.kernels import common
from relaxvm.kernels.common import (
    contiguous_view,
    is_low_precision,
    normalize_axes,
    normalize_axis,
    pad_spatial,
    scratch,
    window_view,
    zero_cache,
)
from relaxvm.objects import numpy_dtype


def test_normalize_axis_counts_negatives_from_the_end() -> None:
    assert normalize_axis(-1, 3, "f") == 2 and normalize_axis(0, 3, "f") == 0
    assert normalize_axes((-1, 0), 2, "f") == (1, 0) and normalize_axes(None, 2, "f") is None


def test_normalize_axis_error_names_function_parameter_and_range() -> None:
    with pytest.raises(ArgumentError, match=r"argmax: axis must be in \[-2, 2\) for a 2-d "
                                            r"tensor, got -3"):
        normalize_axis(-3, 2, "argmax")


def test_low_precision_covers_float16_and_bfloat16_only() -> None:
    assert is_low_precision(np.float16) and is_low_precision(numpy_dtype("bfloat16"))
    assert not is_low_precision(np.float32) and not is_low_precision(np.int16)


def test_window_view_picks_strided_offsets() -> None:
    x = np.arange(2 * 3 * 6 * 7, dtype=np.float32).reshape(2, 3, 6, 7)
    view = window_view(np, x, (1, 2), (3, 2), (2, 3))
    expected = x[:, :, 1:1 + 2 * 3:2, 2:2 + 3 * 2:3]
    np.testing.assert_array_equal(view, expected)


def test_window_view_of_non_contiguous_input_copies_first() -> None:
    x = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 1, 5, 5)[:, :, :, ::-1]
    np.testing.assert_array_equal(window_view(np, x, (0, 1), (5, 2), (1, 2)),
                                  x[:, :, 0:5, 1:5:2])


def test_pad_spatial_pads_only_spatial_axes_and_rejects_negatives() -> None:
    x = np.ones((1, 2, 2, 2), np.float32)
    padded = pad_spatial(np, x, (1, 0), (0, 2), value=-5.0)
    assert padded.shape == (1, 2, 3, 4) and padded[0, 0, 0, 0] == -5.0
    assert pad_spatial(np, x, (0, 0), (0, 0)) is x
    with pytest.raises(ArgumentError, match=r"max_pool2d: pads must be non-negative, got "
                                            r"\[0, -1, 0, 0\]"):
        pad_spatial(np, x, (0, -1), (0, 0), where="max_pool2d")


def test_contiguous_view_refuses_to_copy() -> None:
    x = np.zeros((4, 6))
    assert contiguous_view(x, (2, 12)).base is x
    assert contiguous_view(x[:, ::2], (12,)) is None


def test_zero_cache_reuses_read_only_arrays_and_drops_past_limit() -> None:
    zeros = zero_cache(limit_bytes=100)
    first = zeros((3,), np.dtype(np.float64))
    assert zeros((3,), np.dtype(np.float64)) is first and not first.flags.writeable
    big = zeros((10,), np.dtype(np.float64))  # 24 + 80 > 100: the cache restarts
    assert zeros((3,), np.dtype(np.float64)) is not first
    assert not big.any()


def test_scratch_is_reused_per_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    a = scratch(2, 10)
    assert scratch(2, 10) is a and a.shape == (2, 10) and a.dtype == np.float32
    other: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: other.append(scratch(2, 10)))
    worker.start()
    worker.join()
    assert other[0] is not a
    monkeypatch.setattr(common, "SCRATCH_LIMIT_BYTES", 100)
    scratch(1, 1000)
    assert scratch(2, 10) is not a
