"""grid_sample, roi_align, deform_conv, max_unpool, reverse_sequence, tensor_scatter and pad
with a tensor constant_value, against onnx.reference (float64 inputs for the reference)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from kernel_harness import (
    ArrayModuleProxy,
    check,
    dtype_params,
    onnx_node_reference,
    random_array,
    run_kernel,
    skip_unsupported,
    wide,
)
from onnx import TensorProto, helper

from relaxvm.errors import ArgumentError
from relaxvm.kernels.image import reverse_sequence, roi_align, tensor_scatter

OPSET = 24


def onnx_reference(op: str, inputs: list[tuple[str, np.ndarray | None]], **attrs: Any) -> Any:
    """Run one ONNX node with onnx.reference; a None input is left out (empty name)."""
    return onnx_node_reference(op, inputs, OPSET, **attrs)[0]

def onnxruntime_grid_sample(x: np.ndarray, grid: np.ndarray, **attrs: Any) -> np.ndarray:
    """GridSample on onnxruntime (float32): its cubic border mode clamps each tap, as
    PyTorch does, where onnx.reference clamps the location first."""
    node = helper.make_node("GridSample", ["x", "g"], ["y"], **attrs)
    infos = [helper.make_tensor_value_info(n, TensorProto.FLOAT, v.shape)
             for n, v in (("x", x), ("g", grid))]
    graph = helper.make_graph([node], "g", infos,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.astype(np.float32), "g": grid.astype(np.float32)})[0]


def grid_sample_reference(x: np.ndarray, grid: np.ndarray, **attrs: Any) -> np.ndarray:
    if attrs.get("mode") == "cubic" and attrs.get("padding_mode") == "border":
        return onnxruntime_grid_sample(x, grid, **attrs)
    return onnx_reference("GridSample", [("x", wide(x)), ("g", wide(grid))], **attrs)


def ref_input(x: np.ndarray) -> np.ndarray:
    """The reference's copy of an input: float64 for floats (exact), ints unchanged."""
    return x if x.dtype.kind in "iu" else wide(x)


GRID_CASES = [(mode, padding, align) for mode in ("linear", "nearest", "cubic")
              for padding in ("zeros", "border", "reflection") for align in (0, 1)]


@pytest.mark.parametrize("dtype", dtype_params("grid_sample"))
@pytest.mark.parametrize("mode, padding, align", GRID_CASES, ids=str)
def test_grid_sample_2d_matches_onnx(dev: Any, dtype: str, mode: str, padding: str,
                                     align: int) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(91)
    x = random_array(rng, (2, 3, 4, 5), dtype)
    grid = random_array(rng, (2, 3, 6, 2), dtype, -1.6, 1.6)  # some points outside
    expected = grid_sample_reference(x, grid, mode=mode, padding_mode=padding,
                                     align_corners=align)
    got = run_kernel("grid_sample", dev, [x, grid], expected.shape, dtype,
                     [mode, padding, align])
    check("grid_sample", got, expected, dtype)


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_grid_sample_3d_matches_onnx(dev: Any, mode: str, padding: str) -> None:
    if (mode, padding) == ("cubic", "border"):
        pytest.skip("no reference: onnxruntime has no 5-d cubic GridSample, and "
                    "onnx.reference clamps cubic border locations differently")
    rng = np.random.default_rng(92)
    x = random_array(rng, (1, 2, 3, 4, 3), "float32")
    grid = random_array(rng, (1, 2, 3, 2, 3), "float32", -1.3, 1.3)
    expected = grid_sample_reference(x, grid, mode=mode, padding_mode=padding)
    got = run_kernel("grid_sample", dev, [x, grid], expected.shape, "float32",
                     [mode, padding, 0])
    check("grid_sample", got, expected, "float32")


def test_grid_sample_rejects_bad_mode_and_grid(dev: Any) -> None:
    x, grid = np.ones((1, 1, 2, 2), np.float32), np.zeros((1, 2, 2, 2), np.float32)
    with pytest.raises(ArgumentError, match="grid_sample: mode must be one of linear, "
                                            "nearest, cubic, got 'bilinear'"):
        run_kernel("grid_sample", dev, [x, grid], (1, 1, 2, 2), "float32", ["bilinear"])
    with pytest.raises(ArgumentError, match="grid_sample: padding_mode must be one of"):
        run_kernel("grid_sample", dev, [x, grid], (1, 1, 2, 2), "float32", ["linear", "wrap"])
    with pytest.raises(ArgumentError, match=r"grid_sample: grid must be \(N, \*out_spatial, "
                                            r"2\) for x \[1, 1, 2, 2\], got \[1, 2, 2, 3\]"):
        run_kernel("grid_sample", dev, [x, np.zeros((1, 2, 2, 3), np.float32)],
                   (1, 1, 2, 2), "float32")


def roi_boxes(rng: np.random.Generator, count: int, size: float) -> np.ndarray:
    """Random (x1, y1, x2, y2) boxes, some reaching past the image."""
    corner = rng.uniform(-2, size, (count, 2))
    extent = rng.uniform(0.5, size / 1.5, (count, 2))
    return np.concatenate([corner, corner + extent], axis=1).astype(np.float32)


@pytest.mark.parametrize("dtype", dtype_params("roi_align"))
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ctm", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("ratio, scale", [(2, 1.0), (0, 0.5), (1, 2.0)], ids=str)
def test_roi_align_matches_onnx(dev: Any, dtype: str, mode: str, ctm: str, ratio: int,
                                scale: float) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(93)
    x = random_array(rng, (2, 3, 9, 8), dtype)
    rois = roi_boxes(rng, 5, 8 / scale).astype(x.dtype)
    batch = rng.integers(0, 2, 5).astype(np.int64)
    expected = onnx_reference("RoiAlign", [("x", wide(x)), ("r", wide(rois)), ("b", batch)],
                              mode=mode, output_height=3, output_width=4,
                              sampling_ratio=ratio, spatial_scale=scale,
                              coordinate_transformation_mode=ctm)
    got = run_kernel("roi_align", dev, [x, rois, batch], expected.shape, dtype,
                     [mode, ratio, scale, ctm])
    check("roi_align", got, expected, dtype)


def test_roi_align_groups_adaptive_grids_without_host_checks() -> None:
    """The device path (no range check) on NumPy, with per-ROI adaptive grids."""
    rng = np.random.default_rng(94)
    x = rng.standard_normal((1, 2, 12, 12)).astype(np.float32)
    rois = np.array([[0, 0, 11, 11], [2, 3, 4, 5], [1, 1, 1, 1]], np.float32)
    batch = np.zeros(3, np.int64)
    expected = onnx_reference("RoiAlign", [("x", x), ("r", rois), ("b", batch)],
                              output_height=2, output_width=2)
    out = np.empty(expected.shape, np.float32)
    roi_align(ArrayModuleProxy(), *map(_t, (x, rois, batch, out)))
    check("roi_align", out, expected, "float32")


def _t(a: np.ndarray) -> Any:
    return SimpleNamespace(array=a)


def test_roi_align_rejects_bad_inputs(dev: Any) -> None:
    x, rois, batch = np.ones((1, 1, 4, 4), np.float32), np.ones((2, 4), np.float32), \
        np.array([0, 1])
    with pytest.raises(ArgumentError, match="roi_align: mode must be one of avg, max, got "
                                            "'sum'"):
        run_kernel("roi_align", dev, [x, rois, batch], (2, 1, 1, 1), "float32", ["sum"])
    with pytest.raises(ArgumentError, match=r"roi_align: expected x \(N, C, H, W\), rois "
                                            r"\(R, 4\)"):
        run_kernel("roi_align", dev, [x, rois[:, :3], batch], (2, 1, 1, 1), "float32")


def test_roi_align_rejects_out_of_range_batch_indices_on_cpu() -> None:
    import relaxvm
    x, rois = np.ones((1, 1, 4, 4), np.float32), np.ones((2, 4), np.float32)
    with pytest.raises(ArgumentError, match=r"roi_align: batch_indices must be in \[0, 1\), "
                                            r"got values from 0 to 1"):
        run_kernel("roi_align", relaxvm.cpu(0), [x, rois, np.array([0, 1])], (2, 1, 1, 1),
                   "float32")


DEFORM_CASES = [  # (x shape, w shape, strides, pads, dilations, group, offset_group, mask, b)
    ((1, 2, 5, 5), (3, 2, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, True, True),
    ((2, 4, 6, 5), (4, 2, 2, 3), (2, 1), (0, 1, 1, 0), (1, 2), 2, 2, False, True),
    ((1, 4, 5, 6), (2, 4, 2, 2), (1, 2), (0, 0, 0, 0), (2, 1), 1, 4, True, False),
]


@pytest.mark.parametrize("dtype", dtype_params("deform_conv"))
@pytest.mark.parametrize("case", DEFORM_CASES, ids=str)
def test_deform_conv_matches_onnx(dev: Any, dtype: str, case: Any) -> None:
    skip_unsupported(dev, dtype)
    xs, ws, strides, pads, dilations, group, ogroup, with_mask, with_b = case
    rng = np.random.default_rng(95)
    x, w = random_array(rng, xs, dtype), random_array(rng, ws, dtype)
    kh, kw = ws[2:]
    oh = (xs[2] + pads[0] + pads[2] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (xs[3] + pads[1] + pads[3] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    offset = random_array(rng, (xs[0], ogroup * kh * kw * 2, oh, ow), dtype, -1.5, 1.5)
    mask = random_array(rng, (xs[0], ogroup * kh * kw, oh, ow), dtype, 0, 1) \
        if with_mask else None
    b = random_array(rng, (ws[0],), dtype) if with_b else None
    inputs = [x, w, offset, b, mask]
    expected = onnx_reference(
        "DeformConv", [(n, None if v is None else wide(v))
                       for n, v in zip(("x", "w", "o", "b", "m"), inputs, strict=True)],
        strides=strides, pads=pads, dilations=dilations, group=group, offset_group=ogroup,
        kernel_shape=[kh, kw])
    got = run_kernel("deform_conv", dev, inputs, expected.shape, dtype,
                     [strides, pads, dilations, group, ogroup])
    check("deform_conv", got, expected, dtype)


def test_deform_conv_rejects_bad_groups_and_offsets(dev: Any) -> None:
    x, w = np.ones((1, 3, 4, 4), np.float32), np.ones((2, 3, 2, 2), np.float32)
    offset = np.zeros((1, 8, 3, 3), np.float32)
    with pytest.raises(ArgumentError, match="deform_conv: x has 3 channels, w \\[2, 3, 2, 2\\];"
                                            " group 1 and offset_group 2 must divide them"):
        run_kernel("deform_conv", dev, [x, w, offset, None, None], (1, 2, 3, 3), "float32",
                   [(1, 1), (0, 0, 0, 0), (1, 1), 1, 2])
    with pytest.raises(ArgumentError, match=r"deform_conv: offset must be \[1, 8, 3, 3\], "
                                            r"got \[1, 8, 2, 3\]"):
        run_kernel("deform_conv", dev, [x, w, offset[:, :, :2], None, None], (1, 2, 3, 3),
                   "float32")


@pytest.mark.parametrize("dtype", dtype_params("max_unpool"))
@pytest.mark.parametrize("out_shape", [None, (2, 3, 7, 6)], ids=str)
def test_max_unpool_matches_onnx(dev: Any, dtype: str, out_shape: Any) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(96)
    x = random_array(rng, (2, 3, 3, 2), dtype, -9, 9)
    frame = (2, 3, 6, 5)  # (3 - 1) * 2 + 3 - 1, (2 - 1) * 2 + 3 - 0
    indices = rng.choice(int(np.prod(frame)), size=x.size, replace=False).reshape(x.shape)
    inputs: list[tuple[str, Any]] = [("x", ref_input(x)), ("i", indices)]
    if out_shape is not None:
        inputs.append(("s", np.array(out_shape, np.int64)))
    expected = onnx_reference("MaxUnpool", inputs, kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 0, 0, 0])
    got = run_kernel("max_unpool", dev, [x, indices], expected.shape, dtype,
                     [(3, 3), (2, 2), (1, 0, 0, 0)])
    check("max_unpool", got, expected, dtype)


def test_max_unpool_rejects_small_out_and_bad_indices(dev: Any) -> None:
    import relaxvm
    x, idx = np.ones((1, 1, 2, 2), np.float32), np.array([[[[0, 3], [9, 15]]]])
    with pytest.raises(ArgumentError, match=r"max_unpool: indices must match x \[1, 1, 2, 2\] "
                                            r"and out must cover \[1, 1, 4, 4\]"):
        run_kernel("max_unpool", dev, [x, idx], (1, 1, 3, 4), "float32", [(2, 2), (2, 2)])
    with pytest.raises(ArgumentError, match=r"max_unpool: indices must be in \[0, 16\), got "
                                            r"values from 0 to 16"):
        run_kernel("max_unpool", relaxvm.cpu(0), [x, idx + (idx == 15)], (1, 1, 4, 4),
                   "float32", [(2, 2), (2, 2)])


@pytest.mark.parametrize("dtype", dtype_params("reverse_sequence"))
@pytest.mark.parametrize("batch_axis, time_axis", [(0, 1), (1, 0)])
def test_reverse_sequence_matches_onnx(dev: Any, dtype: str, batch_axis: int,
                                       time_axis: int) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(97)
    shape = [5, 5, 3]
    shape[batch_axis] = 4
    x = random_array(rng, shape, dtype, -9, 9)
    lens = np.array([0, 1, 5, 3], np.int64)
    expected = onnx_reference("ReverseSequence", [("x", ref_input(x)), ("l", lens)],
                              batch_axis=batch_axis, time_axis=time_axis)
    got = run_kernel("reverse_sequence", dev, [x, lens], x.shape, dtype,
                     [batch_axis, time_axis])
    check("reverse_sequence", got, expected, dtype)


def test_reverse_sequence_device_path_and_errors(dev: Any) -> None:
    x, lens = np.arange(12.0).reshape(3, 4), np.array([2, 4, 1])
    out = np.empty_like(x)
    reverse_sequence(ArrayModuleProxy(), _t(x), _t(lens), _t(out), 0, 1)
    np.testing.assert_array_equal(out, [[1, 0, 2, 3], [7, 6, 5, 4], [8, 9, 10, 11]])
    with pytest.raises(ArgumentError, match="reverse_sequence: batch_axis 0 and time_axis 0 "
                                            "must differ"):
        run_kernel("reverse_sequence", dev, [x, lens], x.shape, "float64", [0, 0])
    with pytest.raises(ArgumentError, match=r"reverse_sequence: sequence_lens must be in "
                                            r"\[0, 4\], got values from 2 to 5"):
        run_kernel("reverse_sequence", _cpu(), [x, lens + 1],
                   x.shape, "float64", [0, 1])


def _cpu() -> Any:
    import relaxvm
    return relaxvm.cpu(0)


SCATTER_CASES = [((2, 1, 6, 3), (2, 1, 2, 3), -2, "linear", [0, 4]),
                 ((2, 1, 6, 3), (2, 1, 3, 3), -2, "circular", [5, 2]),
                 ((3, 5, 2), (3, 2, 2), 1, "linear", None),
                 ((2, 4, 3, 2), (2, 4, 3, 2), 2, "circular", [1, 0])]


@pytest.mark.parametrize("dtype", dtype_params("tensor_scatter"))
@pytest.mark.parametrize("case", SCATTER_CASES, ids=str)
def test_tensor_scatter_matches_onnx(dev: Any, dtype: str, case: Any) -> None:
    skip_unsupported(dev, dtype)
    cache_shape, update_shape, axis, mode, starts = case
    rng = np.random.default_rng(98)
    cache = random_array(rng, cache_shape, dtype, -9, 9)
    update = random_array(rng, update_shape, dtype, -9, 9)
    write = None if starts is None else np.array(starts, np.int64)
    expected = onnx_reference("TensorScatter", [("c", ref_input(cache)),
                                                ("u", ref_input(update)), ("w", write)],
                              axis=axis, mode=mode)
    got = run_kernel("tensor_scatter", dev, [cache, update, write], cache.shape, dtype,
                     [axis, mode])
    check("tensor_scatter", got, expected, dtype)


def test_tensor_scatter_rejects_batch_axis_overflow_and_mode(dev: Any) -> None:
    cache, update = np.zeros((2, 4, 3), np.float32), np.ones((2, 2, 3), np.float32)
    with pytest.raises(ArgumentError, match="tensor_scatter: mode must be one of linear, "
                                            "circular, got 'ring'"):
        run_kernel("tensor_scatter", dev, [cache, update, None], cache.shape, "float32",
                   [1, "ring"])
    with pytest.raises(ArgumentError, match="tensor_scatter: axis 0 must not be the batch"):
        run_kernel("tensor_scatter", dev, [cache, update, None], cache.shape, "float32", [0])
    with pytest.raises(ArgumentError, match=r"tensor_scatter: write_indices \+ update length "
                                            r"must stay in \[0, 4\] in linear mode, got "
                                            r"positions from 0 to 4"):
        run_kernel("tensor_scatter", _cpu(), [cache, update, np.array([0, 3])], cache.shape,
                   "float32", [1])
    out = np.empty_like(cache)  # the device path wraps nothing and checks nothing
    tensor_scatter(ArrayModuleProxy(), _t(cache), _t(update), _t(np.array([1, 2])), _t(out),
                   1, "linear")
    np.testing.assert_array_equal(out[0, 1:3], 1)
    np.testing.assert_array_equal(out[1, 2:4], 1)
    assert out[0, [0, 3]].max() == 0 and out[1, :2].max() == 0


@pytest.mark.parametrize("dtype", dtype_params("pad"))
def test_pad_reads_a_tensor_constant_value(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(99), (3, 4), dtype, -9, 9)
    value = np.array(2.5 if dtype != "int64" else 7, x.dtype)
    expected = onnx_reference("Pad", [("x", ref_input(x)), ("p", np.array([1, 0, 2, 1])),
                                      ("v", ref_input(value))])
    got = run_kernel("pad", dev, [x, value], expected.shape, dtype, [(1, 0, 2, 1)])
    check("pad", got, expected, dtype)


def test_pad_rejects_a_constant_value_with_several_elements(dev: Any) -> None:
    x = np.ones((2, 2), np.float32)
    with pytest.raises(ArgumentError, match=r"pad: constant_value must have one element, got "
                                            r"shape \[2\]"):
        run_kernel("pad", dev, [x, np.ones(2, np.float32)], (3, 2), "float32",
                   [(1, 0, 0, 0)])
