"""The Resize converter (relaxvm/frontend/onnx/index.py) against onnxruntime: every mode,
constant and run-time scales/sizes/roi, axes, keep_aspect_ratio_policy, antialias."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import relaxvm
from relaxvm.compiler import build
from relaxvm.errors import UnsupportedOpError
from relaxvm.frontend import from_onnx
from relaxvm.vm import VirtualMachine
from tests.frontend.onnx.onnx_case import assert_close, check_node, make_model, run_all

rng = np.random.default_rng(11)
TOL = {"rtol": 1e-4, "atol": 1e-5}


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def floats(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("ctm", ["half_pixel", "pytorch_half_pixel", "align_corners",
                                 "asymmetric", "half_pixel_symmetric"])
def test_resize_with_constant_scales_and_sizes(mode: str, ctm: str) -> None:
    x = f32(1, 2, 4, 5)
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    check_node("Resize", {"x": x}, attrs, opset=19, input_names=["x", "", "sc"],
               initializers={"sc": floats(1, 1, 1.5, 0.6)}, **TOL)
    check_node("Resize", {"x": x}, attrs, opset=19, input_names=["x", "", "", "sz"],
               initializers={"sz": i64(1, 2, 7, 3)}, **TOL)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_with_runtime_scales_and_sizes(mode: str) -> None:
    x = f32(1, 2, 4, 5)
    check_node("Resize", {"x": x, "sc": floats(1, 1, 2.0, 0.5)}, {"mode": mode}, opset=19,
               input_names=["x", "", "sc"], **TOL)
    check_node("Resize", {"x": x, "sz": i64(1, 2, 3, 8)}, {"mode": mode}, opset=19,
               input_names=["x", "", "", "sz"], **TOL)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_antialias_downsampling(mode: str) -> None:
    x = f32(1, 1, 8, 9)
    check_node("Resize", {"x": x}, {"mode": mode, "antialias": 1}, opset=19,
               input_names=["x", "", "sc"], initializers={"sc": floats(1, 1, 0.5, 0.4)}, **TOL)


def test_resize_cubic_coeff_and_exclude_outside() -> None:
    x = f32(1, 1, 4, 4)
    check_node("Resize", {"x": x}, {"mode": "cubic", "cubic_coeff_a": -0.5,
                                    "exclude_outside": 1}, opset=19,
               input_names=["x", "", "sc"], initializers={"sc": floats(1, 1, 1.8, 0.7)}, **TOL)


@pytest.mark.parametrize("runtime", [False, True])
@pytest.mark.parametrize("axes", [None, [2, 3]])
def test_resize_tf_crop_and_resize(runtime: bool, axes: list[int] | None) -> None:
    """(axes [3, 2] are left to the node suite and tests/kernels/test_resize.py:
    onnxruntime 1.32 reads the roi of permuted axes in the wrong order.)"""
    x = f32(1, 1, 4, 5)
    roi = floats(0, 0, 0.2, -0.1, 1, 1, 0.7, 1.2) if axes is None else floats(0.2, -0.1, 0.7, 1.2)
    sizes = i64(1, 1, 3, 4) if axes is None else i64(3, 4)
    attrs = {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
             "extrapolation_value": 5.0, **({} if axes is None else {"axes": axes})}
    inputs, inits = ({"x": x, "roi": roi}, {"sz": sizes}) if runtime else \
        ({"x": x}, {"roi": roi, "sz": sizes})
    check_node("Resize", inputs, attrs, opset=19, input_names=["x", "roi", "", "sz"],
               initializers=inits, **TOL)


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
@pytest.mark.parametrize("runtime", [False, True])
def test_resize_keep_aspect_ratio_policy(policy: str, runtime: bool) -> None:
    x = f32(1, 2, 4, 6)
    attrs = {"mode": "linear", "axes": [2, 3], "keep_aspect_ratio_policy": policy}
    sizes = i64(7, 5)
    inputs, inits = ({"x": x, "sz": sizes}, {}) if runtime else ({"x": x}, {"sz": sizes})
    check_node("Resize", inputs, attrs, opset=19, input_names=["x", "", "", "sz"],
               initializers=inits, **TOL)


def test_resize_axes_with_scales() -> None:
    x = f32(2, 3, 4)
    check_node("Resize", {"x": x}, {"mode": "nearest", "axes": [2]}, opset=19,
               input_names=["x", "", "sc"], initializers={"sc": floats(2.5)})


def test_resize_negative_axes_match_positive_ones() -> None:
    x = f32(2, 3, 4)
    models = [make_model("Resize", {"x": x}, {"mode": "linear", "axes": [2]}, opset=19,
                         input_names=["x", "", "sc"], initializers={"sc": floats(2.5)})
              for _ in range(2)]
    axes = next(a for a in models[1].graph.node[0].attribute if a.name == "axes")
    axes.ints[:] = [-1]
    got = [VirtualMachine(build(m), relaxvm.cpu())["main"](x=x).numpy() for m in models]
    np.testing.assert_array_equal(got[0], got[1])


@pytest.mark.parametrize("op,opset", [("Resize", 10), ("Upsample", 9)])
def test_resize_10_and_upsample_linear_are_asymmetric(op: str, opset: int) -> None:
    """(onnx.reference cannot run these, so the model is built by hand.)"""
    x = f32(1, 1, 3, 4)
    node = helper.make_node(op, ["x", "sc"], ["y"], name="r", mode="linear")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(floats(1, 1, 2, 1.5), "sc")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    expected, evaluated, got = run_all(model, {"x": x})
    assert_close(expected, evaluated, **TOL)
    assert_close(expected, got, **TOL)


def test_resize_with_a_symbolic_batch() -> None:
    x = f32(2, 1, 3, 4)
    check_node("Resize", {"x": x}, {"mode": "linear"}, opset=19, input_names=["x", "", "sc"],
               initializers={"sc": floats(1, 1, 2, 0.5)}, dynamic={"x": ["n", 1, 3, 4]}, **TOL)


def test_resize_unsupported_mode_names_the_node() -> None:
    model = make_model("Resize", {"x": f32(1, 1, 2, 2)}, {"mode": "nearest"}, opset=19,
                       input_names=["x", "", "sc"], initializers={"sc": floats(1, 1, 2, 2)})
    model.graph.node[0].attribute[0].s = b"area"
    with pytest.raises(UnsupportedOpError, match="Resize node resize_node: mode 'area' is "
                                                 "not supported"):
        from_onnx(model)


@pytest.mark.parametrize("runtime", [False, True])
def test_upsample_nearest_with_constant_or_runtime_scales(runtime: bool) -> None:
    x, scales = f32(1, 2, 3, 2), floats(1, 1, 2, 3)
    inputs, inits = ({"x": x, "sc": scales}, {}) if runtime else ({"x": x}, {"sc": scales})
    check_node("Upsample", inputs, {"mode": "nearest"}, opset=9, input_names=["x", "sc"],
               initializers=inits)
