"""Signal converters against onnxruntime (relaxvm/frontend/onnx/signal.py): DFT, STFT,
MelWeightMatrix, Det, BitCast and Col2Im, with lengths and axes as constants and as
run-time inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.errors import BuildError, UnsupportedOpError
from relaxvm.frontend import from_onnx
from relaxvm.vm import VirtualMachine
from tests.frontend.onnx.onnx_case import assert_close, check_node, make_model

rng = np.random.default_rng(17)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(value: Any) -> np.ndarray:
    return np.array(value, np.int64)


@pytest.mark.parametrize("attrs,shape", [
    ({"axis": 1}, (2, 8, 1)), ({"axis": 2, "inverse": 1}, (2, 3, 6, 2)),
    ({"axis": -2, "onesided": 1}, (3, 9, 1)), ({"axis": 1, "inverse": 1, "onesided": 1},
                                               (2, 5, 2)),
])
def test_dft_opset17_axis_attribute(attrs: dict, shape: tuple) -> None:
    check_node("DFT", {"x": f32(*shape)}, attrs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("length", [5, 12])
def test_dft_opset17_dft_length_as_constant_and_as_input(length: int) -> None:
    x = f32(2, 8, 2)
    check_node("DFT", {"x": x}, {"axis": 1}, initializers={"n": i64(length)}, rtol=1e-4,
               atol=1e-4)
    check_node("DFT", {"x": x, "n": i64(length)}, {"axis": 1}, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("attrs", [{}, {"onesided": 1}, {"inverse": 1},
                                   {"inverse": 1, "onesided": 1}])
def test_dft_opset20_runtime_axis_and_length(attrs: dict) -> None:
    x = f32(2, 6, 4, 2) if attrs.get("inverse") else f32(2, 6, 4, 1)
    check_node("DFT", {"x": x, "n": i64(8), "a": i64(1)}, attrs, opset=20, rtol=1e-4,
               atol=1e-4)
    check_node("DFT", {"x": x}, attrs, initializers={"n": i64(6), "a": i64(-2)}, opset=20,
               rtol=1e-4, atol=1e-4)


def test_dft_opset20_default_axis_is_the_last_signal_axis() -> None:
    check_node("DFT", {"x": f32(3, 4, 5, 1)}, {"onesided": 1}, opset=20, rtol=1e-4, atol=1e-4)


def test_dft_runtime_axis_changes_the_output_shape_of_one_executable() -> None:
    """rfft halves whichever axis the run-time ``axis`` names: one build, two shapes."""
    x = f32(1, 6, 10, 1)
    model = make_model("DFT", {"x": x, "a": i64(1)}, {"onesided": 1}, opset=20,
                       input_names=["x", "", "a"])
    vm = VirtualMachine(build(model), relaxvm.cpu())
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for axis in (1, 2, -2, -3):
        feeds = {"x": x, "a": i64(axis)}
        got = vm["main"](**feeds).numpy()
        assert_close(session.run(None, feeds), [got], 1e-4, 1e-4)


@pytest.mark.parametrize("step,length,onesided", [(4, 8, 1), (3, 7, 0), (16, 16, 1)])
def test_stft_frame_step_and_length_at_run_time(step: int, length: int, onesided: int) -> None:
    signal = f32(2, 32, 1)
    check_node("STFT", {"s": signal, "t": i64(step), "n": i64(length)},
               {"onesided": onesided}, input_names=["s", "t", "", "n"], rtol=1e-4, atol=1e-4)


def test_stft_with_window_and_complex_signal() -> None:
    check_node("STFT", {"s": f32(1, 40, 1), "t": i64(5), "w": f32(10)}, rtol=1e-4, atol=1e-4)
    check_node("STFT", {"s": f32(2, 20, 2), "w": f32(6)}, {"onesided": 0},
               initializers={"t": i64(2)}, input_names=["s", "t", "w"], rtol=1e-4,
               atol=1e-4)


def test_stft_with_a_hann_window_from_function_expansion() -> None:
    """HannWindow (an ONNX function) feeding STFT, end to end."""
    nodes = [helper.make_node("HannWindow", ["size"], ["w"]),
             helper.make_node("STFT", ["s", "step", "w"], ["y"])]
    graph = helper.make_graph(
        nodes, "hann_stft",
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 64, 1]),
         helper.make_tensor_value_info("step", TensorProto.INT64, []),
         helper.make_tensor_value_info("size", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(i64(16), "size")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    feeds = {"s": f32(1, 64, 1), "step": i64(8)}
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](**feeds).numpy()
    assert_close(want, [got], 1e-4, 1e-4)


def test_stft_rejects_a_window_that_is_not_frame_length_long() -> None:
    model = make_model("STFT", {"s": f32(1, 32, 1), "w": f32(8)}, opset=17,
                       initializers={"t": i64(4)}, input_names=["s", "t", "w"])
    model.graph.initializer.append(onnx.numpy_helper.from_array(i64(6), "n"))
    model.graph.node[0].input.append("n")
    with pytest.raises(BuildError, match="the window has 8 samples but frame_length is 6"):
        from_onnx(model)


MEL = {"m": i64(8), "n": i64(16), "r": i64(8192), "lo": np.array(0.0, np.float32),
       "hi": np.array(4096.0, np.float32)}


def test_mel_weight_matrix_from_run_time_inputs() -> None:
    check_node("MelWeightMatrix", dict(MEL), opset=17)
    feeds = {"m": i64(5), "n": i64(64), "r": i64(16000), "lo": np.array(100.0, np.float32),
             "hi": np.array(7000.0, np.float32)}
    check_node("MelWeightMatrix", feeds, {"output_datatype": TensorProto.DOUBLE}, opset=17)


def test_mel_weight_matrix_from_constants_folds() -> None:
    model = make_model("MelWeightMatrix", {}, initializers=dict(MEL), opset=17)
    graph = from_onnx(model)
    assert "mel_weight_matrix" not in graph.op_counts()
    check_node("MelWeightMatrix", {}, initializers=dict(MEL), opset=17)


@pytest.mark.parametrize("shape", [(3, 3), (4, 2, 2), (2, 3, 5, 5)])
def test_det(shape: tuple) -> None:
    check_node("Det", {"x": f32(*shape)}, opset=22, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("x,to", [
    (f32(2, 3), TensorProto.INT32), (np.array([1, -7, 300], np.int32), TensorProto.FLOAT),
    (np.array([-1, -128, 127], np.int8), TensorProto.UINT8),
    (rng.standard_normal(4), TensorProto.INT64), (np.array(2.5, np.float32), TensorProto.INT32),
])
def test_bitcast(x: np.ndarray, to: int) -> None:
    check_node("BitCast", {"x": x}, {"to": to}, opset=26)


def test_bitcast_bool_to_uint8_against_onnx_reference() -> None:
    """onnxruntime has no bool BitCast kernel; onnx.reference is the oracle here."""
    x = np.array([True, False, True, True])
    model = make_model("BitCast", {"x": x}, {"to": TensorProto.UINT8}, opset=26)
    want = ReferenceEvaluator(model).run(None, {"x": x})
    assert_close(want, [evaluate(from_onnx(model), {"x": x})[0]])
    assert_close(want, [VirtualMachine(build(model), relaxvm.cpu())["main"](x).numpy()])


def test_bitcast_rejects_different_bit_widths() -> None:
    model = make_model("BitCast", {"x": f32(3)}, {"to": TensorProto.INT32}, opset=26)
    model.graph.node[0].attribute[0].i = TensorProto.INT64
    with pytest.raises(BuildError, match=r"BitCast needs equal bit widths, got float32 \(32 "
                                         r"bits\) to int64 \(64 bits\)"):
        from_onnx(model)


def test_bitcast_between_sub_byte_types_is_unsupported() -> None:
    node = helper.make_node("BitCast", ["x"], ["y"], name="cast4", to=TensorProto.UINT4)
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.INT4, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT4, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)])
    with pytest.raises(UnsupportedOpError, match="BitCast node cast4: bitcast between "
                                                 "sub-byte types"):
        from_onnx(model)


@pytest.mark.parametrize("shape,image,block,attrs", [
    ((1, 5, 5), [5, 5], [1, 5], {}), ((1, 4, 5), [6, 6], [2, 2], {"dilations": [1, 5]}),
    ((2, 10, 15), [5, 5], [1, 5], {"pads": [0, 1, 0, 1]}),
    ((1, 9, 4), [5, 5], [3, 3], {"strides": [2, 2]}), ((1, 10, 12), [3, 4, 5], [1, 1, 5], {}),
])
def test_col2im_with_constant_and_run_time_shapes(shape: tuple, image: list, block: list,
                                                  attrs: dict) -> None:
    x = f32(*shape)
    check_node("Col2Im", {"x": x}, attrs, initializers={"i": i64(image), "b": i64(block)},
               opset=18)
    check_node("Col2Im", {"x": x, "i": i64(image), "b": i64(block)}, attrs, opset=18)
