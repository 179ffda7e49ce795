"""MatMul and Gemm converters against onnxruntime (relaxvm/frontend/onnx/linalg.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.frontend.onnx.onnx_case import check_node

rng = np.random.default_rng(2)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("a,b", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)),
                                 ((3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_follows_numpy_rules(a: tuple, b: tuple) -> None:
    check_node("MatMul", {"a": f32(*a), "b": f32(*b)}, atol=1e-5)


@pytest.mark.parametrize("attrs", [{}, {"transA": 1}, {"transB": 1, "alpha": 0.5, "beta": 2.0}])
def test_gemm_with_transposes_and_scales(attrs: dict) -> None:
    a = f32(4, 3) if attrs.get("transA") else f32(3, 4)
    b = f32(5, 4) if attrs.get("transB") else f32(4, 5)
    check_node("Gemm", {"a": a}, attrs, initializers={"b": b, "c": f32(5)}, atol=1e-5)


def test_gemm_without_c() -> None:
    check_node("Gemm", {"a": f32(3, 4), "b": f32(4, 2)}, atol=1e-5)
