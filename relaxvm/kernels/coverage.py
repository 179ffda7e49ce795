"""What each kernel is tested on: the dtypes, and the tolerance per dtype.

The test suite parameterizes over :func:`dtypes_tested` and compares with
:func:`tolerance`, and ``docs/kernels.md`` prints the same table, so the documented
coverage is the tested coverage. Tolerances are ``numpy.testing.assert_allclose``'s
(rtol, atol), against a float64 reference computed from the same (rounded) inputs.

Classes of tolerance:

* ``exact`` — selection and data movement (relu, max, slice, argmax, ...): bit equality;
* ``elementwise`` — one rounding of a correctly computed value (exp, gelu, divide, ...);
* ``accumulate`` — sums of many terms (matmul, conv, softmax, mean, ...), whose float32
  error grows with the length of the sum.
"""

from __future__ import annotations

from dataclasses import dataclass

TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "exact": {},
    "elementwise": {"float64": (1e-12, 1e-12), "float32": (1e-5, 1e-6),
                    "float16": (2e-3, 1e-3), "bfloat16": (1.6e-2, 1e-2)},
    "accumulate": {"float64": (1e-10, 1e-10), "float32": (1e-4, 1e-4),
                   "float16": (1e-2, 1e-2), "bfloat16": (5e-2, 5e-2)},
}

#: Dtypes whose CUDA cases run only where a run-time probe passes. CuPy 14 supports
#: bfloat16 (minimally, through ml_dtypes): the test harness makes a small bfloat16 array
#: on the GPU and adds it; without that support the cases skip, and a kernel that still
#: raises for bfloat16 on CUDA is reported as xfail with CuPy's error.
CUDA_PROBED_DTYPES = frozenset({"bfloat16"})

FLOATS = ("float32", "float16", "bfloat16")
WIDE_FLOATS = ("float32", "float64")


@dataclass(frozen=True)
class Coverage:
    """The tolerance class and the input dtypes a kernel's tests run with."""

    tolerance: str
    dtypes: tuple[str, ...]


def _table() -> dict[str, Coverage]:
    table: dict[str, Coverage] = {}

    def put(names: str, tol: str, dtypes: tuple[str, ...]) -> None:
        for name in names.split():
            table[name] = Coverage(tol, dtypes)

    put("relu neg abs floor ceil round sign identity max min maximum minimum", "exact",
        FLOATS)
    put("max_pool2d global_max_pool2d reshape transpose concat split slice take "
        "gather_elements expand pad resize_nearest tile trilu", "exact", FLOATS + ("int64",))
    put("argmax argmin", "exact", ("float32", "float16", "int32"))
    put("equal not_equal less less_equal greater greater_equal", "exact",
        ("float32", "float16", "int32"))
    put("logical_and logical_or logical_xor logical_not", "exact", ("bool",))
    put("isnan", "exact", ("float32",))
    put("bitwise_and bitwise_or bitwise_xor bitwise_not", "exact", ("int32", "uint8"))
    put("cast", "exact", ("float32", "float16", "int32", "bool", "bfloat16"))
    put("range", "exact", ("int64", "float32"))
    put("where", "exact", FLOATS + ("int64",))
    put("sigmoid tanh exp log sqrt rsqrt erf silu sin cos tan asin acos atan sinh cosh "
        "asinh acosh atanh reciprocal softplus gelu leaky_relu elu hard_sigmoid clip add "
        "subtract multiply divide power", "elementwise", FLOATS)
    put("mod", "elementwise", ("float32", "int32", "int64"))
    put("matmul matmul_permuted gemm conv2d conv1d avg_pool2d global_avg_pool2d batch_norm "
        "layer_norm softmax log_softmax sum mean prod cumsum", "accumulate", FLOATS)
    # What compiled programs call: a fused chain (tests/kernels/test_fused.py) and the
    # shape-heap programs (tests/kernels/test_shape_program.py, test_dynamic_dims.py).
    put("fused_elementwise", "elementwise", ("float32", "float16", "bool"))
    put("shape_func shape_values bind_dims", "exact", ("int64",))
    # -- resize (linear, cubic) --
    put("resize", "accumulate", FLOATS + ("float64",))
    put("resize_shape", "exact", ("int64",))
    # -- dtypes, cast, quantization, bit shifts --
    # Input dtypes both devices run; the low-bit ml_dtypes types (float8, int4...) are
    # CPU-only (CuPy has none) and are tested on the CPU in tests/kernels/test_quantize.py.
    put("cast_float8", "exact", ("float32", "float16"))
    put("bitshift_left bitshift_right", "exact", ("uint8", "int32", "uint64"))
    put("quantize_linear dynamic_quantize_linear", "exact", ("float32",))
    put("dequantize_linear", "elementwise", ("int8", "uint8", "int32"))
    # -- scatter, gather_nd, selection, einsum, cumprod --
    put("scatter_elements scatter_nd gather_nd topk hardmax one_hot", "exact",
        FLOATS + ("int64",))
    put("einsum cumprod", "accumulate", FLOATS)
    # -- nn: conv_transpose, pooling, lrn --
    put("conv_transpose avg_pool3d lp_pool2d lp_pool3d lrn", "accumulate", FLOATS)
    put("max_pool3d max_pool2d_with_indices max_pool3d_with_indices", "exact",
        FLOATS + ("int64",))
    # -- recurrent: lstm, gru, rnn --
    put("lstm gru rnn", "accumulate", FLOATS + ("float64",))
    # -- signal: dft, stft, mel, det, bitcast, col2im --
    put("dft stft det col2im", "accumulate", WIDE_FLOATS + ("float16",))
    put("mel_weight_matrix", "elementwise", ("float32", "float64"))
    put("bitcast", "exact", ("float32", "int32", "uint8", "float64"))
    # -- image: grid_sample, roi_align, deform_conv, max_unpool, reverse_sequence --
    put("grid_sample roi_align deform_conv", "accumulate", FLOATS)
    put("max_unpool reverse_sequence tensor_scatter", "exact", FLOATS + ("int64",))
    # -- data-dependent shapes: nonzero, compress, unique, nms --
    put("nonzero", "exact", ("float32", "int32", "bool"))
    put("compress", "exact", ("float32", "float16", "int64"))
    put("unique", "exact", ("float32", "int64"))
    put("non_max_suppression", "exact", ("float32",))
    # -- quantized compute: qlinear_matmul, matmul_integer, conv_integer --
    # Integer sums are exact and the float64 rescale rounds once, so results are bit-equal.
    put("matmul_integer qlinear_matmul conv_integer qlinear_conv", "exact", ("int8", "uint8"))
    # -- ml and training domains --
    put("binarizer array_feature_extractor label_encoder", "exact",
        ("float32", "float64", "int64"))
    put("tree_ensemble", "accumulate", ("float32", "float64"))
    put("adagrad adam momentum", "elementwise", WIDE_FLOATS)
    return table


COVERAGE: dict[str, Coverage] = _table()


def coverage_of(kernel: str) -> Coverage:
    """The :class:`Coverage` entry of ``kernel`` (KeyError naming it when absent)."""
    try:
        return COVERAGE[kernel]
    except KeyError:
        raise KeyError(f"coverage_of: kernel {kernel!r} has no coverage entry in "
                       f"relaxvm/kernels/coverage.py") from None


def dtypes_tested(kernel: str, device_type: str = "cpu") -> tuple[str, ...]:
    """The input dtypes ``kernel`` is tested with on ``device_type``; on CUDA those in
    :data:`CUDA_PROBED_DTYPES` run only where the harness's probe passes."""
    if device_type not in ("cpu", "cuda"):
        raise ValueError(f"dtypes_tested: device_type must be 'cpu' or 'cuda', got "
                         f"{device_type!r}")
    return coverage_of(kernel).dtypes


def tolerance(kernel: str, dtype: str) -> tuple[float, float]:
    """(rtol, atol) for ``kernel`` on ``dtype``; (0, 0) means bit-exact."""
    return TOLERANCES[coverage_of(kernel).tolerance].get(dtype, (0.0, 0.0))


def describe(kernel: str) -> str:
    """Human summary, e.g. ``elementwise: float32, float16, bfloat16 (cuda: probed)``."""
    cov = coverage_of(kernel)
    dtypes = [d + (" (cuda: probed)" if d in CUDA_PROBED_DTYPES else "") for d in cov.dtypes]
    return f"{cov.tolerance}: {', '.join(dtypes)}"
