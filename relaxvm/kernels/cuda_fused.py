"""CUDA kernels that fuse several array passes into one launch (CuPy, loaded lazily).

A CuPy launch costs 10-25 us of host time and each pass re-reads memory, so the ops
that NumPy spells as 3-5 ufunc passes get one kernel here: ``ElementwiseKernel`` for
erf / gelu / sigmoid / silu / rsqrt / batch_norm (float16, float32, float64, computing
in float32 for float16), and a ``RawKernel`` with one thread block per row for float32
softmax, log_softmax and layer_norm over trailing axes (a NaN in a row makes the whole
softmax row NaN, as NumPy's does). Other layouts and dtypes fall back to the shared
array-module code in :mod:`relaxvm.kernels.norm`.

Nothing here imports CuPy at import time: kernel objects are built on first call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from relaxvm.kernels.elementwise import check_gelu_approximate
from relaxvm.kernels.norm import (
    batch_norm_coefficients,
    batch_norm_into,
    layer_norm_into,
    softmax_into,
)
from relaxvm.kernels.registry import register_kernel


def _cupy() -> Any:
    from relaxvm.devices.backend import get_backend
    return get_backend(2).xp  # DeviceError with an install hint when CuPy is missing


class LazyKernel:
    """A CuPy kernel object built by ``make(cupy)`` on first :meth:`get`."""

    __slots__ = ("make", "obj")

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self.make = make
        self.obj: Any = None

    def get(self) -> Any:
        """The CuPy kernel, built on first use."""
        obj = self.obj
        if obj is None:
            obj = self.obj = self.make(_cupy())
        return obj


# Compute 2-byte floats (float16) in float32; other types in themselves. Chosen by size so
# the preamble never names float16: CuPy 14 declares that type (cupy/float16.cuh) only in
# kernels with a float16 parameter, and float32/float64 kernels share this preamble.
_ACC_PREAMBLE = r"""
template <typename T, bool narrow = (sizeof(T) < 4)> struct rvm_acc { typedef T type; };
template <typename T> struct rvm_acc<T, true> { typedef float type; };
"""

UNARY_OPS = {
    "erf": "y = (T)erf((A)x);",
    "gelu_none": "A v = (A)x; y = (T)(A(0.5) * v * (A(1) + erf(v * A(0.7071067811865476))));",
    "gelu_tanh": ("A v = (A)x; y = (T)(A(0.5) * v * (A(1) + tanh(A(0.7978845608028654) * "
                  "(v + A(0.044715) * v * v * v))));"),
    "sigmoid": "A v = (A)x; y = (T)(A(1) / (A(1) + exp(-v)));",
    "silu": "A v = (A)x; y = (T)(v / (A(1) + exp(-v)));",
    "rsqrt": "y = (T)(A(1) / sqrt((A)x));",
}


def _elementwise(name: str, body: str) -> LazyKernel:
    return LazyKernel(lambda cp: cp.ElementwiseKernel(
        "T x", "T y", "typedef rvm_acc<T>::type A; " + body, f"rvm_{name}",
        preamble=_ACC_PREAMBLE))


_UNARY = {name: _elementwise(name, body) for name, body in UNARY_OPS.items()}


def _run_unary(op: str, x: Any, out: Any) -> None:
    a, o = x.array, out.array
    if a.dtype.kind == "f" and a.dtype == o.dtype:
        _UNARY[op].get()(a, o)
    else:  # ints or mixed dtypes: compute in float32, convert once
        o[...] = _UNARY[op].get()(a.astype(np.float32))


@register_kernel("erf", "cuda")
def erf(x: Any, out: Any) -> None:
    """out = erf(x), one fused launch."""
    _run_unary("erf", x, out)


@register_kernel("sigmoid", "cuda")
def sigmoid(x: Any, out: Any) -> None:
    """out = 1 / (1 + exp(-x)), one fused launch."""
    _run_unary("sigmoid", x, out)


@register_kernel("silu", "cuda")
def silu(x: Any, out: Any) -> None:
    """out = x * sigmoid(x), one fused launch."""
    _run_unary("silu", x, out)


@register_kernel("rsqrt", "cuda")
def rsqrt(x: Any, out: Any) -> None:
    """out = 1 / sqrt(x), one fused launch."""
    _run_unary("rsqrt", x, out)


@register_kernel("gelu", "cuda")
def gelu(x: Any, out: Any, approximate: str = "none") -> None:
    """out = x * Phi(x) (erf form or tanh approximation), one fused launch."""
    check_gelu_approximate(approximate)
    _run_unary("gelu_none" if approximate == "none" else "gelu_tanh", x, out)


_BATCH_NORM = LazyKernel(lambda cp: cp.ElementwiseKernel(
    "T x, raw A k, raw A b, int64 inner, int64 channels", "T y",
    "const long long c = (i / inner) % channels; y = (T)((A)x * k[c] + b[c]);",
    "rvm_batch_norm"))


@register_kernel("batch_norm", "cuda")
def batch_norm(x: Any, scale: Any, bias: Any, mean: Any, var: Any, out: Any,
               epsilon: float = 1e-5) -> None:
    """Inference batch norm on channel axis 1: y = x * k[c] + b[c] in one launch."""
    a, o = x.array, out.array
    if a.dtype.kind != "f" or a.dtype != o.dtype or a.ndim < 2:
        batch_norm_into(_cupy(), a, scale.array, bias.array, mean.array, var.array, o,
                        epsilon)
        return
    k, b = batch_norm_coefficients(_cupy(), scale.array, bias.array, mean.array, var.array,
                                   epsilon, o.dtype)
    inner = int(np.prod(a.shape[2:], dtype=np.int64))
    _BATCH_NORM.get()(a, k, b, np.int64(inner), np.int64(a.shape[1]), o)


# -- row kernels: one block per row of a (rows, cols) float32 matrix -------------------

_ROW_SOURCE = r"""
// A max that propagates NaN, as NumPy's max does (fmaxf would return the other operand).
__device__ __forceinline__ float rvm_max(float a, float b) {
    return (a != a || a > b) ? a : b;
}

__device__ __forceinline__ float rvm_block_reduce(float v, float* buf, int use_max) {
    const int t = threadIdx.x;
    buf[t] = v;
    __syncthreads();
    for (int width = blockDim.x >> 1; width > 0; width >>= 1) {
        if (t < width) {
            const float other = buf[t + width];
            buf[t] = use_max ? rvm_max(buf[t], other) : buf[t] + other;
        }
        __syncthreads();
    }
    float result = buf[0];
    __syncthreads();
    return result;
}

extern "C" __global__ void rvm_softmax_rows(const float* x, float* y, int cols, int log_mode) {
    extern __shared__ float buf[];
    const long long base = (long long)blockIdx.x * cols;
    const float* xr = x + base;
    float* yr = y + base;
    float peak = -__int_as_float(0x7f800000);  // -inf
    for (int j = threadIdx.x; j < cols; j += blockDim.x) peak = rvm_max(peak, xr[j]);
    peak = rvm_block_reduce(peak, buf, 1);
    float total = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) total += expf(xr[j] - peak);
    total = rvm_block_reduce(total, buf, 0);
    if (log_mode) {
        const float shift = peak + logf(total);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - shift;
    } else {
        const float inv = 1.0f / total;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - peak) * inv;
    }
}

extern "C" __global__ void rvm_layer_norm_rows(const float* x, const float* gamma,
                                               const float* beta, float* y, int cols,
                                               float eps, int has_beta) {
    extern __shared__ float buf[];
    const long long base = (long long)blockIdx.x * cols;
    const float* xr = x + base;
    float* yr = y + base;
    float total = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) total += xr[j];
    const float mean = rvm_block_reduce(total, buf, 0) / cols;
    float spread = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float d = xr[j] - mean;
        spread += d * d;
    }
    const float inv = rsqrtf(rvm_block_reduce(spread, buf, 0) / cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float v = (xr[j] - mean) * inv * gamma[j];
        yr[j] = has_beta ? v + beta[j] : v;
    }
}
"""

_SOFTMAX_ROWS = LazyKernel(lambda cp: cp.RawKernel(_ROW_SOURCE, "rvm_softmax_rows"))
_LAYER_NORM_ROWS = LazyKernel(lambda cp: cp.RawKernel(_ROW_SOURCE, "rvm_layer_norm_rows"))


def row_threads(cols: int) -> int:
    """Threads per row block: a power of two from 32 to 512, about one per element."""
    threads = 32
    while threads < cols and threads < 512:
        threads *= 2
    return threads


def _rows_ready(*arrays: Any) -> bool:
    return all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays)


def _launch_rows(kernel: LazyKernel, rows: int, cols: int, args: tuple[Any, ...]) -> None:
    if rows == 0 or cols == 0:
        return
    threads = row_threads(cols)
    kernel.get()((rows,), (threads,), args, shared_mem=threads * 4)


def _softmax(x: Any, out: Any, axis: int, log: bool) -> None:
    a, o = x.array, out.array
    last = axis in (-1, a.ndim - 1)
    if not (last and a.ndim and _rows_ready(a, o) and a.shape[-1] < 2 ** 31):
        softmax_into(_cupy(), a, o, axis, log)
        return
    cols = a.shape[-1]
    _launch_rows(_SOFTMAX_ROWS, a.size // max(cols, 1), cols,
                 (a, o, np.int32(cols), np.int32(log)))


@register_kernel("softmax", "cuda")
def softmax(x: Any, out: Any, axis: int = -1) -> None:
    """Softmax along ``axis``; one launch for contiguous float32 over the last axis."""
    _softmax(x, out, axis, False)


@register_kernel("log_softmax", "cuda")
def log_softmax(x: Any, out: Any, axis: int = -1) -> None:
    """Log-softmax along ``axis``; one launch for contiguous float32 over the last axis."""
    _softmax(x, out, axis, True)


@register_kernel("layer_norm", "cuda")
def layer_norm(x: Any, scale: Any, bias: Any, out: Any, axis: int = -1,
               epsilon: float = 1e-5) -> None:
    """Layer norm over axes ``axis..end``; one launch for contiguous float32."""
    a, o, g = x.array, out.array, scale.array
    b = None if bias is None else bias.array
    start = axis + a.ndim if axis < 0 else axis
    cols = int(np.prod(a.shape[start:], dtype=np.int64)) if 0 <= start < a.ndim else -1
    fits = cols > 0 and g.size == cols and (b is None or b.size == cols)
    if not (fits and _rows_ready(a, o, g, *(() if b is None else (b,)))):
        layer_norm_into(_cupy(), a, g, b, o, axis, epsilon)
        return
    _launch_rows(_LAYER_NORM_ROWS, a.size // cols, cols,
                 (a, g, g if b is None else b, o, np.int32(cols), np.float32(epsilon),
                  np.int32(b is not None)))
