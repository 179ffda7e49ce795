"""resize (nearest, linear, cubic; antialias, roi, axes, policies) and resize_shape against
onnx.reference."""

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
)

from relaxvm.errors import ArgumentError
from relaxvm.kernels.resize import MATRIX_AXIS_LIMIT
from relaxvm.objects import numpy_dtype

OPSET = 19
ATTRS = ("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
         "exclude_outside", "extrapolation_value", "antialias", "axes",
         "keep_aspect_ratio_policy", "static_scales", "static_roi")
DEFAULTS = {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
            "nearest_mode": "round_prefer_floor", "cubic_coeff_a": -0.75,
            "exclude_outside": 0, "extrapolation_value": 0.0, "antialias": 0, "axes": None,
            "keep_aspect_ratio_policy": "stretch", "static_scales": None, "static_roi": None}


def reference(x: np.ndarray, roi: Any = None, scales: Any = None, sizes: Any = None,
              **attrs: Any) -> np.ndarray:
    """onnx.reference's Resize; a None input is left out."""
    inputs = [("x", x), ("roi", roi), ("scales", scales), ("sizes", sizes)]
    while inputs[-1][1] is None:
        inputs.pop()
    return onnx_node_reference("Resize", inputs, OPSET,
                               **{k: v for k, v in attrs.items() if v is not None})[0]

def run_resize(dev: Any, x: np.ndarray, out_shape: Any, roi: Any = None, scales: Any = None,
               sizes: Any = None, dtype: Any = None, **attrs: Any) -> np.ndarray:
    """The resize kernel with run-time (tensor) roi/scales/sizes and the given attributes."""
    values = [attrs.get(name, DEFAULTS[name]) for name in ATTRS]
    return run_kernel("resize", dev, [x, roi, scales, sizes], out_shape,
                      dtype or x.dtype, values)


def f32(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


CTMS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
        "asymmetric"]


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("sizes", [(1, 2, 7, 9), (1, 2, 3, 2), (1, 1, 4, 6)], ids=str)
def test_resize_sizes_match_onnx(dev: Any, mode: str, ctm: str, sizes: Any) -> None:
    if ctm == "pytorch_half_pixel" and mode == "cubic" and 1 in sizes:
        pytest.skip("onnx.reference maps a length-1 axis to -0.5, the spec to 0 (see below)")
    x = random_array(np.random.default_rng(1), (1, 2, 4, 6), "float32")
    expected = reference(x, sizes=i64(*sizes), mode=mode, coordinate_transformation_mode=ctm)
    got = run_resize(dev, x, expected.shape, sizes=i64(*sizes), mode=mode,
                     coordinate_transformation_mode=ctm)
    check("resize", got, expected, "float32")


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_pytorch_half_pixel_maps_length_one_to_zero(dev: Any, mode: str) -> None:
    """The spec (and onnxruntime) put the only output of a length-1 axis at input 0."""
    x = random_array(np.random.default_rng(10), (3, 4), "float32")
    got = run_resize(dev, x, (1, 4), sizes=i64(1, 4), mode=mode,
                     coordinate_transformation_mode="pytorch_half_pixel")
    check("resize", got, x[:1], "float32")


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("scales", [(1.0, 1.0, 1.7, 2.0), (1.0, 1.0, 0.6, 0.55)], ids=str)
def test_resize_scales_match_onnx_static_and_runtime(dev: Any, mode: str, ctm: str,
                                                     scales: Any) -> None:
    x = random_array(np.random.default_rng(2), (1, 2, 5, 6), "float32")
    expected = reference(x, scales=f32(*scales), mode=mode, coordinate_transformation_mode=ctm)
    got = run_resize(dev, x, expected.shape, scales=f32(*scales), mode=mode,
                     coordinate_transformation_mode=ctm)
    check("resize", got, expected, "float32")
    static = tuple(float(s) for s in f32(*scales))
    got = run_resize(dev, x, expected.shape, mode=mode, coordinate_transformation_mode=ctm,
                     static_scales=static)
    check("resize", got, expected, "float32")


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("scales", [(1.0, 1.0, 0.6, 0.3), (1.0, 1.0, 0.5, 1.5)], ids=str)
def test_resize_antialias_widens_the_filter_when_downsampling(dev: Any, mode: str,
                                                              scales: Any) -> None:
    x = random_array(np.random.default_rng(3), (1, 2, 8, 10), "float32")
    expected = reference(x, scales=f32(*scales), mode=mode, antialias=1)
    got = run_resize(dev, x, expected.shape, scales=f32(*scales), mode=mode, antialias=1)
    check("resize", got, expected, "float32")


@pytest.mark.parametrize("a", [-0.5, -0.75])
@pytest.mark.parametrize("exclude", [0, 1])
@pytest.mark.parametrize("antialias", [0, 1])
def test_resize_cubic_coeff_and_exclude_outside(dev: Any, a: float, exclude: int,
                                                antialias: int) -> None:
    x = random_array(np.random.default_rng(4), (1, 1, 6, 5), "float32")
    sizes = i64(1, 1, 4, 9)
    expected = reference(x, sizes=sizes, mode="cubic", cubic_coeff_a=a,
                         exclude_outside=exclude, antialias=antialias)
    got = run_resize(dev, x, expected.shape, sizes=sizes, mode="cubic", cubic_coeff_a=a,
                     exclude_outside=exclude, antialias=antialias)
    check("resize", got, expected, "float32")


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("extrapolation", [0.0, 10.0])
def test_resize_tf_crop_and_resize_with_roi(dev: Any, mode: str, extrapolation: float) -> None:
    x = random_array(np.random.default_rng(5), (1, 1, 4, 5), "float32")
    roi = f32(0, 0, -0.2, 0.4, 1, 1, 0.6, 1.3)
    sizes = i64(1, 1, 3, 6)
    expected = reference(x, roi=roi, sizes=sizes, mode=mode,
                         coordinate_transformation_mode="tf_crop_and_resize",
                         extrapolation_value=extrapolation)
    common = {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize",
              "extrapolation_value": extrapolation}
    got = run_resize(dev, x, expected.shape, roi=roi, sizes=sizes, **common)
    check("resize", got, expected, "float32")
    got = run_resize(dev, x, expected.shape, **common,
                     static_roi=tuple(float(r) for r in roi))
    check("resize", got, expected, "float32")


@pytest.mark.parametrize("axes", [(2, 3), (3, 2), (1,)], ids=str)
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_axes_with_runtime_scales_and_roi(dev: Any, axes: Any, mode: str) -> None:
    x = random_array(np.random.default_rng(6), (1, 3, 4, 5), "float32")
    scales = f32(*[1.5, 0.8][:len(axes)])
    expected = reference(x, scales=scales, mode=mode, axes=list(axes))
    got = run_resize(dev, x, expected.shape, scales=scales, mode=mode, axes=axes)
    check("resize", got, expected, "float32")
    roi = f32(*([0.1] * len(axes) + [0.9] * len(axes)))
    sizes = i64(*[3, 6][:len(axes)])
    expected = reference(x, roi=roi, sizes=sizes, mode=mode, axes=list(axes),
                         coordinate_transformation_mode="tf_crop_and_resize")
    got = run_resize(dev, x, expected.shape, roi=roi, sizes=sizes, mode=mode, axes=axes,
                     coordinate_transformation_mode="tf_crop_and_resize")
    check("resize", got, expected, "float32")


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("sizes", [(7, 7), (3, 2)], ids=str)
def test_resize_keep_aspect_ratio_policy(dev: Any, policy: str, mode: str, sizes: Any) -> None:
    x = random_array(np.random.default_rng(7), (1, 1, 4, 6), "float32")
    expected = reference(x, sizes=i64(*sizes), mode=mode, axes=[2, 3],
                         keep_aspect_ratio_policy=policy)
    shape = run_kernel("resize_shape", dev, [x, None, i64(*sizes)], (4,), "int64",
                       [(2, 3), policy])
    assert tuple(shape) == expected.shape
    got = run_resize(dev, x, expected.shape, sizes=i64(*sizes), mode=mode, axes=(2, 3),
                     keep_aspect_ratio_policy=policy)
    check("resize", got, expected, "float32")


@pytest.mark.parametrize("shape,sizes", [((2, 3, 5), (2, 3, 8)),
                                         ((1, 2, 3, 4, 5), (1, 2, 5, 3, 7))], ids=str)
@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_3d_and_5d(dev: Any, shape: Any, sizes: Any, mode: str) -> None:
    x = random_array(np.random.default_rng(8), shape, "float32")
    expected = reference(x, sizes=i64(*sizes), mode=mode)
    got = run_resize(dev, x, expected.shape, sizes=i64(*sizes), mode=mode)
    check("resize", got, expected, "float32")


@pytest.mark.parametrize("dtype", dtype_params("resize"))
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_dtypes_round_once(dev: Any, dtype: str, mode: str) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(9), (1, 2, 5, 4), dtype, -9, 9)
    ref_x = x.astype(np.float64)
    scales = f32(1, 1, 1.6, 0.75)
    expected = reference(ref_x, scales=scales, mode=mode)
    got = run_resize(dev, x, expected.shape, scales=scales, mode=mode,
                     dtype=numpy_dtype(dtype))
    # onnx.reference evaluates the cubic filter with a float32 cubic_coeff_a, so its
    # float64 cubic results carry float32 rounding.
    check("resize", got, expected, "float32" if (mode, dtype) == ("cubic", "float64") else dtype)


def test_resize_shape_from_runtime_scales(dev: Any) -> None:
    x = np.zeros((2, 3, 5, 7), np.float32)
    got = run_kernel("resize_shape", dev, [x, f32(0.7, 2.5), None], (4,), "int64", [(-1, 2)])
    assert got.tolist() == [2, 3, 12, 4]
    got = run_kernel("resize_shape", dev, [x, None, i64(4, 6, 10, 3)], (4,), "int64")
    assert got.tolist() == [4, 6, 10, 3]


def test_resize_to_an_empty_axis_and_from_one(dev: Any) -> None:
    x = random_array(np.random.default_rng(12), (1, 5, 1), "float32")
    got = run_resize(dev, x, (1, 0, 1), scales=f32(1, 0.1, 1), mode="linear")
    assert got.shape == (1, 0, 1)
    got = run_resize(dev, x, (1, 5, 3), sizes=i64(1, 5, 3), mode="cubic")
    check("resize", got, np.repeat(x, 3, axis=2), "float32")


def test_resize_rejects_bad_attributes(dev: Any) -> None:
    x = np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(ArgumentError, match="resize: mode must be one of nearest, linear, "
                                            "cubic, got 'area'"):
        run_resize(dev, x, (1, 1, 4, 4), mode="area")
    with pytest.raises(ArgumentError, match="resize: coordinate_transformation_mode must be "
                                            "one of .*, got 'corner'"):
        run_resize(dev, x, (1, 1, 4, 4), coordinate_transformation_mode="corner")
    with pytest.raises(ArgumentError, match="resize: keep_aspect_ratio_policy must be one of "
                                            "stretch, not_larger, not_smaller, got 'fit'"):
        run_resize(dev, x, (1, 1, 4, 4), sizes=i64(4, 4), axes=(2, 3),
                   keep_aspect_ratio_policy="fit")
    with pytest.raises(ArgumentError, match="resize: tf_crop_and_resize needs a roi"):
        run_resize(dev, x, (1, 1, 4, 4), coordinate_transformation_mode="tf_crop_and_resize")
    with pytest.raises(ArgumentError, match=r"resize: roi must have 2 \* 2 entries, got 3"):
        run_resize(dev, x, (1, 1, 4, 4), roi=f32(0, 0, 1), axes=(2, 3),
                   coordinate_transformation_mode="tf_crop_and_resize")
    with pytest.raises(ArgumentError, match="resize: scales must have one entry per resized "
                                            r"axis \(4\), got \[2.0\]"):
        run_resize(dev, x, (1, 1, 4, 4), scales=f32(2))
    with pytest.raises(ArgumentError, match="resize: axes must be unique, got"):
        run_resize(dev, x, (1, 1, 4, 4), scales=f32(2, 2), axes=(2, -2))
    with pytest.raises(ArgumentError, match="resize: axis 2 cannot resize 0 to 4 elements"):
        run_resize(dev, np.ones((1, 1, 0, 2), np.float32), (1, 1, 4, 4), mode="linear")
    with pytest.raises(ArgumentError, match="resize_shape: needs scales or sizes"):
        run_kernel("resize_shape", dev, [x, None, None], (4,), "int64")


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("width", [MATRIX_AXIS_LIMIT, MATRIX_AXIS_LIMIT + 44])
def test_resize_matches_onnx_on_both_sides_of_the_matrix_axis_limit(dev: Any, mode: str,
                                                                    width: int) -> None:
    # Axes up to MATRIX_AXIS_LIMIT long resize as one matrix product, longer ones by
    # gathering their taps: both must agree with onnx.reference.
    x = np.random.default_rng(8).standard_normal((1, 2, 5, width)).astype(np.float32)
    sizes = i64(1, 2, 9, width * 2 - 3)
    expected = reference(x, None, None, sizes, mode=mode)
    got = run_resize(dev, x, tuple(sizes), sizes=sizes, mode=mode)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_axis_filters_are_cached_read_only_and_reused_across_calls() -> None:
    from relaxvm.kernels.resize import axis_filter
    args = (20, 40, 2.0, 40.0, "half_pixel", (0.0, 1.0), "linear", -0.75, False, False)
    idx, w, dense = axis_filter(*args)
    assert axis_filter(*args)[2] is dense and not dense.flags.writeable
    np.testing.assert_allclose(dense.sum(axis=1), 1.0)      # each output a convex mix
    assert idx.shape == w.shape == (40, 2)
