"""The harness's bfloat16-on-CUDA handling, with fake CuPy modules: probe, skip, xfail."""

from __future__ import annotations

import re
import sys
import types
from typing import Any

import kernel_harness
import numpy as np
import pytest
from kernel_harness import cuda_dtype_problem, skip_unsupported

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.objects import numpy_dtype

BF16 = numpy_dtype("bfloat16")


def fake_cupy(monkeypatch: pytest.MonkeyPatch, version: str, asarray: Any) -> None:
    """Install a ``cupy`` module whose arrays are NumPy's, with ``asarray`` replaced."""
    module = types.ModuleType("cupy")
    module.__version__ = version  # type: ignore[attr-defined]
    module.asarray = asarray  # type: ignore[attr-defined]
    module.asnumpy = np.asarray  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", module)
    cuda_dtype_problem.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_probe():
    cuda_dtype_problem.cache_clear()
    yield
    cuda_dtype_problem.cache_clear()


def test_probe_passes_where_cupy_adds_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cupy(monkeypatch, "14.0.0", np.asarray)
    assert cuda_dtype_problem("bfloat16") is None


def test_probe_says_which_cupy_failed_and_how(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(array: Any) -> Any:
        raise TypeError("Unsupported dtype bfloat16")

    fake_cupy(monkeypatch, "13.6.0", refuse)
    assert cuda_dtype_problem("bfloat16") == (
        "CuPy 13.6.0 does not support bfloat16 here (TypeError: Unsupported dtype bfloat16); "
        "CuPy 14 with ml_dtypes installed does")


def test_probe_catches_wrong_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cupy(monkeypatch, "14.0.0", lambda a: np.zeros_like(a))
    assert cuda_dtype_problem("bfloat16").startswith("CuPy 14.0.0 computes bfloat16 1 + 1 wrongly")


def test_bfloat16_on_cuda_skips_with_the_probe_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_harness, "cuda_dtype_problem", lambda d: "no bf16 today")
    with pytest.raises(pytest.skip.Exception, match="no bf16 today"):
        skip_unsupported(relaxvm.cuda(0), "bfloat16")
    skip_unsupported(relaxvm.cpu(0), "bfloat16")     # the CPU always runs it
    skip_unsupported(relaxvm.cuda(0), "float16")     # other dtypes are never probed


def _raise(exc: BaseException) -> Any:
    def call() -> None:
        raise exc
    return call


@pytest.mark.parametrize("exc", [TypeError("Wrong type ((dtype('bfloat16'),))"),
                                 NotImplementedError("bfloat16 matmul"),
                                 ArgumentError("fused: no CUDA type for bfloat16")])
def test_kernel_refusing_bfloat16_on_cuda_is_an_xfail_naming_it(
        monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    monkeypatch.setattr(kernel_harness, "cuda_dtype_problem", lambda d: None)
    x = np.ones(3, BF16)
    with pytest.raises(pytest.xfail.Exception,
                       match=r"matmul does not support bfloat16 on CUDA yet \(.*"
                       + re.escape(str(exc))):
        kernel_harness._guarded("matmul", relaxvm.cuda(0), [x], "bfloat16", _raise(exc))


@pytest.mark.parametrize("dev, dtype, exc", [
    (relaxvm.cuda(0), "bfloat16", AssertionError("wrong values")),  # a wrong result fails
    (relaxvm.cuda(0), "bfloat16", ArgumentError("matmul: shapes do not match")),
    (relaxvm.cuda(0), "float32", TypeError("a real bug")),           # only probed dtypes
    (relaxvm.cpu(0), "bfloat16", TypeError("a real bug")),           # and only on CUDA
])
def test_other_failures_stay_failures(monkeypatch: pytest.MonkeyPatch, dev: Any, dtype: str,
                                      exc: BaseException) -> None:
    monkeypatch.setattr(kernel_harness, "cuda_dtype_problem", lambda d: None)
    x = np.ones(3, numpy_dtype(dtype))
    with pytest.raises(type(exc), match=re.escape(str(exc))):
        kernel_harness._guarded("matmul", dev, [x], dtype, _raise(exc))


def test_output_dtype_alone_marks_a_case_as_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_harness, "cuda_dtype_problem", lambda d: None)
    x = np.ones(3, np.float32)                         # cast float32 -> bfloat16
    with pytest.raises(pytest.xfail.Exception, match="cast does not support bfloat16"):
        kernel_harness._guarded("cast", relaxvm.cuda(0), [x], "bfloat16",
                                _raise(TypeError("no loop")))
