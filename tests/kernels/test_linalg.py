"""matmul and gemm against a float64 sum-of-products reference (no BLAS involved)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_harness import check, dtype_params, random_array, run_kernel, skip_unsupported, wide

from relaxvm.errors import ArgumentError


def reference_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NumPy matmul semantics spelled out: 1-d promotion, batch broadcast, explicit sums."""
    x, y = wide(a), wide(b)
    x2 = x[None, :] if x.ndim == 1 else x
    y2 = y[:, None] if y.ndim == 1 else y
    product = (x2[..., :, :, None] * y2[..., None, :, :]).sum(axis=-2)
    if x.ndim == 1:
        product = product[..., 0, :]
    if y.ndim == 1:
        product = product[..., 0]
    return product


MATMUL_SHAPES = [((32, 32), (32, 32)), ((3, 7), (7, 5)), ((2, 1, 3, 4), (5, 4, 6)),
                 ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 2))]


@pytest.mark.parametrize("dtype", dtype_params("matmul"))
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_follows_numpy_semantics(dev: Any, dtype: str, shapes: Any) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(21)
    a = random_array(rng, shapes[0], dtype, -1, 1)
    b = random_array(rng, shapes[1], dtype, -1, 1)
    expected = reference_matmul(a, b)
    got = run_kernel("matmul", dev, [a, b], expected.shape, dtype)
    check("matmul", got, expected, dtype)


@pytest.mark.parametrize("dtype", dtype_params("gemm"))
@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha, beta, c_shape", [(1.0, 1.0, (5,)), (0.5, 2.0, (4, 5)),
                                                  (1.0, 1.0, None), (2.0, 0.0, (1,)),
                                                  (1.0, -1.5, (4, 1))])
def test_gemm_all_transposes_scales_and_bias_shapes(dev: Any, dtype: str, trans_a: int,
                                                     trans_b: int, alpha: float, beta: float,
                                                     c_shape: Any) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(22)
    a = random_array(rng, (6, 4) if trans_a else (4, 6), dtype, -1, 1)
    b = random_array(rng, (5, 6) if trans_b else (6, 5), dtype, -1, 1)
    c = None if c_shape is None else random_array(rng, c_shape, dtype, -1, 1)
    op_a = wide(a).T if trans_a else wide(a)
    op_b = wide(b).T if trans_b else wide(b)
    expected = alpha * reference_matmul(op_a, op_b)
    if c is not None:
        expected = expected + beta * wide(c)
    got = run_kernel("gemm", dev, [a, b, c], (4, 5), dtype, [alpha, beta, trans_a, trans_b])
    check("gemm", got, expected, dtype)


def test_gemm_as_dense_layer_uses_trans_b(dev: Any) -> None:
    rng = np.random.default_rng(23)
    x = random_array(rng, (2, 784), "float32", -1, 1)
    w = random_array(rng, (512, 784), "float32", -0.1, 0.1)
    bias = random_array(rng, (512,), "float32")
    got = run_kernel("gemm", dev, [x, w, bias], (2, 512), "float32", [1.0, 1.0, 0, 1])
    check("gemm", got, reference_matmul(x, w.T) + wide(bias), "float32")


def test_gemm_rejects_batched_operands(dev: Any) -> None:
    a = np.ones((2, 3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    with pytest.raises(ArgumentError, match=r"gemm: a and b must be 2-d, got shapes "
                                            r"\[2, 3, 4\] and \[4, 5\]"):
        run_kernel("gemm", dev, [a, b, None], (3, 5), "float32")


EINSUM_CASES = [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
                ("...ii->...i", [(2, 3, 3)]), ("i,i", [(6,), (6,)]), ("ij->", [(3, 4)]),
                ("ji", [(3, 4)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
                ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
                ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]), ("i j , j -> i", [(3, 4), (4,)])]


@pytest.mark.parametrize("dtype", dtype_params("einsum"))
@pytest.mark.parametrize("equation, shapes", EINSUM_CASES, ids=str)
def test_einsum_matches_a_float64_einsum(dev: Any, dtype: str, equation: str,
                                         shapes: Any) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(23)
    xs = [random_array(rng, s, dtype, -1, 1) for s in shapes]
    expected = np.einsum(equation.replace(" ", ""), *[wide(x) for x in xs])
    got = run_kernel("einsum", dev, [tuple(xs)], expected.shape, dtype, [equation])
    check("einsum", got, expected, dtype)


def test_einsum_rejects_wrong_operand_count(dev: Any) -> None:
    x = np.ones((2, 2), np.float32)
    with pytest.raises(ArgumentError, match="einsum: equation 'ij,jk->ik' names 2 operands, "
                                            "got 1 tensors"):
        run_kernel("einsum", dev, [(x,)], (2, 2), "float32", ["ij,jk->ik"])


def test_einsum_cuda_path_copies_into_out() -> None:
    from types import SimpleNamespace

    from kernel_harness import ArrayModuleProxy

    from relaxvm.kernels.linalg import einsum
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    out = SimpleNamespace(array=np.empty((2, 4)))
    einsum(ArrayModuleProxy(), (SimpleNamespace(array=a), SimpleNamespace(array=b)), out,
           "ij,jk->ik")
    np.testing.assert_array_equal(out.array, a @ b)


PERMUTED = [  # (a shape, a_perm, b shape, b_perm, out_perm): attention's three layouts
    ((2, 5, 3, 4), (0, 2, 1, 3), (2, 5, 3, 4), (0, 2, 3, 1), None),     # Q @ K^T
    ((2, 3, 5, 5), None, (2, 5, 3, 4), (0, 2, 1, 3), (0, 2, 1, 3)),     # P @ V, heads merged
    ((6, 4), (1, 0), (6, 3), None, (1, 0)),                              # 2-d, both ends
]


@pytest.mark.parametrize("dtype", dtype_params("matmul_permuted"))
@pytest.mark.parametrize("case", PERMUTED, ids=str)
def test_matmul_permuted_equals_transposes_around_a_matmul(dev: Any, dtype: str,
                                                           case: Any) -> None:
    skip_unsupported(dev, dtype)
    sa, pa, sb, pb, po = case
    rng = np.random.default_rng(22)
    a = random_array(rng, sa, dtype, -1, 1)
    b = random_array(rng, sb, dtype, -1, 1)
    x = wide(a) if pa is None else wide(a).transpose(pa)
    y = wide(b) if pb is None else wide(b).transpose(pb)
    product = reference_matmul(x, y)
    expected = product if po is None else product.transpose(po)
    got = run_kernel("matmul_permuted", dev, [a, b], expected.shape, dtype, [pa, pb, po])
    check("matmul_permuted", got, expected, dtype)


def test_matmul_permuted_rejects_a_perm_that_is_not_a_permutation(dev: Any) -> None:
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"matmul_permuted: a_perm must be a permutation "
                                            r"of 0..1, got \[0, 0\]"):
        run_kernel("matmul_permuted", dev, [a, a.T.copy()], (2, 2), "float32",
                   [(0, 0), None, None])
