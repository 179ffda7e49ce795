"""Linear algebra kernels: ``matmul`` (NumPy semantics), ``matmul_permuted`` (a matmul
reading and writing permuted views, which the compiler's transpose folding emits),
``gemm`` (ONNX Gemm) and ``einsum`` (ONNX Einsum).

Both go to BLAS on the CPU and cuBLAS on CUDA through ``xp.matmul(..., out=)``, which
reads transposed operands as strided views instead of copying them. NumPy has no
float16/bfloat16 BLAS (its fallback loop was measured 60x slower than float32 at 256^2),
so on the CPU those dtypes multiply in float32 and round once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.registry import register_builder, register_template


def _narrow_float(dtype: np.dtype) -> bool:
    # float16 is kind "f", ml_dtypes' bfloat16 is kind "V"; both are 2 bytes wide.
    return dtype.itemsize == 2 and dtype.kind in "fV"


def matmul_into(xp: Any, a: Any, b: Any, out: Any) -> None:
    """``out[...] = a @ b`` for native arrays, widening narrow floats on the CPU."""
    if xp is np and _narrow_float(out.dtype):
        wide = np.matmul(a.astype(np.float32), b.astype(np.float32))
        np.copyto(out, wide, casting="unsafe")
    else:
        xp.matmul(a, b, out=out)


@register_builder("matmul")
def _build_matmul(xp: Any) -> Callable[..., None]:
    mm = xp.matmul
    if xp is not np:
        def matmul(a: Any, b: Any, out: Any) -> None:
            """out = a @ b (NumPy matmul: batched broadcasting, 1-d operands)."""
            mm(a.array, b.array, out=out.array)

        return matmul

    dot = np.dot

    def matmul_cpu(a: Any, b: Any, out: Any) -> None:
        """out = a @ b (NumPy matmul: batched broadcasting, 1-d operands)."""
        o, x, y = out.array, a.array, b.array
        if o.dtype.itemsize == 2 and _narrow_float(o.dtype):
            matmul_into(np, x, y, o)
        elif x.ndim == 2 and y.ndim == 2 and x.dtype is o.dtype and y.dtype is o.dtype:
            dot(x, y, out=o)  # same BLAS call, ~350 ns less dispatch than matmul at 32^2
        else:
            mm(x, y, out=o)

    matmul_cpu.__name__ = matmul_cpu.__qualname__ = "matmul"
    return matmul_cpu


@register_template("gemm")
def gemm(xp: Any, a: Any, b: Any, c: Any, out: Any, alpha: float = 1.0, beta: float = 1.0,
         trans_a: int = 0, trans_b: int = 0) -> None:
    """out = alpha * op(a) @ op(b) + beta * c (ONNX Gemm; ``c`` may be None or broadcast).

    A dense layer is ``gemm(x, w, bias, out, trans_b=1)``.
    """
    x, y, o = a.array, b.array, out.array
    if x.ndim != 2 or y.ndim != 2:
        raise ArgumentError(f"gemm: a and b must be 2-d, got shapes {list(x.shape)} and "
                            f"{list(y.shape)}")
    matmul_into(xp, x.T if trans_a else x, y.T if trans_b else y, o)
    if alpha != 1.0:
        xp.multiply(o, alpha, out=o)
    if c is None or beta == 0.0:
        return
    if beta == 1.0:
        xp.add(o, c.array, out=o)
    else:
        xp.add(o, c.array * beta, out=o)


@register_template("einsum")
def einsum(xp: Any, xs: Sequence[Any], out: Any, equation: str) -> None:
    """out = einsum(equation, *xs) (ONNX Einsum: explicit ``->`` output or the implicit
    one, ``...`` broadcasting). Three or more operands let the library pick a
    contraction order; float16/bfloat16 contract in float32 on the CPU and round once.
    CuPy's einsum has no ``out=``, so on CUDA the result is copied into out."""
    eq = equation.replace(" ", "")
    arrays = [t.array for t in xs]
    if eq.partition("->")[0].count(",") + 1 != len(arrays):
        raise ArgumentError(f"einsum: equation {equation!r} names "
                            f"{eq.partition('->')[0].count(',') + 1} operands, got "
                            f"{len(arrays)} tensors")
    optimize = len(arrays) > 2
    o = out.array
    if xp is not np:  # CuPy's einsum takes no out=
        xp.copyto(o, xp.einsum(eq, *arrays, optimize=optimize), casting="unsafe")
    elif _narrow_float(o.dtype):
        wide = np.einsum(eq, *[a.astype(np.float32) for a in arrays], optimize=optimize)
        np.copyto(o, wide, casting="unsafe")
    else:
        np.einsum(eq, *arrays, out=o, optimize=optimize)


def check_perm(perm: Sequence[int] | None, ndim: int, where: str, name: str) -> None:
    """ArgumentError unless ``perm`` is None or a permutation of ``range(ndim)``."""
    if perm is not None and sorted(int(p) for p in perm) != list(range(ndim)):
        raise ArgumentError(f"{where}: {name} must be a permutation of 0..{ndim - 1}, got "
                            f"{list(perm)}")


@register_template("matmul_permuted")
def matmul_permuted(xp: Any, a: Any, b: Any, out: Any, a_perm: Sequence[int] | None = None,
                    b_perm: Sequence[int] | None = None,
                    out_perm: Sequence[int] | None = None) -> None:
    """out = transpose(transpose(a, a_perm) @ transpose(b, b_perm), out_perm); a None perm
    is the identity.

    The compiler folds the transposes around attention (heads split out of the hidden
    axis, K transposed, heads merged back) into this kernel: BLAS reads and writes such
    permuted views in place through its leading dimensions, so no transposed copy is
    made. On CUDA a permuted ``out`` is computed contiguously and copied into place.
    """
    x, y, o = a.array, b.array, out.array
    check_perm(a_perm, x.ndim, "matmul_permuted", "a_perm")
    check_perm(b_perm, y.ndim, "matmul_permuted", "b_perm")
    check_perm(out_perm, o.ndim, "matmul_permuted", "out_perm")
    if a_perm is not None:
        x = x.transpose(tuple(a_perm))
    if b_perm is not None:
        y = y.transpose(tuple(b_perm))
    if out_perm is None:
        matmul_into(xp, x, y, o)
        return
    inverse = [0] * len(out_perm)
    for i, p in enumerate(out_perm):
        inverse[int(p)] = i
    view = o.transpose(tuple(inverse))
    if xp is np:
        matmul_into(xp, x, y, view)
    else:
        xp.copyto(view, xp.matmul(x, y))
