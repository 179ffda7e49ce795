"""Elementwise unary kernels: ``op(x, out, *attrs)``, the same code on NumPy and CuPy.

Each kernel writes into ``out`` with the array module's ufuncs (``out=``), chaining
in-place passes instead of building temporaries. Kernels with a fused CUDA version
(erf, gelu, sigmoid, silu, rsqrt: one launch instead of four) register their CPU
implementation here and their CUDA one in :mod:`relaxvm.kernels.cuda_fused`.

``cast`` converts between any two dtypes, ml_dtypes' low-bit types (float8, float4,
int4, int2...) included, as ml_dtypes does; ``cast_float8`` is ONNX's conversion into
float8 with its ``saturate`` and E8M0 ``round_mode`` rules, kept a separate op so the
fusion pass (which fuses ``cast`` as a plain conversion) never drops those rules. Both
raise ArgumentError naming the dtype when asked to handle a low-bit type on CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import scratch, zero_cache
from relaxvm.kernels.erf import erf32_into, erf_into
from relaxvm.kernels.quantize import check_device_dtypes, saturate_float8, to_float8e8m0
from relaxvm.kernels.registry import register_builder, register_kernel, register_template
from relaxvm.objects import FLOAT8_DTYPES

#: Kernels that are exactly one ufunc of the array module: kernel name -> ufunc name.
UFUNC_KERNELS = {
    "tanh": "tanh", "exp": "exp", "log": "log", "sqrt": "sqrt", "neg": "negative",
    "abs": "absolute", "floor": "floor", "ceil": "ceil", "round": "rint", "sin": "sin",
    "cos": "cos", "tan": "tan", "asin": "arcsin", "acos": "arccos", "atan": "arctan",
    "sinh": "sinh", "cosh": "cosh", "asinh": "arcsinh", "acosh": "arccosh",
    "atanh": "arctanh", "reciprocal": "reciprocal", "sign": "sign",
    "logical_not": "logical_not", "bitwise_not": "invert", "isnan": "isnan",
}


def _ufunc_builder(name: str, ufunc: str) -> Callable[[Any], Callable[..., None]]:
    def build(xp: Any) -> Callable[..., None]:
        func = getattr(xp, ufunc)

        def kernel(x: Any, out: Any) -> None:
            func(x.array, out=out.array)

        kernel.__name__ = kernel.__qualname__ = name
        kernel.__doc__ = f"out = {ufunc}(x)"
        return kernel

    return build


for _name, _ufunc in UFUNC_KERNELS.items():
    register_builder(_name)(_ufunc_builder(_name, _ufunc))


@register_builder("relu")
def _build_relu(xp: Any) -> Callable[..., None]:
    maximum = xp.maximum
    if xp is not np:
        def relu(x: Any, out: Any) -> None:
            """out = max(x, 0)"""
            maximum(x.array, 0, out=out.array)

        return relu
    # NumPy's maximum against a broadcast scalar skips its SIMD loop (measured 3x slower
    # at 1 MiB than against a full array), so compare with a cached array of zeros.
    zeros = zero_cache()
    last = [np.zeros(0, np.float32)]  # the zeros of the latest call: most calls repeat it

    def relu_cpu(x: Any, out: Any) -> None:
        """out = max(x, 0)"""
        a = x.array
        z = last[0]
        if z.shape != a.shape or z.dtype is not a.dtype:
            z = last[0] = zeros(a.shape, a.dtype)
        maximum(a, z, out=out.array)

    relu_cpu.__name__ = relu_cpu.__qualname__ = "relu"
    return relu_cpu


@register_builder("identity")
def _build_identity(xp: Any) -> Callable[..., None]:
    copyto = xp.copyto

    def identity(x: Any, out: Any) -> None:
        """out = x (a copy)"""
        copyto(out.array, x.array)

    return identity


@register_template("cast")
def cast(xp: Any, x: Any, out: Any) -> None:
    """out = x converted to out's dtype (C-style: floats truncate toward zero into ints;
    low-bit ml_dtypes types convert as ml_dtypes does, floats rounding to nearest even)."""
    if xp is not np:
        check_device_dtypes(xp, "cast", (x.array.dtype, out.array.dtype))
    xp.copyto(out.array, x.array, casting="unsafe")


@register_template("cast_float8")
def cast_float8(xp: Any, x: Any, out: Any, saturate: int = 1, round_mode: str = "up") -> None:
    """out = x converted to a float8 dtype by ONNX Cast's rules (CPU only: ml_dtypes).

    E4M3FN/E4M3FNUZ/E5M2/E5M2FNUZ round to nearest even; with ``saturate`` (the default)
    inf and out-of-range values become +-max, without it inf/NaN as each format allows.
    E8M0 (powers of two) rounds by ``round_mode`` (up, down, nearest)."""
    a, o = x.array, out.array
    check_device_dtypes(xp, "cast_float8", (a.dtype, o.dtype))
    if saturate not in (0, 1):
        raise ArgumentError(f"cast_float8: saturate must be 0 or 1, got {saturate!r}")
    if o.dtype.name == "float8_e8m0fnu":
        xp.copyto(o, to_float8e8m0(xp, a, bool(saturate), round_mode).view(o.dtype))
    elif o.dtype.name in FLOAT8_DTYPES:
        xp.copyto(o, saturate_float8(xp, a, o.dtype) if saturate else a, casting="unsafe")
    else:
        raise ArgumentError(f"cast_float8: out must be a float8 dtype ({', '.join(FLOAT8_DTYPES)}"
                            f" or float8_e8m0fnu), got {o.dtype.name}")


@register_template("softplus")
def softplus(xp: Any, x: Any, out: Any) -> None:
    """out = log(1 + exp(x)), computed without overflow as logaddexp(0, x)."""
    xp.logaddexp(0, x.array, out=out.array)


@register_template("leaky_relu")
def leaky_relu(xp: Any, x: Any, out: Any, alpha: float = 0.01) -> None:
    """out = x where x >= 0, alpha * x elsewhere."""
    a, o = x.array, out.array
    if 0.0 <= alpha <= 1.0:  # then max(x, alpha * x) picks the right branch
        xp.multiply(a, alpha, out=o)
        xp.maximum(a, o, out=o)
    else:
        xp.copyto(o, a)
        xp.copyto(o, a * alpha, where=a < 0)


@register_template("elu")
def elu(xp: Any, x: Any, out: Any, alpha: float = 1.0) -> None:
    """out = x where x > 0, alpha * (exp(x) - 1) elsewhere."""
    a, o = x.array, out.array
    xp.minimum(a, 0, out=o)
    xp.expm1(o, out=o)
    xp.multiply(o, alpha, out=o)
    xp.copyto(o, a, where=a > 0)


@register_template("hard_sigmoid")
def hard_sigmoid(xp: Any, x: Any, out: Any, alpha: float = 0.2, beta: float = 0.5) -> None:
    """out = clip(alpha * x + beta, 0, 1) (ONNX HardSigmoid)."""
    o = out.array
    xp.multiply(x.array, alpha, out=o)
    xp.add(o, beta, out=o)
    xp.clip(o, 0, 1, out=o)


@register_template("clip")
def clip(xp: Any, x: Any, out: Any, min: Any = None, max: Any = None) -> None:  # noqa: A002
    """out = x limited to [min, max]; a None bound is open (ONNX Clip; min > max gives max)."""
    a, o = x.array, out.array
    if min is None and max is None:
        xp.copyto(o, a)
    elif min is None:
        xp.minimum(a, max, out=o)
    elif max is None:
        xp.maximum(a, min, out=o)
    else:
        xp.maximum(a, min, out=o)
        xp.minimum(o, max, out=o)


# -- kernels whose CUDA version is fused (relaxvm.kernels.cuda_fused) --------------------

@register_kernel("sigmoid", "cpu")
def sigmoid(x: Any, out: Any) -> None:
    """out = 1 / (1 + exp(-x))."""
    o = out.array
    np.negative(x.array, out=o)
    np.exp(o, out=o)
    np.add(o, 1, out=o)
    np.reciprocal(o, out=o)


@register_kernel("silu", "cpu")
def silu(x: Any, out: Any) -> None:
    """out = x * sigmoid(x)."""
    sigmoid(x, out)
    np.multiply(out.array, x.array, out=out.array)


@register_kernel("rsqrt", "cpu")
def rsqrt(x: Any, out: Any) -> None:
    """out = 1 / sqrt(x)."""
    o = out.array
    np.sqrt(x.array, out=o)
    np.divide(1, o, out=o)


@register_kernel("erf", "cpu")
def erf(x: Any, out: Any) -> None:
    """out = erf(x) (SciPy's ufunc when installed, else a fitted NumPy approximation)."""
    erf_into(x.array, out.array)


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_APPROXIMATIONS = ("none", "tanh")


def check_gelu_approximate(approximate: str) -> None:
    """Raise ArgumentError unless ``approximate`` is ``"none"`` or ``"tanh"``."""
    if approximate not in GELU_APPROXIMATIONS:
        raise ArgumentError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


@register_kernel("gelu", "cpu")
def gelu(x: Any, out: Any, approximate: str = "none") -> None:
    """out = x * Phi(x): the erf form, or the tanh approximation (ONNX Gelu)."""
    check_gelu_approximate(approximate)
    a, o = x.array, out.array
    if a.dtype == np.float64 or o.dtype == np.float64:
        _gelu_wide(a, o, approximate)
        return
    # float32 work; writing into out early is unsafe when out aliases x (in place).
    target = o if o.dtype == np.float32 and not np.may_share_memory(a, o) else None
    if approximate == "none":
        acc = erf32_into(a, target if target is not None else _spare(a), _INV_SQRT2)
    else:
        acc = target if target is not None else _spare(a)
        np.square(a, out=acc, casting="unsafe")
        np.multiply(acc, 0.044715, out=acc)
        np.add(acc, 1.0, out=acc)
        np.multiply(acc, a, out=acc, casting="unsafe")
        np.multiply(acc, _SQRT_2_OVER_PI, out=acc)
        np.tanh(acc, out=acc)
    np.add(acc, 1.0, out=acc)
    np.multiply(acc, a, out=acc, casting="unsafe")
    np.multiply(acc, 0.5, out=acc)
    if acc is not o:
        np.copyto(o, acc, casting="unsafe")


def _spare(a: np.ndarray) -> np.ndarray:
    # erf32_into uses rows 0-2 of scratch(3, n); a separate (1, n) block is ours.
    return scratch(1, a.size)[0].reshape(a.shape)


def _gelu_wide(a: np.ndarray, o: np.ndarray, approximate: str) -> None:
    v = a.astype(np.float64)
    if approximate == "none":
        phi = np.empty_like(v)
        erf_into(v * _INV_SQRT2, phi)
    else:
        phi = np.tanh(_SQRT_2_OVER_PI * (v + 0.044715 * v ** 3))
    np.copyto(o, 0.5 * v * (1.0 + phi), casting="unsafe")
