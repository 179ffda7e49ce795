"""The coverage table that drives test dtypes, tolerances and docs/kernels.md."""

from __future__ import annotations

import pytest

from relaxvm.kernels.coverage import (
    CUDA_PROBED_DTYPES,
    TOLERANCES,
    coverage_of,
    describe,
    dtypes_tested,
    tolerance,
)


def test_cuda_is_tested_on_every_documented_dtype_with_bfloat16_probed() -> None:
    assert dtypes_tested("add", "cpu") == ("float32", "float16", "bfloat16")
    assert dtypes_tested("add", "cuda") == dtypes_tested("add", "cpu")
    assert CUDA_PROBED_DTYPES == {"bfloat16"}


def test_dtypes_tested_rejects_unknown_device_types() -> None:
    with pytest.raises(ValueError, match=r"dtypes_tested: device_type must be 'cpu' or "
                                         r"'cuda', got 'tpu'"):
        dtypes_tested("add", "tpu")


def test_tolerance_follows_the_kernel_class() -> None:
    assert tolerance("matmul", "float32") == TOLERANCES["accumulate"]["float32"]
    assert tolerance("exp", "float16") == TOLERANCES["elementwise"]["float16"]
    assert tolerance("slice", "float32") == (0.0, 0.0)
    assert tolerance("mod", "int32") == (0.0, 0.0)


def test_accumulating_tolerances_are_looser_than_elementwise() -> None:
    for dtype, (rtol, atol) in TOLERANCES["elementwise"].items():
        wide_rtol, wide_atol = TOLERANCES["accumulate"][dtype]
        assert wide_rtol >= rtol and wide_atol >= atol


def test_describe_names_class_and_marks_probed_cuda_dtypes() -> None:
    assert describe("gelu") == "elementwise: float32, float16, bfloat16 (cuda: probed)"
    assert coverage_of("argmax").dtypes == ("float32", "float16", "int32")


def test_unknown_kernel_has_no_coverage() -> None:
    with pytest.raises(KeyError, match="coverage_of: kernel 'nope' has no coverage entry"):
        coverage_of("nope")
