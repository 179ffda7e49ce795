"""LSTM, GRU and RNN converters against onnxruntime (relaxvm/frontend/onnx/recurrent.py).

onnxruntime has no batch-first layout (layout=1): those cases compare with onnx.reference.
The models are typed by hand: onnx.reference, which check_node uses to type outputs,
does not know every activation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.errors import BuildError, UnsupportedOpError
from relaxvm.frontend import from_onnx
from relaxvm.vm import VirtualMachine
from tests.frontend.onnx.onnx_case import assert_close, run_all

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
T, B, IN, H = 4, 2, 3, 5
rng = np.random.default_rng(11)


def f32(*shape: int) -> np.ndarray:
    return rng.uniform(-1, 1, shape).astype(np.float32)


def inputs_for(op: str, direction: str = "forward", layout: int = 0, lens: bool = False,
               states: bool = True) -> tuple[list[str], dict[str, np.ndarray]]:
    """(node input names with '' for omitted ones, feeds) for a random ``op`` case."""
    d, g = (2 if direction == "bidirectional" else 1), GATES[op] * H
    feeds = {"x": f32(B, T, IN) if layout else f32(T, B, IN), "w": f32(d, g, IN),
             "r": f32(d, g, H), "b": f32(d, 2 * g)}
    names = ["x", "w", "r", "b", "", ""]
    if lens:
        feeds["lens"] = np.array([T, 2], np.int32)
        names[4] = "lens"
    if states:
        shape = (B, d, H) if layout else (d, B, H)
        feeds["h0"] = f32(*shape)
        names[5] = "h0"
        if op == "LSTM":
            feeds.update(c0=f32(*shape), p=f32(d, 3 * H))
            names += ["c0", "p"]
    return names, feeds


def model_of(op: str, names: list[str], feeds: dict[str, np.ndarray], outs: list[str],
             opset: int = 14, **attrs: Any) -> onnx.ModelProto:
    node = helper.make_node(op, names, outs, name=f"{op.lower()}_node", hidden_size=H, **attrs)
    infos = [helper.make_tensor_value_info(
        k, TensorProto.INT32 if v.dtype == np.int32 else TensorProto.FLOAT, v.shape)
        for k, v in feeds.items()]
    graph = helper.make_graph([node], "case", infos, [
        helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def outputs(op: str) -> list[str]:
    return ["y", "y_h", "y_c"][:3 if op == "LSTM" else 2]


def check(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    expected, evaluated, got = run_all(model, feeds)
    assert_close(expected, evaluated, 1e-5, 1e-5)
    assert_close(expected, got, 1e-5, 1e-5)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_directions_with_sequence_lens(op: str, direction: str) -> None:
    names, feeds = inputs_for(op, direction, lens=True)
    check(model_of(op, names, feeds, outputs(op), direction=direction), feeds)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_only_the_required_inputs(op: str) -> None:
    names, feeds = inputs_for(op, states=False)
    del feeds["b"]
    check(model_of(op, names[:3], feeds, outputs(op)), feeds)


@pytest.mark.parametrize(("op", "outs"), [("LSTM", ["", "y_h"]), ("LSTM", ["", "", "y_c"]),
                                          ("GRU", ["y"]), ("RNN", ["", "y_h"])])
def test_absent_outputs(op: str, outs: list[str]) -> None:
    names, feeds = inputs_for(op, "bidirectional")
    check(model_of(op, names, feeds, outs, direction="bidirectional"), feeds)


@pytest.mark.parametrize(("op", "attrs"), [
    ("LSTM", {"activations": ["HardSigmoid", "Softsign", "Elu"], "activation_alpha": [0.3],
              "clip": 0.9, "input_forget": 1}),
    ("GRU", {"activations": ["Sigmoid", "LeakyRelu", "Relu", "Softplus"], "clip": 0.5,
             "direction": "bidirectional", "linear_before_reset": 1}),
    ("RNN", {"activations": ["ScaledTanh"], "activation_alpha": [1.5],
             "activation_beta": [0.5]}),
    ("RNN", {"activations": ["Affine", "ThresholdedRelu"], "activation_alpha": [0.5, 0.2],
             "activation_beta": [0.1], "direction": "bidirectional"}),
])
def test_activations_clip_and_gate_options(op: str, attrs: dict[str, Any]) -> None:
    names, feeds = inputs_for(op, attrs.get("direction", "forward"), lens=True)
    check(model_of(op, names, feeds, outputs(op), **attrs), feeds)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_batch_first_layout_against_onnx_reference(op: str) -> None:
    names, feeds = inputs_for(op, "bidirectional", layout=1)
    model = model_of(op, names, feeds, outputs(op), direction="bidirectional", layout=1)
    expected = ReferenceEvaluator(model).run(None, feeds)
    assert_close(expected, evaluate(from_onnx(model), feeds), 1e-5, 1e-5)
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](**feeds)
    assert_close(expected, [g.numpy() for g in got], 1e-5, 1e-5)


def test_opset7_lstm() -> None:
    names, feeds = inputs_for("LSTM", "reverse")
    check(model_of("LSTM", names, feeds, outputs("LSTM"), opset=7, direction="reverse"), feeds)


def test_unknown_activation_is_unsupported() -> None:
    names, feeds = inputs_for("RNN")
    model = model_of("RNN", names, feeds, outputs("RNN"), activations=["Swish"])
    with pytest.raises(UnsupportedOpError, match=r"RNN node rnn_node: activations \['Swish'\] "
                                                 r"are not among"):
        from_onnx(model)


def test_wrong_activation_count_fails() -> None:
    names, feeds = inputs_for("GRU", "bidirectional")
    model = model_of("GRU", names, feeds, outputs("GRU"), direction="bidirectional",
                     activations=["Sigmoid", "Tanh"])
    with pytest.raises(BuildError, match=r"GRU node gru_node: activations must list 2 "
                                         r"functions per direction \(4 in all\), got 2"):
        from_onnx(model)


def test_bad_direction_fails() -> None:
    names, feeds = inputs_for("LSTM")
    model = model_of("LSTM", names, feeds, outputs("LSTM"), direction="both")
    with pytest.raises(BuildError, match="LSTM node lstm_node: direction must be one of "
                                         "forward, reverse, bidirectional, got 'both'"):
        from_onnx(model)


def test_hidden_size_must_match_the_weights() -> None:
    names, feeds = inputs_for("GRU", states=False)
    model = model_of("GRU", names[:4], feeds, outputs("GRU"))
    model.graph.node[0].attribute[0].i = H + 1
    with pytest.raises(BuildError, match=r"gru: w must have 3 \* hidden_size = 18 rows"):
        from_onnx(model)


def test_symbolic_sequence_length_and_batch() -> None:
    names, feeds = inputs_for("LSTM", "bidirectional", lens=True)
    model = model_of("LSTM", names, feeds, outputs("LSTM"), direction="bidirectional")
    dims = {"x": {0: "T", 1: "N"}, "h0": {1: "N"}, "c0": {1: "N"}, "lens": {0: "N"}}
    for info in model.graph.input:
        for axis, name in dims.get(info.name, {}).items():
            info.type.tensor_type.shape.dim[axis].dim_param = name
    assert [str(d) for d in from_onnx(model).outputs[0].shape] == ["T", "2", "N", str(H)]
    check(model, feeds)
