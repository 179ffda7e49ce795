"""nonzero, compress, unique and non_max_suppression: kernels that return their outputs.

They are called as the VM calls them, ``kernel(*inputs, None, *attrs)``, and compared
with onnxruntime (Unique, NonMaxSuppression: onnx.reference mishandles unsorted
rank-2 inputs and omitted optional inputs) or NumPy (NonZero, Compress).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from kernel_harness import check, dtype_params, random_array, to_device
from onnx import helper

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels import get_kernel
from relaxvm.tensor import Tensor

OPSET = 17
rng = np.random.default_rng(11)


def call(name: str, dev: relaxvm.Device, inputs: list[Any], attrs: list[Any] = ()
         ) -> list[np.ndarray]:
    """Run a returning kernel on ``dev``; its outputs as host arrays (checked on ``dev``)."""
    result = get_kernel(name, dev.device_type)(*[to_device(v, dev) for v in inputs], None,
                                                *attrs)
    results = result if isinstance(result, tuple) else (result,)
    for r in results:
        assert isinstance(r, Tensor) and r.device == dev
    return [r.numpy() for r in results]


def onnx_reference(op: str, inputs: dict[str, np.ndarray | None], n_outputs: int = 1,
                   **attrs: Any) -> list[np.ndarray]:
    """One-node model run by onnxruntime."""
    names = [k if v is not None else "" for k, v in inputs.items()]
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outs, **attrs)
    infos = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                           v.shape) for k, v in inputs.items() if v is not None]
    graph = helper.make_graph([node], "g", infos,
                              [helper.make_empty_tensor_value_info(o) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    feeds = {k: v for k, v in inputs.items() if v is not None}
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(r) for r in session.run(None, feeds)]


def sparse(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random values with about half of them zero."""
    x = random_array(rng, shape, dtype)
    return np.where(rng.random(shape) < 0.5, np.zeros_like(x), x)


# -- nonzero ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtype_params("nonzero"))
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4)])
def test_nonzero_matches_numpy(dev: relaxvm.Device, dtype: str, shape: tuple[int, ...]) -> None:
    x = sparse(shape, dtype)
    got, = call("nonzero", dev, [x])
    check("nonzero", got, np.array(np.nonzero(x), np.int64), dtype)
    assert got.dtype == np.int64


def test_nonzero_of_all_zeros_and_empty_inputs(dev: relaxvm.Device) -> None:
    assert call("nonzero", dev, [np.zeros((2, 3), np.float32)])[0].shape == (2, 0)
    assert call("nonzero", dev, [np.zeros((0, 3), np.float32)])[0].shape == (2, 0)


def test_nonzero_rejects_scalars_and_a_destination(dev: relaxvm.Device) -> None:
    with pytest.raises(ArgumentError, match="nonzero: x must have at least one dimension"):
        call("nonzero", dev, [np.array(1.0, np.float32)])
    x = relaxvm.tensor(np.ones(3, np.float32), dev)
    with pytest.raises(ArgumentError, match=r"nonzero: out must be None \(the kernel "
                                            r"allocates and returns its outputs\), got Tensor"):
        get_kernel("nonzero", dev.device_type)(x, x)


# -- compress --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtype_params("compress"))
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress_matches_numpy(dev: relaxvm.Device, dtype: str, axis: int | None) -> None:
    x = random_array(rng, (3, 4), dtype)
    n = x.size if axis is None else x.shape[axis]
    cond = rng.random(n - 1) < 0.5  # shorter than the axis: the rest is left out
    got, = call("compress", dev, [x, cond], [axis])
    check("compress", got, np.compress(cond, x, axis=axis), dtype)


def test_compress_errors(dev: relaxvm.Device) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match="compress: condition must be 1-D, got 2 dims"):
        call("compress", dev, [x, np.ones((2, 3), bool)], [0])
    with pytest.raises(ArgumentError, match="compress: condition has a true entry at 2, past "
                                            "the 2 slices of axis 0"):
        call("compress", dev, [x, np.array([0, 1, 1], bool)], [0])
    with pytest.raises(ArgumentError, match="compress: axis"):
        call("compress", dev, [x, np.array([1], bool)], [2])


# -- unique ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", dtype_params("unique"))
@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_unique_matches_onnx(dev: relaxvm.Device, dtype: str, sorted_: int,
                             axis: int | None) -> None:
    x = rng.integers(0, 3, size=(4, 3)).astype(dtype)
    x[2] = x[0]  # a repeated row, so the axis cases find duplicates too
    attrs = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    expected = onnx_reference("Unique", {"x": x}, 4, **attrs)
    got = call("unique", dev, [x], [sorted_, axis])
    for g, e in zip(got, expected):
        check("unique", g, e, dtype)


def test_unique_errors(dev: relaxvm.Device) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match="unique: sorted must be 0 or 1, got 2"):
        call("unique", dev, [x], [2, None])
    with pytest.raises(ArgumentError, match="unique: axis"):
        call("unique", dev, [x], [1, 3])


# -- non_max_suppression -------------------------------------------------------------------
def random_boxes(batches: int, n: int, center: int) -> np.ndarray:
    corner = rng.uniform(0, 10, size=(batches, n, 2))
    size = rng.uniform(0.5, 4, size=(batches, n, 2))
    if center:
        return np.concatenate([corner + size / 2, size], axis=2).astype(np.float32)
    far = corner + size
    boxes = np.concatenate([corner, far], axis=2)
    flip = rng.random((batches, n)) < 0.3  # corners in either order
    boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]
    return boxes.astype(np.float32)


@pytest.mark.parametrize("dtype", dtype_params("non_max_suppression"))
@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("limit,iou,score", [(3, 0.5, None), (10, 0.3, 0.4), (2, 0.0, 0.2),
                                             (None, None, None)])
def test_nms_matches_onnx(dtype: str, center: int, limit: int | None, iou: float | None,
                          score: float | None) -> None:
    dev = relaxvm.cpu(0)
    boxes = random_boxes(2, 12, center)
    scores = rng.random((2, 3, 12)).astype(np.float32)
    extra = {"m": None if limit is None else np.array([limit], np.int64),
             "i": None if iou is None else np.array([iou], np.float32),
             "s": None if score is None else np.array([score], np.float32)}
    if limit is None:  # the count missing: nothing is kept, whatever the thresholds
        extra = {"m": np.array([0], np.int64), "i": None, "s": None}
    expected, = onnx_reference("NonMaxSuppression", {"b": boxes, "c": scores, **extra},
                               center_point_box=center)
    got, = call("non_max_suppression", dev, [boxes, scores, *extra.values()], [center])
    check("non_max_suppression", got, expected.astype(np.int64).reshape(-1, 3), "int64")


def test_nms_without_optional_inputs_keeps_nothing() -> None:
    boxes, scores = random_boxes(1, 4, 0), rng.random((1, 2, 4)).astype(np.float32)
    got, = call("non_max_suppression", relaxvm.cpu(0), [boxes, scores, None, None, None])
    assert got.shape == (0, 3) and got.dtype == np.int64


def test_nms_errors() -> None:
    cpu = relaxvm.cpu(0)
    boxes, scores = random_boxes(1, 4, 0), rng.random((1, 2, 4)).astype(np.float32)
    with pytest.raises(ArgumentError, match="non_max_suppression: center_point_box must be 0 "
                                            "or 1, got 2"):
        call("non_max_suppression", cpu, [boxes, scores, None, None, None], [2])
    with pytest.raises(ArgumentError, match=r"boxes must be \[batch, boxes, 4\] and scores "
                                            r"\[batch, classes, boxes\], got \[1, 4, 4\] and "
                                            r"\[1, 2, 3\]"):
        call("non_max_suppression", cpu, [boxes, scores[:, :, :3], None, None, None])
    with pytest.raises(ArgumentError, match="must hold one value, got 2"):
        call("non_max_suppression", cpu, [boxes, scores, np.array([1, 2], np.int64), None,
                                          None])
