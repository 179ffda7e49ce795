"""dft, stft, mel_weight_matrix, det, bitcast and col2im against onnx.reference (float64
inputs) and NumPy float64 formulas, plus their error paths."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_harness import (
    check,
    dtype_params,
    onnx_node_reference,
    random_array,
    run_kernel,
    skip_unsupported,
    wide,
)
from onnx import helper

from relaxvm.errors import ArgumentError
from relaxvm.kernels.signal import dtype_bits, mel_matrix


def onnx_reference(op: str, inputs: list[tuple[str, Any]], opset: int = 20,
                   **attrs: Any) -> np.ndarray:
    """Run one ONNX node with onnx.reference; a None input is left out (empty name)."""
    return onnx_node_reference(op, inputs, opset, **attrs)[0]

def scalar(v: int) -> np.ndarray:
    return np.array(v, np.int64)


def dft_reference(x: np.ndarray, axis: int, inverse: int, onesided: int,
                  length: int | None) -> np.ndarray:
    return onnx_reference("DFT", [("x", wide(x)), ("n", None if length is None else
                                                   scalar(length)), ("a", scalar(axis))],
                          inverse=inverse, onesided=onesided)


DFT_CASES = [  # shape, axis, inverse, onesided, dft_length
    ((2, 8, 1), 1, 0, 0, None), ((2, 8, 2), -2, 0, 0, None), ((3, 5, 4, 1), 2, 0, 0, None),
    ((3, 5, 4, 2), 0, 1, 0, None), ((2, 9, 1), 1, 0, 1, None), ((2, 8, 1), 1, 0, 1, 5),
    ((2, 6, 2), 1, 1, 1, None), ((2, 5, 2), 1, 1, 1, 9), ((2, 6, 2), 1, 0, 0, 10),
    ((2, 6, 2), -2, 1, 0, 4), ((4, 3, 1), 0, 1, 0, 6),
]


@pytest.mark.parametrize("dtype", dtype_params("dft"))
@pytest.mark.parametrize("shape,axis,inverse,onesided,length", DFT_CASES,
                         ids=[f"case{i}" for i in range(len(DFT_CASES))])
def test_dft_matches_onnx_reference(dev: Any, dtype: str, shape: tuple, axis: int,
                                    inverse: int, onesided: int, length: int | None) -> None:
    x = random_array(np.random.default_rng(len(shape) + axis), shape, dtype)
    expected = dft_reference(x, axis, inverse, onesided, length)
    got = run_kernel("dft", dev, [x], expected.shape, dtype, [axis, inverse, onesided, length])
    check("dft", got, expected, dtype)


def test_dft_equals_the_defining_sum(dev: Any) -> None:
    """y[k] = sum_n exp(-2 pi i k n / N) x[n], computed as a float64 matrix product."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 7, 2))
    n = np.arange(7)
    basis = np.exp(-2j * np.pi * np.outer(n, n) / 7)
    z = np.einsum("kn,bn->bk", basis, x[..., 0] + 1j * x[..., 1])
    got = run_kernel("dft", dev, [x], (3, 7, 2), "float64", [1, 0, 0, None])
    check("dft", got, np.stack([z.real, z.imag], -1), "float64")
    back = run_kernel("dft", dev, [got], (3, 7, 2), "float64", [1, 1, 0, None])
    check("dft", back, x, "float64")


@pytest.mark.parametrize("attrs,shape,message", [
    ([2, 0, 0, None], (2, 4, 1), r"dft: axis must be in \[-3, -2\] or \[0, 1\] for a 3-d "
                                 r"input, got 2"),
    ([1, 0, 0, None], (2, 4, 3), r"dft: the input's last axis must be 1 \(real\) or 2"),
    ([1, 2, 0, None], (2, 4, 1), "dft: inverse and onesided must be 0 or 1, got 2 and 0"),
    ([1, 0, 0, 0], (2, 4, 1), "dft: dft_length must be positive, got 0"),
])
def test_dft_rejects_bad_arguments(dev: Any, attrs: list, shape: tuple, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        run_kernel("dft", dev, [np.ones(shape, np.float32)], (2, 4, 2), "float32", attrs)


def test_dft_checks_the_output_shape(dev: Any) -> None:
    with pytest.raises(ArgumentError, match=r"dft: out must have shape \[2, 3, 2\]"):
        run_kernel("dft", dev, [np.ones((2, 4, 1), np.float32)], (2, 4, 2), "float32",
                   [1, 0, 1, None])


STFT_CASES = [  # signal shape, frame_step, frame_length, window?, onesided
    ((1, 32, 1), 4, 8, False, 1), ((2, 30, 1), 3, 8, True, 1), ((2, 20, 2), 5, 6, True, 0),
    ((1, 16, 1), 16, 16, False, 0), ((2, 21, 2), 2, 7, False, 1),
]


@pytest.mark.parametrize("dtype", dtype_params("stft"))
@pytest.mark.parametrize("shape,step,length,windowed,onesided", STFT_CASES,
                         ids=[f"case{i}" for i in range(len(STFT_CASES))])
def test_stft_matches_onnx_reference(dev: Any, dtype: str, shape: tuple, step: int,
                                     length: int, windowed: bool, onesided: int) -> None:
    rng = np.random.default_rng(shape[1] + step)
    x = random_array(rng, shape, dtype)
    window = random_array(rng, (length,), dtype, 0.0, 1.0) if windowed else None
    expected = onnx_reference("STFT", [("x", wide(x)), ("s", scalar(step)),
                                       ("w", None if window is None else wide(window)),
                                       ("n", scalar(length))], opset=17, onesided=onesided)
    got = run_kernel("stft", dev, [x, window], expected.shape, dtype, [step, length, onesided])
    check("stft", got, expected, dtype)


@pytest.mark.parametrize("step,length,window,message", [
    (0, 4, None, r"stft: frame_step must be positive and frame_length in \[1, 8\], got 0"),
    (2, 9, None, r"stft: frame_step must be positive and frame_length in \[1, 8\], got 2 and 9"),
    (2, 4, np.ones(3, np.float32), r"stft: window must have shape \[4\] \(frame_length\)"),
])
def test_stft_rejects_bad_arguments(dev: Any, step: int, length: int, window: Any,
                                    message: str) -> None:
    x = np.ones((1, 8, 1), np.float32)
    with pytest.raises(ArgumentError, match=message):
        run_kernel("stft", dev, [x, window], (1, 3, 3, 2), "float32", [step, length, 1])


MEL_CASES = [(8, 16, 8192, 0.0, 4096.0), (5, 64, 16000, 100.0, 7000.0),
             (10, 257, 22050, 20.0, 11025.0), (3, 31, 1000, 0.0, 499.0)]


@pytest.mark.parametrize("dtype", dtype_params("mel_weight_matrix"))
@pytest.mark.parametrize("n_mel,length,rate,low,high", MEL_CASES)
def test_mel_weight_matrix_matches_onnx_reference(dev: Any, dtype: str, n_mel: int,
                                                  length: int, rate: int, low: float,
                                                  high: float) -> None:
    code = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    expected = onnx_reference("MelWeightMatrix", [
        ("m", scalar(n_mel)), ("n", scalar(length)), ("r", scalar(rate)),
        ("lo", np.array(low, np.float32)), ("hi", np.array(high, np.float32))],
        opset=17, output_datatype=code)
    inputs = [np.array(rate, np.int64), np.array(low, np.float32), np.array(high, np.float32)]
    got = run_kernel("mel_weight_matrix", dev, inputs, expected.shape, dtype, [n_mel, length])
    check("mel_weight_matrix", got, expected, dtype)


def test_mel_matrix_triangles_peak_at_one() -> None:
    table = mel_matrix(6, 128, 16000, 50.0, 7000.0)
    assert table.shape == (65, 6)
    np.testing.assert_array_equal(table.max(axis=0), np.ones(6))
    assert table.min() == 0.0


def test_mel_weight_matrix_rejects_edges_past_the_spectrum(dev: Any) -> None:
    inputs = [np.array(1000, np.int64), np.array(0.0, np.float32), np.array(5000.0, np.float32)]
    with pytest.raises(ArgumentError, match="mel_weight_matrix: the band edges fall on DFT "
                                            "bins"):
        run_kernel("mel_weight_matrix", dev, inputs, (9, 4), "float32", [4, 16])
    with pytest.raises(ArgumentError, match="mel_weight_matrix: num_mel_bins must be >= 0"):
        run_kernel("mel_weight_matrix", dev, inputs, (9, 4), "float32", [4, 0])


@pytest.mark.parametrize("dtype", dtype_params("det"))
@pytest.mark.parametrize("shape", [(2, 2), (3, 2, 2), (2, 3, 4, 4), (1, 1)])
def test_det_matches_numpy_float64(dev: Any, dtype: str, shape: tuple) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(sum(shape)), shape, dtype, -1.5, 1.5)
    expected = np.linalg.det(wide(x))
    got = run_kernel("det", dev, [x], expected.shape, dtype)
    check("det", got, expected, dtype)
    check("det", got, onnx_reference("Det", [("x", wide(x))], opset=22), dtype)


def test_det_rejects_non_square_matrices(dev: Any) -> None:
    with pytest.raises(ArgumentError, match=r"det: x must be \[\*, M, M\], got shape \[2, 3\]"):
        run_kernel("det", dev, [np.ones((2, 3), np.float32)], (), "float32")


BITCAST_PAIRS = [("float32", "int32"), ("int32", "float32"), ("uint8", "int8"),
                 ("bool", "uint8"), ("float64", "uint64"), ("int64", "float64"),
                 ("uint16", "int16"), ("float16", "uint16")]


@pytest.mark.parametrize("src,dst", BITCAST_PAIRS)
def test_bitcast_matches_onnx_reference(dev: Any, src: str, dst: str) -> None:
    rng = np.random.default_rng(7)
    x = random_array(rng, (3, 4), src, -100, 100)
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
    expected = onnx_reference("BitCast", [("x", x)], opset=26, to=to)
    got = run_kernel("bitcast", dev, [x], x.shape, dst)
    assert got.dtype == np.dtype(dst)
    np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("dtype", dtype_params("bitcast"))
def test_bitcast_round_trips_bits(dev: Any, dtype: str) -> None:
    x = random_array(np.random.default_rng(2), (5,), dtype, -9, 9)
    back = run_kernel("bitcast", dev, [run_kernel("bitcast", dev, [x], (5,), f"uint"
                                                  f"{dtype_bits(dtype)}")], (5,), dtype)
    check("bitcast", back, x, dtype)


def test_bitcast_rejects_different_widths(dev: Any) -> None:
    with pytest.raises(ArgumentError, match=r"bitcast: the dtypes must have the same bit "
                                            r"width, got float32 \(32 bits\) and int64 "
                                            r"\(64 bits\)"):
        run_kernel("bitcast", dev, [np.ones(3, np.float32)], (3,), "int64")


COL2IM_CASES = [  # x shape, image, block, dilations, pads, strides
    ((1, 5, 5), (5, 5), (1, 5), None, None, None),
    ((2, 12, 9), (4, 4), (2, 2), None, None, (1, 1)),
    ((1, 4, 5), (6, 6), (2, 2), (1, 5), None, None),
    ((1, 5, 15), (5, 5), (1, 5), None, (0, 1, 0, 1), None),
    ((2, 18, 4), (5, 5), (3, 3), None, None, (2, 2)),
    ((1, 10, 12), (3, 4, 5), (1, 1, 5), None, None, None),
    ((1, 8, 8), (4, 5), (2, 2), (1, 2), (1, 0, 0, 1), (2, 1)),
]


@pytest.mark.parametrize("dtype", dtype_params("col2im"))
@pytest.mark.parametrize("shape,image,block,dilations,pads,strides", COL2IM_CASES,
                         ids=[f"case{i}" for i in range(len(COL2IM_CASES))])
def test_col2im_matches_onnx_reference(dev: Any, dtype: str, shape: tuple, image: tuple,
                                       block: tuple, dilations: Any, pads: Any,
                                       strides: Any) -> None:
    x = random_array(np.random.default_rng(shape[2]), shape, dtype)
    attrs = {k: list(v) for k, v in (("dilations", dilations), ("pads", pads),
                                     ("strides", strides)) if v is not None}
    expected = onnx_reference("Col2Im", [("x", wide(x)), ("i", np.array(image, np.int64)),
                                         ("b", np.array(block, np.int64))], opset=18, **attrs)
    got = run_kernel("col2im", dev, [x], expected.shape, dtype, [block, dilations, pads,
                                                                  strides])
    check("col2im", got, expected, dtype)


@pytest.mark.parametrize("shape,out,attrs,message", [
    ((1, 4, 6), (1, 1, 4, 4), [(2, 2)], r"col2im: x must be \[1, 1 \* 4, 9\] for blocks "
                                        r"\[2, 2\] on a \[3, 3\] grid, got \[1, 4, 6\]"),
    ((1, 4, 9), (1, 1, 4, 4), [(2, 2), (0, 1)], "col2im: block_shape, dilations and strides "
                                                "must be positive"),
    ((1, 4, 9), (1, 1, 4, 4), [(2, 2), None, (0, 0)], "col2im: x must be 3-d and "
                                                      "image_shape, block_shape"),
])
def test_col2im_rejects_inconsistent_shapes(dev: Any, shape: tuple, out: tuple, attrs: list,
                                            message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        run_kernel("col2im", dev, [np.ones(shape, np.float32)], out, "float32", attrs)
